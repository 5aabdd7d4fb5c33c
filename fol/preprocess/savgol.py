"""Savitzky-Golay filtering without importing ``scipy.signal``.

``scipy.signal`` costs ~0.6 s to import (it pulls in ``scipy.stats``, ``scipy.interpolate``,
``scipy.spatial``, ...), more than everything else a replay worker imports, and the
pipeline uses one function of it. ``savgol_filter`` here is scipy's
(``scipy.signal.savgol_filter`` 1.17, modes other than ``"interp"``) step for step: the
same least-squares coefficients (``scipy.linalg.lstsq`` with scipy's ``cond``), then
``scipy.ndimage.convolve1d``, so its results are bit-identical
(``tests/preprocess/test_savgol.py`` compares them for the windows, orders, derivatives
and modes the pipeline uses).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np


@lru_cache(maxsize=64)
def _coeffs(window_length: int, polyorder: int, deriv: int, delta: float) -> np.ndarray:
    from scipy.linalg import lstsq

    if polyorder >= window_length:
        raise ValueError("polyorder must be less than window_length.")
    halflen, rem = divmod(window_length, 2)
    pos = halflen if rem else halflen - 0.5
    if deriv > polyorder:
        return np.zeros(window_length)
    x = np.flip(np.arange(-pos, window_length - pos, dtype=np.float64))
    order = np.arange(polyorder + 1, dtype=np.float64).reshape(-1, 1)
    A = x ** order
    y = np.zeros(polyorder + 1, dtype=np.float64)
    y[deriv] = float(math.factorial(deriv)) / (delta ** deriv)
    rcond = np.finfo(np.float64).eps * max(A.shape[-1], A.shape[-2])
    coeffs = lstsq(A, y, cond=rcond)[0]
    coeffs.setflags(write=False)
    return coeffs


def savgol_coeffs(window_length: int, polyorder: int, deriv: int = 0, delta: float = 1.0) -> np.ndarray:
    """``scipy.signal.savgol_coeffs(window_length, polyorder, deriv, delta)`` (``use="conv"``)."""
    return _coeffs(int(window_length), int(polyorder), int(deriv), float(delta)).copy()


def savgol_filter(x, window_length: int, polyorder: int, deriv: int = 0, delta: float = 1.0, axis: int = -1,
                  mode: str = "mirror", cval: float = 0.0) -> np.ndarray:
    """``scipy.signal.savgol_filter`` for ``mode`` in mirror, constant, nearest, wrap (not "interp")."""
    from scipy.ndimage import convolve1d

    if mode not in ("mirror", "constant", "nearest", "wrap"):
        raise ValueError(f"mode {mode!r} is not supported here (scipy.signal.savgol_filter has it)")
    x = np.asarray(x)
    if x.dtype != np.float64 and x.dtype != np.float32:
        x = x.astype(np.float64)
    coeffs = _coeffs(int(window_length), int(polyorder), int(deriv), float(delta))
    return convolve1d(x, coeffs, axis=axis, mode=mode, cval=cval)
