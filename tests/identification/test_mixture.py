"""Mixture analysis: forward selection with a joint baseline, shifts and widths, F-test, speed."""


import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d
from scipy.signal import savgol_filter

from builders import lorentz
from fol.io.library import load_library, make_section
from fol.identification.mixture import (C_HI, C_LO, SHIFT_MAX, MixtureModel, MixturePolicy, baseline_basis,
                                        f_test, savgol_matrix)
from fol.preprocess.recipe import default_recipe


@pytest.fixture
def peak_section(peak_library_rows):
    grid, names, raw = peak_library_rows
    return make_section("raman", grid, raw, names, ["cutting-agent"] * len(names), [False] * len(names),
                        ["computed"] * len(names), ["test"] * len(names), default_recipe("raman"))


@pytest.fixture(scope="module")
def enfsi_section(enfsi_library):
    return load_library(enfsi_library).section("ftir")


def measured(grid, clean, rng, *, shift=0.0, broaden=0.0, snr=200.0, baseline=0.3):
    """A query the way a device would see it: shifted, broadened, on a curved baseline, with noise."""
    y = np.interp(grid - shift, grid, clean)
    if broaden:
        y = gaussian_filter1d(y, broaden / np.median(np.diff(grid)) / 2.355)
    u = np.linspace(-1, 1, grid.size)
    y = y + baseline * y.max() * (1 + 0.8 * u + 0.5 * u**2)
    return y + y.max() / snr * rng.standard_normal(grid.size)


def names_of(model, fit):
    return [model.section.names[c.row] for c in fit.components]


@pytest.mark.parametrize("n", [12, 15, 16, 23, 901, 1751])
@pytest.mark.parametrize("window,deriv", [(5, 0), (7, 1), (7, 2), (11, 2)])
def test_savgol_matrix_is_the_filter(n, window, deriv):
    """Short signals (n <= 2 window + 1) filter the identity directly, longer ones assemble the band."""
    rng = np.random.default_rng(n)
    s = rng.standard_normal((3, n)).cumsum(axis=1)
    m = savgol_matrix(n, window, 3, deriv, 1.7)
    assert m.shape == (n, n) and m.nnz <= window * n
    want = savgol_filter(s, window, 3, deriv=deriv, delta=1.7, axis=1)
    np.testing.assert_allclose((m @ s.T).T, want, rtol=0, atol=1e-12 * np.abs(want).max())


@pytest.mark.parametrize("capacity", [1024, 6])
def test_ray_rows_from_the_cache_are_the_ones_computed_afresh_whatever_the_batch(peak_section, capacity, monkeypatch):
    """The projected rays of a row do not depend on the rows asked with it nor on the cache's state
    (also when rows are evicted and their slots reused: capacity 6, 5 rows per request)."""
    import fol.identification.mixture as mixture

    monkeypatch.setattr(mixture, "RAY_CACHE_ROWS", capacity)
    model = MixtureModel(peak_section)
    mask = model.default_mask.copy()
    mask[:7] = False
    own = model._screening(mask)[0]  # the model's projector of this mask: projected rays cached
    other = np.linalg.qr(np.hstack([own, np.linspace(0, 1, own.shape[0])[:, None] ** 2]))[0]  # not cached
    rng = np.random.default_rng(3)
    for q in (own, other):
        for width in (0.0, 4.0, 0.0):
            for _ in range(4):
                rows = [int(j) for j in rng.choice(len(model), 5, replace=False)]
                R, RR = model._ray_rows(rows, mask, q, width)
                for i, j in enumerate(rows):
                    s = model._broadened(model.refs[[j]], width)
                    raw = (model._ray_op @ s.T).reshape(4, model.grid.size)[:, mask]
                    want = raw - (raw @ q) @ q.T
                    assert np.array_equal(R[i], want) and np.array_equal(RR[i], want @ want.T)
                np.testing.assert_allclose(np.swapaxes(R, 1, 2), model._blocks(rows, mask, q, width), rtol=0,
                                           atol=1e-12 * np.abs(R).max())
    assert model._slabs and any(k[0][0] == "r" for k in model._ray_cache)  # both caches were used


def test_rays_prefetched_for_a_batch_are_the_ones_computed_alone(peak_section):
    """``fit_many`` computes the missing rays of all spectra's candidates together (``_prefetch``): each row's
    projected rays are bit for bit those ``_ray_rows`` computes for it alone in a fresh model."""
    from fol.identification.mixture import _Rays

    model, fresh = MixtureModel(peak_section), MixtureModel(peak_section)
    mask = model.default_mask
    q = model._screening(mask)[0]
    rng = np.random.default_rng(4)
    asks = [_Rays([int(j) for j in rng.choice(len(model), 6, replace=False)], mask, q, 0.0) for _ in range(5)]
    model._prefetch(asks)
    slab = model._slabs[(mask.tobytes(), 0.0)]
    assert len(slab.slot) == len({j for a in asks for j in a.rows})  # all computed up front
    for a in asks:
        R, RR = model._ray_rows(a.rows, mask, q, 0.0)
        for i, j in enumerate(a.rows):
            R1, RR1 = fresh._ray_rows([j], mask, fresh._screening(mask)[0], 0.0)
            assert np.array_equal(R[i], R1[0]) and np.array_equal(RR[i], RR1[0])


@pytest.mark.parametrize("which", ["peaks", "enfsi"])
def test_rays_are_the_savitzky_golay_derivative_corners(which, peak_section, enfsi_section):
    """The precomputed ray operator is the module doc's definition: s + shift s' + c s'' at the four corners."""
    section = peak_section if which == "peaks" else enfsi_section
    model = MixtureModel(section)
    rows = [0, len(model) // 2, len(model) - 1]
    s = model.refs[rows]
    w = model.policy.deriv_window
    d1 = savgol_filter(s, w, 3, deriv=1, delta=model.step, axis=1)
    d2 = savgol_filter(s, w, 3, deriv=2, delta=model.step, axis=1)
    want = np.stack([s + sh * d1 + c * d2 for sh in (-SHIFT_MAX, SHIFT_MAX) for c in (C_LO, C_HI)], axis=1)
    got = model.rays(rows)
    assert got.shape == want.shape == (3, 4, section.grid.size)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * np.abs(want).max())


def test_fit_many_is_fit_row_by_row_whatever_the_batch(peak_section):
    """Screening a batch together gives each row the fit it gets alone (canonical ranking)."""
    model = MixtureModel(peak_section)
    rng = np.random.default_rng(11)
    grid = peak_section.grid
    Y = np.stack([measured(grid, model.refs[i % 6] + 0.3 * model.refs[(i + 2) % 6], rng, snr=80) for i in range(9)])
    starts = [[i % 6] for i in range(9)]
    alone = [model.fit(y, None, s) for y, s in zip(Y, starts)]
    for batch in (model.fit_many(Y, None, starts), model.fit_many(Y[::-1], None, starts[::-1])[::-1]):
        for a, b in zip(alone, batch):
            assert [(c.row, c.amplitude, c.score) for c in a.components] == \
                   [(c.row, c.amplitude, c.score) for c in b.components]
            assert a.rss == b.rss
    assert any(len(f.components) == 2 for f in alone)
    assert model.fit_many(Y[:0]) == []


def test_two_component_mixture_on_a_baseline_is_recovered_with_fractions(peak_section):
    model = MixtureModel(peak_section)
    rng = np.random.default_rng(1)
    r = model.refs
    y = measured(peak_section.grid, 0.8 * r[3] + 0.2 * r[7], rng, shift=1.5, broaden=4.0)
    fit = model.fit(y)
    assert names_of(model, fit) == ["sub3", "sub7"]
    fractions = [c.fraction for c in fit.components]
    assert fractions[0] == pytest.approx(0.8, abs=0.06) and fractions[1] == pytest.approx(0.2, abs=0.06)
    assert all(0.9 < c.score <= 1.0 for c in fit.components)
    assert fit.explained > 0.98


def test_pure_spectrum_gives_one_component_and_noise_gives_none(peak_section):
    model = MixtureModel(peak_section)
    rng = np.random.default_rng(2)
    fit = model.fit(measured(peak_section.grid, model.refs[5], rng, shift=-2.0, broaden=3.0, snr=100))
    assert names_of(model, fit) == ["sub5"] and fit.components[0].fraction == 1.0
    blank = 0.01 * rng.standard_normal(peak_section.grid.size) + np.linspace(0, 1, peak_section.grid.size)
    assert model.fit(blank).components == []


def test_three_components_are_found_and_never_more_than_max_components(peak_section):
    rng = np.random.default_rng(3)
    model = MixtureModel(peak_section)
    y = measured(peak_section.grid, model.refs[[0, 2, 4]].T @ [0.5, 0.3, 0.2], rng, snr=1000)
    assert sorted(names_of(model, model.fit(y))) == ["sub0", "sub2", "sub4"]
    small = MixtureModel(peak_section, MixturePolicy(max_components=2))
    y = measured(peak_section.grid, model.refs[[0, 2, 4, 6]].sum(axis=0), rng, snr=1000)
    assert len(small.fit(y).components) <= 2


def test_contributions_add_up_to_what_the_fit_explains(peak_section):
    model = MixtureModel(peak_section)
    rng = np.random.default_rng(4)
    y = measured(peak_section.grid, 0.6 * model.refs[1] + 0.4 * model.refs[9], rng, baseline=0.0, snr=1e4)
    fit = model.fit(y)
    left = fit.remainder()
    # what is left is the (here zero) baseline and noise: far smaller than the signal
    assert np.abs(left).max() < 0.05 * np.abs(y).max()


def test_f_test_separates_real_improvement_from_noise():
    rng = np.random.default_rng(5)
    white = rng.standard_normal(900)
    assert f_test(1000.0, 500.0, 900, 3, 20, white) < 1e-10
    assert f_test(1000.0, 999.0, 900, 3, 20, white) > 0.01
    # the same improvement with a smooth (autocorrelated) residual is far less significant
    smooth = gaussian_filter1d(white, 10)
    assert f_test(1000.0, 900.0, 900, 3, 20, smooth) > f_test(1000.0, 900.0, 900, 3, 20, white) * 1e3


def enfsi_query(section, fractions: dict, rng, snr=300.0):
    """Mix ENFSI absorbance spectra (unit strongest band), shift, broaden, baseline, CO2 band, noise."""
    grid = section.grid
    model_refs = section.raw / section.raw.max(axis=1, keepdims=True)
    clean = sum(f * model_refs[section.index_of(n)] for n, f in fractions.items())
    y = measured(grid, clean, rng, shift=rng.uniform(-2, 2), broaden=rng.uniform(3, 8), snr=snr, baseline=0.2)
    return y + 0.05 * lorentz(grid, [2350.0], [1.0], 30.0)


def test_minor_fentanyl_in_cutting_agent_is_found_on_real_enfsi_spectra(enfsi_section):
    model = MixtureModel(enfsi_section)
    rng = np.random.default_rng(6)
    found = 0
    for cut in ("caffeine", "mannitol", "lactose", "acetaminophen", "benzocaine"):
        fit = model.fit(enfsi_query(enfsi_section, {"fentanyl": 0.1, cut: 0.9}, rng))
        classes = [enfsi_section.classes[c.row] for c in fit.components]
        found += "fentanyl-analogue" in classes
        assert names_of(model, fit)[0] == cut
    assert found >= 4


def test_pure_benign_enfsi_spectra_get_no_fentanyl_component(enfsi_section):
    model = MixtureModel(enfsi_section)
    rng = np.random.default_rng(7)
    for cut in ("caffeine", "mannitol", "lactose", "acetaminophen", "benzocaine", "lidocaine"):
        fit = model.fit(enfsi_query(enfsi_section, {cut: 1.0}, rng))
        assert names_of(model, fit)[0] == cut
        assert not any(enfsi_section.classes[c.row] == "fentanyl-analogue" for c in fit.components)


def test_forward_selection_finds_both_components_in_a_10k_entry_library():
    """Speed on this library is measured by benchmarks/stages.py (goal: <= 50 ms per spectrum)."""
    rng = np.random.default_rng(8)
    grid = np.arange(200, 2000.1, 2.0)
    n_lib = 10_000
    centres = rng.uniform(250, 1950, (n_lib, 8))
    raw = np.zeros((n_lib, grid.size), dtype=np.float32)
    for i in range(n_lib):  # a 10k library of distinct band patterns
        raw[i] = lorentz(grid, centres[i], rng.uniform(0.2, 1, 8), 10.0)
    names = [f"s{i}" for i in range(n_lib)]
    recipe = default_recipe("raman")
    section = make_section("raman", grid, raw, names, ["x"] * n_lib, [False] * n_lib, ["computed"] * n_lib,
                           ["t"] * n_lib, recipe, processed=np.zeros_like(raw))
    model = MixtureModel(section)
    queries = [measured(grid, 0.7 * model.refs[i] + 0.3 * model.refs[i + 1], rng, snr=300) for i in range(0, 20, 2)]
    fits = [model.fit(q) for q in queries]
    assert sum(names_of(model, f)[:2] in ([f"s{i}", f"s{i + 1}"],) for f, i in zip(fits, range(0, 20, 2))) >= 9


def wing_section(alarm_filler: bool = False):
    """A main substance with one strong band, a 'filler' whose strongest band sits on the main band's wing
    (and with bands of its own elsewhere), and two unrelated entries."""
    grid = np.arange(200.0, 2000.1, 2.0)
    g = lambda c, w, h=1.0: h * np.exp(-0.5 * ((grid - c) / (w / 2.3548)) ** 2)  # noqa: E731
    lib = {"main": g(1000, 8) + g(1500, 10, 0.3), "filler": g(986, 10) + g(600, 10, 0.4) + g(1300, 10, 0.4),
           "other": g(700, 10) + g(1200, 10, 0.5) + g(1700, 10, 0.5),
           "fourth": g(450, 10) + g(1100, 10, 0.6) + g(1850, 10, 0.4)}
    names = list(lib)
    raw = np.stack([lib[n] for n in names]) * 1000 + 50
    section = make_section("raman", grid, raw, names, ["cutting-agent"] * 4, [False, alarm_filler, False, False],
                           ["computed"] * 4, ["t"] * 4, default_recipe("raman"))
    # the query's main band has a low-wavenumber shoulder the reference lacks (another instrument's line shape)
    return section, lib, g(988, 10, 0.1)


def fitted(section, y, **policy):
    model = MixtureModel(section, MixturePolicy(**policy))
    return [(model.section.names[c.row], c.fraction) for c in model.fit(y).components]


def test_a_band_shape_misfit_is_not_filled_with_another_substance():
    """High SNR: the shoulder alone is 'explained' by the filler without the misfit weighting, not with it;
    a filler that is really there (its own bands present) stays."""
    section, lib, shoulder = wing_section()
    rng = np.random.default_rng(11)
    noise = 0.3 * rng.standard_normal(section.grid.size)
    pure = 1000 * (lib["main"] + shoulder) + 200 + noise
    assert [n for n, _ in fitted(section, pure, misfit_weights=False)] == ["main", "filler"]
    assert fitted(section, pure) == [("main", 1.0)]
    mixed = 1000 * (0.7 * lib["main"] + 0.3 * lib["filler"] + shoulder) + 200 + noise
    assert [n for n, _ in fitted(section, mixed)] == ["main", "filler"]


def test_the_misfit_weighting_never_touches_a_model_with_an_alarm_component():
    section, lib, shoulder = wing_section(alarm_filler=True)
    y = 1000 * (lib["main"] + shoulder) + 200 + 0.3 * np.random.default_rng(12).standard_normal(section.grid.size)
    assert fitted(section, y) == fitted(section, y, misfit_weights=False)
    assert [n for n, _ in fitted(section, y)] == ["main", "filler"]


def test_references_scaled_on_demand_are_the_whole_matrix_scaled_at_once(peak_section):
    """``ScaledReferences`` makes rows when indexed (no float64 copy of the library per process):
    the same numbers, bit for bit, as scaling the whole matrix, for every kind of index."""
    from fol.identification.mixture import ScaledReferences
    from fol.preprocess.steps import in_ranges

    raw = np.asarray(peak_section.raw).copy()
    raw[4] = 0.0  # a row of zeros stays zeros
    mask = ~in_ranges(np.asarray(peak_section.grid), peak_section.recipe.excluded_ranges())
    mask[:7] = False
    r = raw.astype(np.float64)
    peak = np.max(np.where(mask, r, -np.inf), axis=1, keepdims=True)
    whole = np.divide(r, peak, out=np.zeros_like(r), where=peak > 0)
    refs = ScaledReferences(raw, mask)
    assert len(refs) == len(raw) and refs.shape == raw.shape
    np.testing.assert_array_equal(refs[3], whole[3])
    np.testing.assert_array_equal(refs[4], np.zeros(raw.shape[1]))
    np.testing.assert_array_equal(refs[[5, 1, 5]], whole[[5, 1, 5]])
    np.testing.assert_array_equal(refs[np.array([2, 0])], whole[[2, 0]])
    np.testing.assert_array_equal(refs[1:6, mask], whole[1:6][:, mask])


def test_the_screening_matrix_and_bases_are_cached_and_mapped_by_the_next_model(peak_section, tmp_path,
                                                                                  monkeypatch):
    """Issue 16 (worker start-up): with the library hash as ``cache_key``, the screening matrix of the
    default mask goes to the cache directory and the next model maps it (read-only, shared pages);
    the B-spline bases are read from there too. Fits are the same as without any cache; a damaged
    cache file is made again; a cache that cannot be written changes nothing but the time."""
    monkeypatch.setenv("FOL_CACHE_DIR", str(tmp_path / "cache"))
    rng = np.random.default_rng(3)
    refs = MixtureModel(peak_section).refs
    queries = [measured(peak_section.grid, 0.7 * refs[i] + 0.3 * refs[i + 3], rng, snr=300) for i in range(6)]

    def decisions(model):
        return [[(model.section.names[c.row], round(c.fraction, 9)) for c in f.components]
                for f in model.fit_many(np.stack(queries))]

    plain = decisions(MixtureModel(peak_section))
    assert not (tmp_path / "cache").exists()  # no cache key, nothing written
    first = MixtureModel(peak_section, cache_key="ab" * 32)
    screens = list((tmp_path / "cache").glob("mixscreen-v*.npy"))
    bases = list((tmp_path / "cache").glob("bsplinebasis-v*.npz"))
    assert len(screens) == 1 and len(bases) >= 1
    assert decisions(first) == plain
    second = MixtureModel(peak_section, cache_key="ab" * 32)
    _, screen, _ = second._screening(second.default_mask)
    assert isinstance(screen, np.memmap) and not screen.flags.writeable
    np.testing.assert_array_equal(second.basis, first.basis)
    assert decisions(second) == plain
    # another library (hash), another file
    MixtureModel(peak_section, cache_key="cd" * 32)
    assert len(list((tmp_path / "cache").glob("mixscreen-v*.npy"))) == 2
    # damaged files: ignored and made again
    screens[0].write_bytes(screens[0].read_bytes()[:1000])
    for b in bases:
        b.write_bytes(b"not a zip")
    third = MixtureModel(peak_section, cache_key="ab" * 32)
    assert decisions(third) == plain
    assert screens[0].stat().st_size > 1000
    # a cache directory that cannot be written (a file stands where it should be)
    monkeypatch.setenv("FOL_CACHE_DIR", str(screens[0]))
    assert decisions(MixtureModel(peak_section, cache_key="ab" * 32)) == plain


def classed_wing_section(filler_class: str):
    """``wing_section`` with an alarm-flagged filler of class ``filler_class``."""
    section, lib, shoulder = wing_section(alarm_filler=True)
    names = list(lib)
    classes = [filler_class if n == "filler" else "cutting-agent" for n in names]
    raw = np.stack([lib[n] for n in names]) * 1000 + 50
    section = make_section("raman", section.grid, raw, names, classes, [n == "filler" for n in names],
                           ["computed"] * 4, ["t"] * 4, default_recipe("raman"))
    return section, lib, shoulder


def test_a_precursor_filling_a_two_agent_misfit_goes_an_analogue_never():
    """On a 50:50 base of two benign substances, an alarm-class filler of the main band's wing goes when it
    is a precursor (``misfit_test_classes``), stays when it is a fentanyl analogue; on one benign agent
    both stay (the model is left as before)."""
    rng = np.random.default_rng(13)
    for cls, kept in (("fentanyl-precursor", False), ("fentanyl-analogue", True)):
        section, lib, shoulder = classed_wing_section(cls)
        y = 1000 * (0.5 * lib["main"] + 0.5 * lib["other"] + shoulder) + 200 + 0.3 * rng.standard_normal(
            section.grid.size)
        names = [n for n, _ in fitted(section, y)]
        assert ("filler" in names) == kept, (cls, names)
        assert sorted(n for n, _ in fitted(section, y, misfit_test_classes=())) == ["filler", "main", "other"]
        single = 1000 * (lib["main"] + shoulder) + 200 + 0.3 * rng.standard_normal(section.grid.size)
        assert fitted(section, single) == fitted(section, single, misfit_test_classes=())
        assert "filler" in [n for n, _ in fitted(section, single)]


def test_an_alarm_filler_of_a_two_agent_misfit_is_tested_only_when_asked():
    """``misfit_test_classes`` names the classes tested: an alarm-flagged 'filler' of class cutting-agent goes
    only when its class is named; by default a model with it is left exactly as before."""
    section, lib, shoulder = wing_section(alarm_filler=True)
    rng = np.random.default_rng(13)
    y = 1000 * (0.5 * lib["main"] + 0.5 * lib["other"] + shoulder) + 200 + 0.3 * rng.standard_normal(section.grid.size)
    default = fitted(section, y)
    assert default == fitted(section, y, misfit_weights=False)
    assert "filler" in [n for n, _ in default]
    assert sorted(n for n, _ in fitted(section, y, misfit_test_classes=("cutting-agent",))) == ["main", "other"]
    # one benign agent only: the option does not apply
    single = 1000 * (lib["main"] + shoulder) + 200 + 0.3 * rng.standard_normal(section.grid.size)
    assert fitted(section, single, misfit_test_classes=("cutting-agent",)) == fitted(section, single)


def test_prepare_despikes_on_the_detector_pixels_before_binning(peak_section):
    """A 1 cm-1 export on the 2 cm-1 grid is binned (moving mean) before resampling: the recipe's
    despike runs first, on the pixels the spike hit, not on a mean that smeared a 3-pixel event
    over 4 pixels (wider than ``max_width``)."""
    from scipy.ndimage import uniform_filter1d

    from fol.spectrum import SpectrumBatch

    model = MixtureModel(peak_section)
    x = np.arange(150.0, 2100.0, 1.0)
    y = 1000.0 * lorentz(x, [520.0, 1001.0], [1.0, 0.6], 8.0) + 50.0
    spiked = y.copy()
    spiked[699:702] += [1200.0, 2500.0, 1000.0]  # 849-851 cm-1: a cosmic ray over 3 pixels
    raw, _ = model.prepare(SpectrumBatch(x, np.stack([y, spiked]), "raman", "counts"))
    assert np.max(np.abs(raw[1] - raw[0])) < 5.0  # of 1000-count bands
    smeared = model.recipe.to_grid(x, uniform_filter1d(spiked[None], 2, axis=1, mode="nearest"), model.grid)
    assert np.max(np.abs(smeared[0] - raw[0])) > 500.0  # binned first, the spike stays


@pytest.mark.parametrize("damage", ["empty", "header only", "wrong shape", "float64", "pickled objects",
                                    "a directory", "random bytes"])
def test_a_broken_screening_cache_is_made_again_not_trusted(peak_section, tmp_path, monkeypatch, damage):
    """Malformed-input table of the cached screening matrix (``mixscreen-*.npy``): whatever stands at its
    path, the model makes the matrix itself and fits as without a cache."""
    import shutil

    monkeypatch.setenv("FOL_CACHE_DIR", str(tmp_path / "cache"))
    rng = np.random.default_rng(4)
    refs = MixtureModel(peak_section).refs
    y = measured(peak_section.grid, 0.6 * refs[2] + 0.4 * refs[5], rng, snr=300)
    plain = [(c.row, round(c.fraction, 9)) for c in MixtureModel(peak_section).fit(y).components]
    MixtureModel(peak_section, cache_key="ef" * 32)
    path = next((tmp_path / "cache").glob("mixscreen-v*.npy"))
    good = np.load(path)
    path.unlink()
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "header only":
        path.write_bytes(b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (99999999, 901), }")
    elif damage == "wrong shape":
        np.save(path, good[:-1])
    elif damage == "float64":
        np.save(path, good.astype(np.float64))
    elif damage == "pickled objects":
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif damage == "a directory":
        path.mkdir()
    else:
        path.write_bytes(rng.bytes(5000))
    for basis in (tmp_path / "cache").glob("bsplinebasis-v*.npz"):  # the bases' cache, broken the same way
        basis.write_bytes(b"" if damage == "empty" else rng.bytes(300))
    model = MixtureModel(peak_section, cache_key="ef" * 32)
    assert [(c.row, round(c.fraction, 9)) for c in model.fit(y).components] == plain
    if damage == "a directory":
        shutil.rmtree(path)
