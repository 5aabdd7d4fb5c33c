"""Preprocessing: one contract every step honours, then what each step is for."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fol.errors import SpectrumError
from fol.preprocess.recipe import FTIR_GRID, RAMAN_GRID, ProcessedBatch, Recipe, default_grid, default_recipe
from fol.preprocess.steps import STEPS, baseline, despike, normalize
from fol.spectrum import Spectrum, SpectrumBatch

from builders import REAL


def lorentz(x, centre, fwhm, height):
    return height / (1.0 + ((x - centre) / (fwhm / 2.0)) ** 2)


def raman_like(x, rng, m=5, with_nan=False):
    """``m`` Raman-like rows: bands on a sloping fluorescence background, noise, one spike."""
    rows = []
    for i in range(m):
        lines = [(450, 14, 0.6), (1000, 10, 1.0), (1300, 18, 0.4), (1600, 12, 0.8)]
        bands = sum(lorentz(x, c + 3 * i, w, h) for c, w, h in lines)
        t = (x - x[0]) / (x[-1] - x[0])
        rows.append(1000 * (bands + 2 + i - 1.5 * t + 0.8 * t**2) + rng.normal(0, 5, x.size))
    Y = np.array(rows)
    Y[1, 300] += 4000  # a cosmic ray
    if with_nan:
        Y[0, [10, 11, 400]] = np.nan
        Y[3, 0] = np.nan
    return Y


# one representative parameter set per step (every step in STEPS must appear)
CASES = {
    "fill_nan": {},
    "crop": {"lo": 300.0, "hi": 1800.0},
    "resample": {"grid": RAMAN_GRID},
    "despike": {"threshold": 6.0},
    "baseline": {"method": "imodpoly", "poly_order": 5, "tol": 0.01},
    "smooth": {"window": 7, "polyorder": 3},
    "derivative": {"order": 1, "window": 9, "polyorder": 3},
    "exclude": {"ranges": [[900.0, 1100.0]]},
    "normalize": {},
}


def test_every_step_has_a_contract_case():
    assert set(CASES) == set(STEPS)


@pytest.fixture
def native():
    """An evenly spaced native axis wider than the Raman grid, and its rows."""
    x = np.linspace(150.0, 2050.0, 760)
    return x, np.random.default_rng(11)


@pytest.mark.parametrize("name", sorted(CASES))
def test_step_contract(name, native):
    x, rng = native
    Y = raman_like(x, rng, with_nan=name == "fill_nan")
    fn, params = STEPS[name], CASES[name]
    x_in, Y_in = x.copy(), Y.copy()

    new_x, out = fn(x_in, Y_in, **params)

    # input untouched
    np.testing.assert_array_equal(x_in, x)
    np.testing.assert_array_equal(Y_in, Y)
    # shape and finiteness
    assert new_x.ndim == 1 and out.shape == (Y.shape[0], new_x.size)
    assert np.all(np.isfinite(out))
    # the batch result is the row-by-row result
    rows = np.vstack([fn(x, Y[i : i + 1], **params)[1] for i in range(Y.shape[0])])
    np.testing.assert_allclose(out, rows, rtol=1e-10, atol=1e-12 * np.abs(out).max())
    # read-only input (as SpectrumBatch stores it) is fine
    frozen = Y.copy()
    frozen.setflags(write=False)
    np.testing.assert_array_equal(fn(x, frozen, **params)[1], out)
    # a decreasing axis, flipped by SpectrumBatch, gives the same result
    batch = SpectrumBatch(x[::-1], Y[:, ::-1], "raman")
    flipped_x, flipped = fn(batch.wavenumber, batch.intensity, **params)
    np.testing.assert_array_equal(flipped_x, new_x)
    np.testing.assert_allclose(flipped, out, rtol=1e-12, atol=1e-12 * np.abs(out).max())


def _recipe_around(name):
    """A recipe that puts ``name`` in a valid position, plus the same chain as plain calls."""
    step = {"step": name, **{k: v for k, v in CASES[name].items() if k != "grid"}}
    if name == "resample":
        return [step]
    if name in ("crop", "fill_nan", "despike"):
        return [step, {"step": "resample"}]
    return [{"step": "resample"}, step]


@pytest.mark.parametrize("name", sorted(CASES))
def test_steps_compose_in_a_recipe_and_survive_json(name, native):
    x, rng = native
    Y = raman_like(x, rng, with_nan=name == "fill_nan")
    batch = SpectrumBatch(x, Y, "raman")
    recipe = Recipe(_recipe_around(name))

    result = recipe.apply(batch, RAMAN_GRID)

    # same as calling the steps by hand, then zeroing the grid points the axis
    # entering resample did not cover (only crop leaves any)
    cx, cY = batch.wavenumber, batch.intensity
    for item in recipe.steps:
        params = {k: v for k, v in item.items() if k != "step"}
        if item["step"] == "resample":
            params["grid"] = RAMAN_GRID
            inside = (RAMAN_GRID >= cx[0]) & (RAMAN_GRID <= cx[-1])
        cx, cY = STEPS[item["step"]](cx, cY, **params)
    np.testing.assert_array_equal(result.data, np.where(inside, cY, 0).astype(np.float32))
    np.testing.assert_allclose(result.coverage, inside.mean())
    # JSON round trip: same text, same output
    again = Recipe.from_json(recipe.to_json())
    assert again.to_json() == recipe.to_json() and again == recipe
    np.testing.assert_array_equal(again.apply(batch, RAMAN_GRID).data, result.data)


# ----------------------------------------------------------------- recipe handling


def test_recipe_output_types_and_single_spectrum(native):
    x, rng = native
    batch = SpectrumBatch(x, raman_like(x, rng), "raman")
    out = default_recipe("raman").apply(batch, RAMAN_GRID)
    assert isinstance(out, ProcessedBatch)
    assert out.grid.dtype == np.float64 and np.array_equal(out.grid, RAMAN_GRID)
    assert out.data.dtype == np.float32 and out.data.flags.c_contiguous
    assert out.data.shape == (len(batch), RAMAN_GRID.size)
    np.testing.assert_allclose(out.coverage, 1.0)
    one = default_recipe("raman").apply_spectrum(batch[2], RAMAN_GRID)
    assert one.data.shape == (1, RAMAN_GRID.size)
    np.testing.assert_allclose(one.data[0], out.data[2], atol=1e-6)


def test_invalid_rows_come_back_as_zero_rows(native):
    x, rng = native
    Y = raman_like(x, rng)
    Y[2] = np.nan
    out = default_recipe("raman").apply(SpectrumBatch(x, Y, "raman"), RAMAN_GRID)
    assert set(out.invalid) == {2} and "NaN" in out.invalid[2]
    assert not out.data[2].any() and out.coverage[2] == 0
    assert np.all(np.abs(np.linalg.norm(out.data[[0, 1, 3, 4]], axis=1) - 1) < 1e-5)


def test_nan_without_fill_nan_marks_the_row_not_the_batch(native):
    x, rng = native
    Y = raman_like(x, rng)
    Y[1, 200] = np.nan
    recipe = Recipe(
        [{"step": "resample"}, {"step": "baseline", "method": "modpoly", "poly_order": 3}, {"step": "normalize"}]
    )
    out = recipe.apply(SpectrumBatch(x, Y, "raman"), RAMAN_GRID)
    assert list(out.invalid) == [1] and not out.data[1].any()
    assert np.all(np.isfinite(out.data)) and np.linalg.norm(out.data[0]) == pytest.approx(1, abs=1e-5)


def test_to_json_is_exact_and_readable():
    recipe = default_recipe("ftir")
    text = recipe.to_json()
    assert Recipe.from_json(text).to_json() == text
    assert Recipe.from_json(json.loads(text)).to_json() == text
    assert json.loads(text)[0] == {"step": "fill_nan"}


@pytest.mark.parametrize(
    "steps, message",
    [
        ([{"step": "resample"}, {"step": "despyke"}], "despyke"),
        ([{"step": "resample"}, {"step": "smooth", "windw": 7}], "windw"),
        ([{"step": "resample"}, {"step": "baseline", "method": "arpls", "lamda": 1e5}], "lamda"),
        ([{"step": "resample"}, {"step": "baseline", "method": "nosuch"}], "arpls"),
        ([{"step": "resample", "grid": [1, 2, 3]}], "run time"),
        ([{"step": "crop", "lo": 1}, {"step": "resample"}], "hi"),
        ([{"step": "smooth"}], "resample"),
        ([{"step": "resample"}, {"step": "crop", "lo": 1, "hi": 2}], "off the grid"),
        ([{"step": "resample"}, {"smooth": 7}], "step"),
        ("not a list", "list"),
    ],
)
def test_bad_recipes_fail_at_construction(steps, message):
    with pytest.raises(ValueError, match=message):
        Recipe(steps)


def test_bad_recipe_json_is_a_value_error():
    with pytest.raises(ValueError, match="JSON"):
        Recipe.from_json("[{'step': 'resample'}]")


def test_unknown_baseline_method_lists_valid_ones():
    x = np.linspace(0, 1, 100)
    with pytest.raises(ValueError, match="unknown baseline method 'als'.*arpls.*imodpoly"):
        baseline(x, np.ones((1, 100)), method="als")


def test_defaults():
    for technique, grid in (("raman", RAMAN_GRID), ("ftir", FTIR_GRID)):
        np.testing.assert_array_equal(default_grid(technique), grid)
        assert isinstance(default_recipe(technique), Recipe)
    assert RAMAN_GRID[0] == 200 and RAMAN_GRID[-1] == 2000 and RAMAN_GRID.size == 901
    assert FTIR_GRID[0] == 650 and FTIR_GRID[-1] == 3998 and FTIR_GRID.size == 838
    with pytest.raises(SpectrumError):
        default_recipe("nmr")


# ------------------------------------------------------------------ step behaviour


def test_despike_removes_a_spike_and_keeps_a_strong_narrow_band():
    x = np.arange(400.0, 1424.0)
    rng = np.random.default_rng(5)
    sigma = 1.0
    truth = 100 + lorentz(x, 900, 10, 200 * sigma)  # a real band, 10 pixels wide, 200 sigma high
    y = truth + rng.normal(0, sigma, x.size)
    spiked = y.copy()
    spiked[700] += 50 * sigma  # 1-pixel cosmic ray
    spiked[[300, 301]] += [45 * sigma, 60 * sigma]  # 2-pixel cosmic ray

    _, out = despike(x, spiked[None])

    for i in (700, 300, 301):
        assert abs(out[0, i] - truth[i]) < 4 * sigma
    top = 500  # x = 900
    assert abs((out[0, top] - 100) - (y[top] - 100)) <= 0.02 * 200 * sigma
    np.testing.assert_array_equal(out[0, 350:650], y[350:650])  # the band is untouched


def test_despike_leaves_noise_free_spectra_alone():
    x = np.arange(200.0, 2000.0, 2.0)
    y = 5 + lorentz(x, 1000, 8, 1.0) + lorentz(x, 1200, 12, 0.3)
    np.testing.assert_array_equal(despike(x, y[None])[1][0], y)


def test_raman_baseline_removes_fluorescence():
    """Polynomial + exponential fluorescence five times the strongest band."""
    x = RAMAN_GRID
    t = (x - x[0]) / (x[-1] - x[0])
    lines = [(520, 12, 0.5), (830, 10, 0.3), (1000, 8, 1.0), (1030, 14, 0.45), (1450, 20, 0.6), (1600, 12, 0.8)]
    bands = sum(lorentz(x, c, w, h) for c, w, h in lines)
    fluorescence = 5 * (1 + 0.6 * t - 0.9 * t**2 + 0.3 * t**3) + 3 * np.exp(-(x - 200) / 400)
    y = bands + fluorescence + np.random.default_rng(2).normal(0, 0.005, x.size)
    step = next(s for s in default_recipe("raman").steps if s["step"] == "baseline")
    params = {k: v for k, v in step.items() if k != "step"}

    _, corrected = baseline(x, y[None], **params)

    fitted = y - corrected[0]
    assert np.abs(fitted - fluorescence).max() < 0.02 * bands.max()


def enfsi():
    """The 67 ENFSI ATR-FTIR spectra as (name, axis, absorbance)."""
    files = sorted((REAL / "enfsi_ir").glob("*.json"))
    if not files:
        pytest.skip("shared ENFSI data not available")
    out = []
    for f in files:
        record = json.loads(f.read_text())
        s = record["spectrum"]
        y = np.asarray(s["y"], dtype=float)
        out.append((f.stem, np.linspace(s["firstX"], s["lastX"], y.size), 1 - y / 100))
    return out


def test_ftir_baseline_removes_a_curved_baseline_from_real_atr_spectra():
    step = next(s for s in default_recipe("ftir").steps if s["step"] == "baseline")
    params = {k: v for k, v in step.items() if k != "step"}
    recipe_grid = Recipe([{"step": "resample"}])
    errors = []
    for _, x, a in enfsi():
        A = recipe_grid.apply_spectrum(Spectrum(x, a, "ftir", "absorbance"), FTIR_GRID).data.astype(float)
        g = FTIR_GRID
        t = (g - g[0]) / (g[-1] - g[0])
        tilt = 0.05 + 0.2 * t + 0.15 * t**2 + 0.05 * np.exp(-(g - g[0]) / 300)
        clean, tilted = baseline(g, A, **params)[1], baseline(g, A + tilt, **params)[1]
        errors.append(np.abs(tilted - clean).max() / A.max())
    assert len(errors) == 67
    assert np.median(errors) < 0.015 and max(errors) < 0.03


def test_normalize_gives_unit_norm_zero_mean_and_keeps_zero_rows():
    x = np.arange(50.0)
    Y = np.vstack([np.sin(x / 3) + 7, np.zeros(50), np.full(50, 4.0), np.linspace(-1, 3, 50)])
    _, out = normalize(x, Y)
    np.testing.assert_allclose(np.linalg.norm(out[[0, 3]], axis=1), 1.0)
    np.testing.assert_allclose(out[[0, 3]].mean(axis=1), 0.0, atol=1e-15)
    assert not out[1].any() and not out[2].any()
    # a dot product of two normalised rows is their Pearson correlation
    assert out[0] @ out[3] == pytest.approx(np.corrcoef(Y[0], Y[3])[0, 1])


def test_half_covered_query_gets_coverage_half_and_zeros_outside():
    x = np.linspace(1100.0, 2100.0, 600)
    rng = np.random.default_rng(4)
    y = 500 + 100 * lorentz(x, 1450, 15, 1) + 80 * lorentz(x, 1600, 12, 1) + rng.normal(0, 1, x.size)
    out = default_recipe("raman").apply_spectrum(Spectrum(x, y, "raman"), RAMAN_GRID)
    inside = RAMAN_GRID >= 1100
    assert out.coverage[0] == pytest.approx(inside.mean(), abs=0.01) and 0.45 < out.coverage[0] < 0.55
    assert not out.data[0, ~inside].any()
    assert np.all(np.isfinite(out.data))
    assert np.linalg.norm(out.data[0]) == pytest.approx(1, abs=1e-5)
    assert out.data[0, inside].mean() == pytest.approx(0, abs=1e-6)


def perturbed(x, a, rng, shift=4.0, snr=50.0):
    """ENFSI absorbance shifted by +/-shift cm-1, on a sloped/curved baseline, with noise."""
    t = (x - x[0]) / (x[-1] - x[0])
    tilt = rng.uniform(0, 0.1) + rng.uniform(-0.3, 0.3) * t + rng.uniform(-0.3, 0.3) * t**2
    moved = np.interp(x - rng.choice([-1, 1]) * shift, x, a)
    return moved + tilt + rng.normal(0, a.max() / snr, x.size)


def test_processed_enfsi_spectra_find_themselves_despite_baseline_shift_and_noise():
    data = enfsi()
    recipe = default_recipe("ftir")
    def processed(x, a):
        return recipe.apply_spectrum(Spectrum(x, a, "ftir", "absorbance"), FTIR_GRID).data[0]

    library = np.vstack([processed(x, a) for _, x, a in data])
    rng = np.random.default_rng(2026)
    queries = np.vstack([processed(x, perturbed(x, a, rng)) for _, x, a in data])
    scores = queries @ library.T
    found = scores.argmax(axis=1) == np.arange(len(data))
    misses = [(data[i][0], data[scores[i].argmax()][0]) for i in np.flatnonzero(~found)]
    assert found.sum() == 67, f"top-1 {found.sum()}/67, confused: {misses}"


def test_raman_recipe_on_a_native_pixel_batch(native):
    """A realistic 1,024-pixel batch goes through the default recipe (speed: benchmarks/stages.py)."""
    x = np.linspace(150.0, 2050.0, 1024)
    rng = np.random.default_rng(0)
    batch = SpectrumBatch(x, np.vstack([raman_like(x, rng, m=5) for _ in range(200)]), "raman")
    recipe = default_recipe("raman")
    out = recipe.apply(batch, RAMAN_GRID)
    assert not out.invalid and out.data.shape == (len(batch), RAMAN_GRID.size)
    np.testing.assert_allclose(np.linalg.norm(out.data, axis=1), 1, atol=1e-5)


def test_steps_that_select_columns_return_row_major_arrays():
    """Boolean or index-array column selection gives Fortran-ordered copies, which make
    every later row-wise step (medians, baselines, filters) several times slower."""
    x = np.linspace(100, 2100, 1024)
    Y = np.random.default_rng(0).normal(size=(64, x.size))
    from fol.preprocess.steps import crop, resample

    for _, out in (crop(x, Y, 200.0, 2000.0), resample(x, Y, grid=RAMAN_GRID)):
        assert out.flags.c_contiguous or out.strides[1] == out.itemsize
    cx, cy = crop(x, Y, 200.0, 2000.0)
    keep = (x >= 200.0) & (x <= 2000.0)
    np.testing.assert_array_equal(cx, x[keep])
    np.testing.assert_array_equal(cy, Y[:, keep])
    want = np.array([np.interp(RAMAN_GRID, x, r) for r in Y])
    np.testing.assert_allclose(resample(x, Y, grid=RAMAN_GRID)[1], want, rtol=0, atol=1e-12)
