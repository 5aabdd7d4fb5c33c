"""Savitzky-Golay filtering without importing ``scipy.signal``.

``scipy.signal`` costs ~0.6 s to import (it pulls in ``scipy.stats``, ``scipy.interpolate``,
``scipy.spatial``, ...), more than everything else a replay worker imports, and the
pipeline uses one function of it. ``savgol_filter`` here is scipy's
(``scipy.signal.savgol_filter`` 1.17) step for step: the same least-squares coefficients
(``scipy.linalg.lstsq`` with scipy's ``cond``), then ``scipy.ndimage.convolve1d``; for mode
``"interp"`` the ends refitted as scipy does (``np.polyfit``-style scaled Vandermonde
least squares on the first and last ``window`` points, derivative, Horner evaluation), so
its results are bit-identical (``tests/preprocess/test_savgol.py`` compares them for the
windows, orders, derivatives and modes the pipeline uses). Unlike scipy's, the default
mode is ``"mirror"``: pass ``mode="interp"`` for scipy's default.
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
    """``scipy.signal.savgol_filter`` for ``mode`` in mirror, constant, nearest, wrap, interp (default mirror)."""
    from scipy.ndimage import convolve1d

    if mode not in ("mirror", "constant", "nearest", "wrap", "interp"):
        raise ValueError(f"mode {mode!r} is not one of mirror, constant, nearest, wrap, interp")
    x = np.asarray(x)
    if x.dtype != np.float64 and x.dtype != np.float32:
        x = x.astype(np.float64)
    coeffs = _coeffs(int(window_length), int(polyorder), int(deriv), float(delta))
    if mode != "interp":
        return convolve1d(x, coeffs, axis=axis, mode=mode, cval=cval)
    if window_length > x.shape[axis]:
        raise ValueError("If mode is 'interp', window_length must be less than or equal to the size of x.")
    y = convolve1d(x, coeffs, axis=axis, mode="constant")
    n, half = x.shape[axis], window_length // 2
    _fit_edge(x, 0, window_length, 0, half, axis, polyorder, deriv, delta, y)
    _fit_edge(x, n - window_length, n, n - half, n, axis, polyorder, deriv, delta, y)
    return y


def _fit_edge(x, window_start, window_stop, interp_start, interp_stop, axis, polyorder, deriv, delta, y) -> None:
    """scipy's ``_fit_edge``: fit a polynomial to ``x[window_start:window_stop]`` along ``axis`` and write
    its (derivative's) values at ``interp_start:interp_stop`` into ``y``."""
    from scipy.linalg import lstsq

    edge = np.moveaxis(x, axis, 0)[window_start:window_stop]
    shape = edge.shape
    edge = edge.reshape(shape[0], -1)
    # scipy.signal._polyutils.polyfit (deg = polyorder, no weights)
    t = np.arange(0, window_stop - window_start, dtype=x.dtype)
    order = int(polyorder) + 1
    powers = np.flip(np.arange(order, dtype=t.dtype))
    lhs = t[:, None] ** powers[None, :]
    scale = np.sqrt(np.sum(lhs * lhs, axis=0))
    lhs /= scale
    c = lstsq(lhs, edge, cond=t.shape[0] * np.finfo(t.dtype).eps)[0]
    c = (c.T / scale).T
    # scipy.signal._savitzky_golay._polyder
    if deriv > 0:
        m = c.shape[0]
        if m <= deriv:
            c = np.zeros_like(c[:1, ...])
        else:
            dp = np.array(c[:-deriv, ...], copy=True)
            for k in range(deriv):
                dp *= np.arange(m - k - 1, deriv - k - 1, -1, dtype=c.dtype).reshape((m - deriv,) + (1,) * (c.ndim - 1))
            c = dp
    # scipy.signal._polyutils.polyval (Horner)
    i = np.arange(interp_start - window_start, interp_stop - window_start, dtype=c.dtype).reshape(-1, 1)
    values = np.zeros_like(i)
    for j in range(c.shape[0]):
        values = values * i + c[j, ...]
    values = values / (delta ** deriv)
    np.moveaxis(y, axis, 0)[interp_start:interp_stop] = values.reshape((interp_stop - interp_start,) + shape[1:])
