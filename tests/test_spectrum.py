import numpy as np
import pytest

from fol.errors import SpectrumError
from fol.spectrum import MIN_POINTS, Spectrum, SpectrumBatch


def test_decreasing_axis_is_flipped_with_intensities():
    x = np.linspace(4000, 400, 200)
    y = np.linspace(0, 1, 200) + 0.1
    s = Spectrum(x, y, "ftir", "absorbance")
    assert np.all(np.diff(s.wavenumber) > 0)
    assert s.intensity[0] == pytest.approx(y[-1]) and s.intensity[-1] == pytest.approx(y[0])


def test_transmittance_converted_to_absorbance():
    x = np.linspace(400, 4000, 100)
    s = Spectrum(x, np.full(100, 10.0), "ftir", "transmittance")
    assert s.unit == "absorbance"
    assert np.allclose(s.intensity, 1.0)


@pytest.mark.parametrize("x,y,msg", [
    (np.arange(10.0), np.ones(10), "at least"),
    (np.r_[np.arange(100.0), 50.0], np.ones(101), "monotonic"),
    (np.r_[np.arange(99.0), np.nan], np.ones(100), "NaN"),
    (np.arange(100.0), np.full(100, np.nan), "all NaN"),
    (np.arange(100.0), np.zeros(100), "all zero"),
    (np.arange(100.0), np.ones(99), "shape"),
])
def test_invalid_spectra_rejected_with_reason(x, y, msg):
    with pytest.raises(SpectrumError, match=msg):
        Spectrum(x, y, "raman")


def test_unknown_technique_and_unit():
    with pytest.raises(SpectrumError, match="technique"):
        Spectrum(np.arange(100.0), np.ones(100), "nmr")
    with pytest.raises(SpectrumError, match="unit"):
        Spectrum(np.arange(100.0), np.ones(100), "raman", "furlongs")


def test_arrays_are_read_only_copies():
    y = np.ones(100)
    s = Spectrum(np.arange(100.0), y, "raman")
    y[0] = 5
    assert s.intensity[0] == 1
    with pytest.raises(ValueError):
        s.intensity[0] = 2


def test_batch_keeps_bad_rows_and_reports_them():
    y = np.vstack([np.ones(MIN_POINTS), np.zeros(MIN_POINTS), np.full(MIN_POINTS, np.nan), np.ones(MIN_POINTS)])
    b = SpectrumBatch(np.arange(MIN_POINTS, 0, -1.0), y, "raman")
    assert len(b) == 4
    assert set(b.invalid) == {1, 2}
    assert "zero" in b.invalid[1] and "NaN" in b.invalid[2]
    assert np.all(np.diff(b.wavenumber) > 0)
    assert b[3].intensity.shape == (MIN_POINTS,)


def test_stack_requires_common_axis():
    a = Spectrum(np.arange(100.0), np.ones(100), "raman")
    b = Spectrum(np.arange(100.0) + 0.5, np.ones(100), "raman")
    assert SpectrumBatch.stack([a, a]).intensity.shape == (2, 100)
    with pytest.raises(SpectrumError, match="resample"):
        SpectrumBatch.stack([a, b])
