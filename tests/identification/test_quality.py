"""Signal-quality checks on raw spectra."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fol.preprocess.recipe import FTIR_GRID, RAMAN_GRID
from fol.identification.quality import COVERAGE_MIN, SNR_LOW, assess, device_flags
from fol.spectrum import SpectrumBatch

from builders import REAL


def lorentz(x, centre, fwhm, height):
    return height / (1.0 + ((x - centre) / (fwhm / 2.0)) ** 2)


X_RAMAN = np.linspace(150.0, 2100.0, 1400)
X_FTIR = np.linspace(600.0, 4000.0, 1700)


def raman(snr, background=1.0, m=40, seed=0, x=X_RAMAN):
    """Rows with a tallest band of height 1000 and white noise 1000/snr on fluorescence
    ``background`` times the band height (polynomial + exponential)."""
    rng = np.random.default_rng(seed)
    bands = lorentz(x, 1000, 12, 1.0) + lorentz(x, 620, 16, 0.5) + lorentz(x, 1450, 20, 0.4) + lorentz(x, 1600, 10, 0.7)
    t = (x - x[0]) / (x[-1] - x[0])
    fluorescence = background * (1 + 0.5 * t - 0.3 * t**2 + np.exp(-(x - x[0]) / 300))
    return np.array([1000 * (bands + fluorescence) + rng.normal(0, 1000 / snr, x.size) for _ in range(m)])


def ftir(snr, m=40, seed=0):
    rng = np.random.default_rng(seed)
    x = X_FTIR
    bands = lorentz(x, 1700, 20, 1.0) + lorentz(x, 1250, 25, 0.6) + lorentz(x, 2950, 40, 0.3) + lorentz(x, 750, 15, 0.5)
    tilt = 0.05 + 0.1 * (x - x[0]) / (x[-1] - x[0])
    return np.array([bands + tilt + rng.normal(0, 1 / snr, x.size) for _ in range(m)])


@pytest.mark.parametrize("snr", [20, 50, 200])
@pytest.mark.parametrize("technique", ["raman", "ftir"])
def test_snr_estimate_is_within_30_percent(technique, snr):
    if technique == "raman":
        batch, grid = SpectrumBatch(X_RAMAN, raman(snr, background=3.0), "raman"), RAMAN_GRID
    else:
        batch, grid = SpectrumBatch(X_FTIR, ftir(snr), "ftir", "absorbance"), FTIR_GRID
    q = assess(batch, grid)
    ratio = q.snr / snr
    assert ratio.min() > 0.7 and ratio.max() < 1.3, f"estimated/true SNR from {ratio.min():.2f} to {ratio.max():.2f}"


def test_low_snr_fires_below_threshold_only():
    weak = assess(SpectrumBatch(X_RAMAN, raman(4, m=10), "raman"), RAMAN_GRID)
    good = assess(SpectrumBatch(X_RAMAN, raman(50, m=10), "raman"), RAMAN_GRID)
    assert all("low_snr" in f for f in weak.flags) and np.all(weak.snr < SNR_LOW)
    assert not any("low_snr" in f for f in good.flags)


def test_saturation_from_a_flat_top_or_the_device():
    Y = raman(100, m=4)
    clipped = Y.copy()
    clipped[1] = np.minimum(clipped[1], 0.9 * clipped[1].max())  # detector full well: flat band top
    q = assess(SpectrumBatch(X_RAMAN, clipped, "raman"), RAMAN_GRID)
    assert q.saturated.tolist() == [False, True, False, False]
    assert q.row(1)["saturated"] is True and "saturated" in q.row(1)["flags"]
    assert "saturated" not in q.row(0)["flags"]
    reported = SpectrumBatch(X_RAMAN, Y, "raman", metadata={"device_errors": json.dumps([[202, "Detector saturated"]])})
    assert all(assess(reported, RAMAN_GRID).saturated)


def hump(strength, x=X_RAMAN, centre=1000.0, width=500.0):
    """A broad fluorescence hump ``strength`` times the tallest band (band height 1000 counts)."""
    return 1000 * strength * np.exp(-0.5 * ((x - centre) / width) ** 2)


def test_high_fluorescence_fires_for_a_swamping_background_only():
    """A broad hump 30x the tallest band swamps it, whatever dark offset it sits on; 0.5x does not."""
    bands = raman(100, background=0.0, m=5)
    for offset in (0.0, 1030.0, 20000.0):
        swamped = assess(SpectrumBatch(X_RAMAN, bands + hump(30) + offset, "raman"), RAMAN_GRID)
        mild = assess(SpectrumBatch(X_RAMAN, bands + hump(0.5) + offset, "raman"), RAMAN_GRID)
        assert all("high_fluorescence" in f for f in swamped.flags), offset
        assert np.all(swamped.fluorescence > 0.93)
        assert not any("high_fluorescence" in f for f in mild.flags)
        # the hump is 0.5 x the band under it and ~0.05 x at the far edge: about a third of the signal
        assert np.all((mild.fluorescence > 0.2) & (mild.fluorescence < 0.5))
    # a decaying exponential (the usual 785 nm shape), 50x the band at the low-shift end, ~20x under the
    # band and ~6x at the far end: 14x the band above that floor swamps it too
    decay = 1000 * 50 * np.exp(-(X_RAMAN - X_RAMAN[0]) / 900)
    q = assess(SpectrumBatch(X_RAMAN, bands + decay + 1030.0, "raman"), RAMAN_GRID)
    assert all("high_fluorescence" in f for f in q.flags)


def test_the_share_is_measured_above_the_dark_level():
    """A flat detector offset, however large, is not fluorescence: the share is the same without it."""
    Y = raman(100, background=0.0, m=5) + hump(3)
    base = assess(SpectrumBatch(X_RAMAN, Y, "raman"), RAMAN_GRID).fluorescence
    for offset in (1030.0, 30000.0, -500.0):
        shifted = assess(SpectrumBatch(X_RAMAN, Y + offset, "raman"), RAMAN_GRID)
        np.testing.assert_allclose(shifted.fluorescence, base, atol=1e-9)
        assert not any("high_fluorescence" in f for f in shifted.flags)
    # bands alone on a 30x offset (a dark level 30 times the band, nothing broad): nothing counted
    flat = assess(SpectrumBatch(X_RAMAN, raman(100, background=0.0, m=5) + 30000.0, "raman"), RAMAN_GRID)
    assert np.all(flat.fluorescence < 0.05)


def test_vendor_baseline_subtracted_rows_have_little_fluorescence():
    """A row whose baseline the vendor removed (values around zero, partly negative) is not flagged."""
    Y = raman(100, background=5.0, m=5)
    t = (X_RAMAN - X_RAMAN[0]) / (X_RAMAN[-1] - X_RAMAN[0])
    flattened = Y - 1000 * 5.0 * (1 + 0.5 * t - 0.3 * t**2 + np.exp(-(X_RAMAN - X_RAMAN[0]) / 300)) - 200.0
    assert flattened.min() < 0
    q = assess(SpectrumBatch(X_RAMAN, flattened, "raman"), RAMAN_GRID)
    assert np.all(q.fluorescence < 0.1) and not any("high_fluorescence" in f for f in q.flags)


def test_fluorescence_is_not_judged_for_ftir():
    q = assess(SpectrumBatch(X_FTIR, ftir(100, m=3) + 5.0, "ftir", "absorbance"), FTIR_GRID)
    assert np.all(q.fluorescence == 0) and not any("high_fluorescence" in f for f in q.flags)


def test_axis_out_of_range_when_the_grid_is_poorly_covered():
    x = np.linspace(1100.0, 2100.0, 700)
    half = assess(SpectrumBatch(x, raman(100, m=2, x=x), "raman"), RAMAN_GRID)
    full = assess(SpectrumBatch(X_RAMAN, raman(100, m=2), "raman"), RAMAN_GRID)
    assert all("axis_out_of_range" in f for f in half.flags)
    assert not any("axis_out_of_range" in f for f in full.flags)
    assert COVERAGE_MIN == 0.9


def test_detector_warm_from_device_errors_or_flags():
    Y = raman(100, m=2)
    for metadata in ({"device_errors": [[203, "Detector not at temperature"]]}, {"flags": ["detector_warm"]}):
        q = assess(SpectrumBatch(X_RAMAN, Y, "raman", metadata=metadata), RAMAN_GRID)
        assert all("detector_warm" in f for f in q.flags)
    other_error = {"device_errors": [[-230, "Data corrupt or stale"]]}
    q = assess(SpectrumBatch(X_RAMAN, Y, "raman", metadata=other_error), RAMAN_GRID)
    assert q.flags == [[], []]


def test_device_flags_reads_both_forms_and_ignores_junk():
    as_stored = json.dumps([[202, "Detector saturated"], [203, "Detector not at temperature"]])
    assert device_flags({"device_errors": as_stored}) == {"saturated", "detector_warm"}
    assert device_flags({"device_errors": "not json", "flags": ["low_snr", "saturated"]}) == {"saturated"}
    assert device_flags({"device_errors": [["abc", "?"]]}) == set()
    assert device_flags({}) == set()


def test_rows_are_result_format_objects():
    q = assess(SpectrumBatch(X_RAMAN, raman(50, m=3), "raman"), RAMAN_GRID)
    assert len(q) == 3
    for row in q.rows():
        assert set(row) == {"snr", "saturated", "fluorescence", "flags"}
        assert type(row["snr"]) is float and type(row["saturated"]) is bool
        assert type(row["fluorescence"]) is float and isinstance(row["flags"], list)
        json.dumps(row)


def test_batch_equals_row_by_row():
    Y = raman(30, m=6, background=2.0)
    Y[2] = np.minimum(Y[2], 0.8 * Y[2].max())
    batch = SpectrumBatch(X_RAMAN, Y, "raman")
    together = assess(batch, RAMAN_GRID).rows()
    alone = [assess(SpectrumBatch(X_RAMAN, Y[i], "raman"), RAMAN_GRID).row(0) for i in range(len(Y))]
    assert together == alone


def test_dead_rows_and_pixels_do_not_crash():
    Y = raman(50, m=3)
    Y[0] = np.nan
    Y[1, [100, 101, 700]] = np.nan
    q = assess(SpectrumBatch(X_RAMAN, Y, "raman"), RAMAN_GRID)
    assert q.row(0) == {"snr": 0.0, "saturated": False, "fluorescence": 0.0, "flags": ["low_snr"]}
    assert q.row(1)["flags"] == [] and np.isfinite(q.snr).all()


def test_real_enfsi_reference_spectra_pass_every_check():
    files = sorted((REAL / "enfsi_ir").glob("*.json"))
    if not files:
        pytest.skip("shared ENFSI data not available")
    for f in files:
        s = json.loads(f.read_text())["spectrum"]
        y = np.asarray(s["y"], dtype=float)
        batch = SpectrumBatch(np.linspace(s["firstX"], s["lastX"], y.size), 1 - y / 100, "ftir", "absorbance")
        row = assess(batch, FTIR_GRID).row(0)
        assert row["flags"] == [] and row["snr"] > 50, f"{f.name}: {row}"


CHARISMA = REAL / "raman_multi_instrument_charisma" / "datasets2"
REFERENCE_MATERIALS = ("PST", "Pol_", "Sil", "Si_", "nCAL", "sCAL")  # fol.qa.suite.CHARISMA_MATERIALS


def _read_raman(path):
    from fol.io.formats import read_spectra_file

    [(_, s)] = read_spectra_file(path, "raman")
    return SpectrumBatch(s.wavenumber, s.intensity, "raman")


def test_real_charisma_horiba_785_bias_is_not_fluorescence():
    """FMNT-M Horiba 785 nm silicon and calcite: a ~1,030-count detector bias under weak bands.

    The share above zero counts was 0.60-0.98 on them (``high_fluorescence`` on three); a silicon
    wafer and calcite do not fluoresce, and above the dark level the share is 0.01-0.24."""
    files = sorted(f for f in (CHARISMA / "FMNT-M_Ho785").glob("*.txt") if f.name.startswith(("Sil", "nCAL", "sCAL")))
    if not files:
        pytest.skip("shared CHARISMA data not available")
    assert len(files) == 9
    for f in files:
        batch = _read_raman(f)
        y = batch.intensity[0]
        assert 1000 < y.min() < 1100, f"{f.name}: the bias this test is about is missing ({y.min():.0f})"
        if f.name.startswith("Sil"):  # most of the recorded counts are the bias
            assert y.min() > 0.7 * y.max(), f.name
        row = assess(batch, RAMAN_GRID).row(0)
        assert row["fluorescence"] < 0.3 and "high_fluorescence" not in row["flags"], f"{f.name}: {row}"


def test_real_charisma_reference_materials_are_not_flagged_fluorescent():
    """Polystyrene, silicon and calcite on every CHARISMA set-up (532/633/785 nm, offsets of ~0 to
    ~1,000 counts, some rows partly negative): none is flagged, none has a share above one half."""
    files = sorted(f for f in CHARISMA.glob("*/*.txt") if f.name.startswith(REFERENCE_MATERIALS))
    if not files:
        pytest.skip("shared CHARISMA data not available")
    assert len(files) >= 35
    negative = 0
    for f in files:
        batch = _read_raman(f)
        negative += batch.intensity.min() < 0
        row = assess(batch, RAMAN_GRID).row(0)
        assert row["fluorescence"] < 0.5 and "high_fluorescence" not in row["flags"], f"{f.name}: {row}"
    assert negative >= 3  # the rows that dip below zero are among them


def test_real_slopp_exports_are_not_flagged_fluorescent():
    """The 261 SLoPP plastics (dyed fibres and coloured parts included, many rows partly negative): none flagged."""
    files = sorted((REAL / "raman_plastics_slopp").glob("*.txt"))
    if not files:
        pytest.skip("shared SLoPP data not available")
    shares = []
    for f in files:
        q = assess(_read_raman(f), RAMAN_GRID)
        assert "high_fluorescence" not in q.flags[0], f.name
        shares.append(q.fluorescence[0])
    assert max(shares) < 0.5


def test_dark_level_of_a_real_row_ignores_a_dead_pixel():
    """The floor is the background's minimum, bounded by the row's: one pixel read as 0 barely moves it."""
    from fol.identification.quality import background, dark_level
    from fol.preprocess.savgol import savgol_filter

    path = CHARISMA / "FMNT-M_Ho785" / "Sil10_iR785_OP02_25000msx2.txt"
    if not path.is_file():
        pytest.skip("shared CHARISMA data not available")
    batch = _read_raman(path)
    x, y = batch.wavenumber, batch.intensity
    dead = y.copy()
    dead[0, y.shape[1] // 2] = 0.0
    levels = []
    for row in (y, dead):
        smoothed = savgol_filter(row, 7, 3, axis=1, mode="mirror")
        levels.append(dark_level(smoothed, background(x, smoothed, 200.0))[0])
    assert 1000 < levels[0] < 1050
    assert abs(levels[1] - levels[0]) < 30
