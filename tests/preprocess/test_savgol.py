"""fol.preprocess.savgol is scipy.signal.savgol_filter, bit for bit, without importing scipy.signal."""

import subprocess
import sys

import numpy as np
import pytest
from scipy.signal import savgol_coeffs as scipy_coeffs
from scipy.signal import savgol_filter as scipy_filter

from fol.preprocess.savgol import savgol_coeffs, savgol_filter


@pytest.mark.parametrize("window,polyorder", [(5, 2), (5, 3), (7, 3), (9, 3), (11, 3), (15, 4), (21, 2), (6, 3)])
@pytest.mark.parametrize("deriv", [0, 1, 2, 4])
@pytest.mark.parametrize("delta", [1.0, 1.7, 2.0, 0.48828125])
def test_coefficients_are_scipys(window, polyorder, deriv, delta):
    assert np.array_equal(savgol_coeffs(window, polyorder, deriv, delta),
                          scipy_coeffs(window, polyorder, deriv=deriv, delta=delta))


@pytest.mark.parametrize("mode", ["mirror", "nearest", "constant", "wrap", "interp"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
@pytest.mark.parametrize("window,polyorder,deriv", [(7, 3, 0), (11, 3, 0), (7, 3, 1), (7, 3, 2), (11, 3, 2)])
def test_filter_is_scipys_bit_for_bit(mode, dtype, window, polyorder, deriv):
    rng = np.random.default_rng(window * 10 + deriv)
    y = (rng.standard_normal((4, 901)).cumsum(axis=1) * 100).astype(dtype)
    for axis in (1, -1) if mode == "interp" else (1, 0, -1):  # interp needs window <= the 4 rows of axis 0
        got = savgol_filter(y, window, polyorder, deriv=deriv, delta=1.9, axis=axis, mode=mode)
        want = scipy_filter(y, window, polyorder, deriv=deriv, delta=1.9, axis=axis, mode=mode)
        assert got.dtype == want.dtype and np.array_equal(got, want)


@pytest.mark.parametrize("n,window,polyorder,deriv", [(7, 7, 3, 0), (15, 7, 3, 1), (15, 7, 3, 2), (12, 5, 3, 0),
                                                      (23, 11, 3, 2), (9, 5, 2, 3), (9, 5, 4, 4)])
def test_interp_mode_is_scipys_on_short_signals_and_identities(n, window, polyorder, deriv):
    """The ends refitted as scipy does: on short random rows and on the identity (mixture's savgol_matrix)."""
    rng = np.random.default_rng(n + window)
    for y, axes in ((rng.standard_normal((3, n)), (1, -1)), (np.eye(n), (1, 0))):
        for axis in axes:
            got = savgol_filter(y, window, polyorder, deriv=deriv, delta=1.7, axis=axis, mode="interp")
            want = scipy_filter(y, window, polyorder, deriv=deriv, delta=1.7, axis=axis, mode="interp")
            assert np.array_equal(got, want)
    interp, mirror = (savgol_filter(np.eye(n), window, polyorder, deriv=deriv, mode=m) for m in ("interp", "mirror"))
    assert deriv > polyorder or not np.array_equal(interp, mirror)


def test_bad_modes_and_orders_raise():
    with pytest.raises(ValueError, match="mode"):
        savgol_filter(np.zeros(20), 5, 2, mode="reflect")
    with pytest.raises(ValueError, match="window_length"):
        savgol_filter(np.zeros(4), 5, 2, mode="interp")
    with pytest.raises(ValueError, match="polyorder"):
        savgol_filter(np.zeros(20), 5, 5)


def test_importing_it_does_not_import_scipy_signal():
    code = "import sys, fol.preprocess.savgol as s, numpy as np; s.savgol_filter(np.ones(9), 5, 2); " \
           "print('scipy.signal' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
