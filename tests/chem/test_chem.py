"""Tests for fol.chem: rendering (numpy only), stick I/O, and the GFN2-xTB pipeline."""

from __future__ import annotations

import time

import numpy as np
import pytest

from fol.chem.render import (
    DEFAULT_FWHM_CM1,
    SCALE_FACTOR,
    raman_intensity,
    render,
    render_sticks,
)
from fol.chem.sticks import METHOD_VERSION, StickSpectrum, load_npz


_trapz = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 compatibility


def _fwhm(grid, y):
    half = y.max() / 2.0
    above = np.nonzero(y >= half)[0]
    i0, i1 = above[0], above[-1]
    # linear interpolation of both half-maximum crossings
    left = np.interp(half, [y[i0 - 1], y[i0]], [grid[i0 - 1], grid[i0]])
    right = np.interp(half, [y[i1 + 1], y[i1]], [grid[i1 + 1], grid[i1]])
    return right - left


# ------------------------------------------------------------------ (a) render
@pytest.mark.parametrize("shape", ["gaussian", "lorentzian", "voigt"])
def test_render_area_position_width(shape):
    grid = np.arange(0.0, 6000.0, 0.05)
    freqs = np.array([1000.0, 3000.0])
    inten = np.array([1.0, 3.0])
    y = render(freqs, inten, grid, 6.0, shape=shape)
    assert y.dtype == np.float64 and y.shape == grid.shape
    assert np.all(np.isfinite(y)) and np.all(y >= 0)
    lo = grid < 2000.0
    a1 = _trapz(y[lo], grid[lo])
    a2 = _trapz(y[~lo], grid[~lo])
    assert a2 / a1 == pytest.approx(3.0, rel=2e-3)
    # total area ~ sum of intensities (Lorentzian wings are cut by the finite grid)
    assert _trapz(y, grid) == pytest.approx(4.0, rel=2e-3 if shape == "gaussian" else 2e-3 + 0.002)
    single = render(freqs[:1], inten[:1], grid, 6.0, shape=shape)
    assert grid[np.argmax(single)] == pytest.approx(1000.0, abs=0.05)
    assert _fwhm(grid, single) == pytest.approx(6.0, rel=1e-2)


def test_render_vectorised_matches_loop_and_chunks():
    rng = np.random.default_rng(0)
    freqs = rng.uniform(100, 3500, 300)
    inten = rng.uniform(0, 10, 300)
    grid = np.linspace(50, 3600, 2000)
    y = render(freqs, inten, grid, 8.0)
    ref = sum(render([f], [i], grid, 8.0) for f, i in zip(freqs, inten))
    np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-12)
    # per-band widths and non-uniform grids are accepted
    y2 = render(freqs, inten, np.sort(rng.uniform(50, 3600, 777)), np.full(300, 5.0), "lorentzian")
    assert np.all(np.isfinite(y2))
    with pytest.raises(ValueError):
        render(freqs, inten, grid, 8.0, shape="triangle")
    assert render([], [], grid, 8.0).shape == grid.shape


def test_raman_intensity_formula():
    nu = np.array([-50.0, 0.0, 500.0, 1000.0, 3000.0, 20000.0])
    S = np.full(nu.shape, 2.0)
    out = raman_intensity(nu, S, excitation_nm=785.0, temperature_k=298.15)
    assert out[0] == 0 and out[1] == 0 and out[-1] == 0
    nu0 = 1e7 / 785.0
    c2 = 1.438776877
    expect = 2.0 * (nu0 - nu[2:5]) ** 4 / nu[2:5] / (1 - np.exp(-c2 * nu[2:5] / 298.15))
    ratio = out[2:5] / expect
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-12)  # proportional
    # the (nu0 - nu)^4 factor: shorter excitation -> relatively stronger high shifts
    r532 = raman_intensity(nu, S, excitation_nm=532.0)
    assert r532[4] / r532[2] > out[4] / out[2]


def _fake_sticks():
    return StickSpectrum(
        name="fake",
        smiles="C",
        frequencies_cm1=np.array([-30.0, 500.0, 1500.0, 3000.0]),
        ir_intensity_km_mol=np.array([5.0, 10.0, 0.0, 40.0]),
        raman_activity_A4_amu=np.array([9.0, 1.0, 20.0, 50.0]),
        method="test",
        n_atoms=3,
        imaginary_cm1=(-30.0,),
        warnings=("a warning",),
    )


def test_render_sticks_and_npz_roundtrip(tmp_path):
    st = _fake_sticks()
    grid = np.arange(200.0, 3500.0, 1.0)
    ir = render_sticks(st, grid, "ftir")
    ra = render_sticks(st, grid, "raman")
    for y in (ir, ra):
        assert y.shape == grid.shape and np.all(np.isfinite(y)) and np.all(y >= 0)
    # FTIR: strongest band is the 3000 cm-1 one, scaled
    assert grid[np.argmax(ir)] == pytest.approx(3000 * SCALE_FACTOR, abs=1.0)
    assert grid[np.argmax(ra)] == pytest.approx(1500 * SCALE_FACTOR, abs=1.0)
    band = np.abs(grid - 3000 * SCALE_FACTOR) < 200
    assert _trapz(ir[band], grid[band]) == pytest.approx(40.0, rel=0.02)
    assert DEFAULT_FWHM_CM1 == {"raman": 8.0, "ftir": 4.0}
    assert render_sticks(st, grid, "raman", scale=1.0)[1300] > 0  # 1500 cm-1 unscaled
    with pytest.raises(ValueError):
        render_sticks(st, grid, "uv")

    p = tmp_path / "x.npz"
    st.save_npz(p)
    with np.load(p, allow_pickle=False) as z:  # readable without pickle
        assert z["name"].dtype.kind == "U" and z["name"].ndim == 0
    back = load_npz(p)
    assert back.name == "fake" and back.smiles == "C" and back.method == "test"
    assert back.n_atoms == 3 and back.imaginary_cm1 == (-30.0,)
    assert back.warnings == ("a warning",)
    for f in ("frequencies_cm1", "ir_intensity_km_mol", "raman_activity_A4_amu"):
        np.testing.assert_array_equal(getattr(back, f), getattr(st, f))
        assert getattr(back, f).dtype == np.float64
    empty = StickSpectrum("e", "C", [], [], [], "m", 1)
    empty.save_npz(tmp_path / "e.npz")
    assert load_npz(tmp_path / "e.npz").warnings == ()
    assert isinstance(METHOD_VERSION, int)


def test_chem_package_import_is_light():
    import subprocess
    import sys

    code = (
        "import sys, fol.chem, fol.chem.render, fol.chem.sticks, fol.chem.build;"
        "bad=[m for m in ('rdkit','tblite') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


# ----------------------------------------------------------- (c) tblite field
def test_electric_field_changes_tblite_dipole():
    pytest.importorskip("tblite")
    from fol.chem.xtb import field_dipole_response

    d0, d1 = field_dipole_response(0.001)
    assert np.all(np.isfinite(d0)) and np.all(np.isfinite(d1))
    alpha_zz = (d1[2] - d0[2]) / 0.001
    # water: GFN2-xTB alpha_zz of the order of the experimental 9.6 bohr^3
    assert 2.0 < alpha_zz < 30.0
    assert abs(d1[0] - d0[0]) < 1e-4  # no response perpendicular to the field (symmetry)


# ------------------------------------------------------ (b) GFN2-xTB end to end
@pytest.fixture(scope="module")
def built(tmp_path_factory):
    pytest.importorskip("tblite")
    pytest.importorskip("rdkit")
    from fol.chem.build import build_sticks

    rows = [
        {"name": "acetonitrile", "smiles": "CC#N"},
        {"name": "acetone", "smiles": "CC(C)=O"},
        {"name": "ethanol", "smiles": "CCO"},
    ]
    cache = tmp_path_factory.mktemp("sticks")
    t0 = time.perf_counter()
    res = build_sticks(rows, cache, jobs=1, progress=False)
    elapsed = time.perf_counter() - t0
    return rows, cache, res, elapsed


def test_xtb_small_molecules(built):
    rows, cache, res, elapsed = built
    assert elapsed < 45.0
    assert set(res) == {"acetonitrile", "acetone", "ethanol"}
    natoms = {"acetonitrile": 6, "acetone": 10, "ethanol": 9}
    for name, st in res.items():
        assert st.n_atoms == natoms[name]
        assert st.frequencies_cm1.size == 3 * st.n_atoms - 6
        assert np.all(np.diff(st.frequencies_cm1) >= 0)
        assert all(v > -50.0 for v in st.imaginary_cm1)
        assert st.frequencies_cm1.min() > -50.0
        for arr in (st.ir_intensity_km_mol, st.raman_activity_A4_amu):
            assert np.all(np.isfinite(arr)) and np.all(arr >= 0)
        assert "GFN2-xTB" in st.method and f"method-version {METHOD_VERSION}" in st.method
    an = res["acetonitrile"]
    cn = an.frequencies_cm1[(an.frequencies_cm1 > 2000) & (an.frequencies_cm1 < 2700)]
    assert cn.size == 1
    assert cn[0] * SCALE_FACTOR == pytest.approx(2253.0, rel=0.05)
    # the C#N stretch is both IR and Raman active; C=O of acetone is the strongest IR band
    i_cn = np.nonzero(an.frequencies_cm1 == cn[0])[0][0]
    assert an.ir_intensity_km_mol[i_cn] > 10 and an.raman_activity_A4_amu[i_cn] > 10
    ac = res["acetone"]
    f_co = ac.frequencies_cm1[np.argmax(ac.ir_intensity_km_mol)] * SCALE_FACTOR
    assert 1650 < f_co < 1800
    grid = np.arange(200.0, 3400.0, 1.0)
    for st in res.values():
        for tech in ("raman", "ftir"):
            y = render_sticks(st, grid, tech)
            assert np.all(np.isfinite(y)) and y.max() > 0


def test_build_cache_is_reused(built, monkeypatch):
    from fol.chem.build import build_sticks, cache_path

    rows, cache, res, _ = built
    for r in rows:
        assert cache_path(cache, r["smiles"]).exists()
    import fol.chem.build as build_mod

    def no_compute(*a, **k):
        raise AssertionError("cached substance recomputed")

    monkeypatch.setattr(build_mod, "_compute", no_compute)
    again = build_sticks(rows, cache, jobs=1, only="acetone,ethanol", progress=False)
    assert set(again) == {"acetone", "ethanol"}
    np.testing.assert_array_equal(again["acetone"].frequencies_cm1, res["acetone"].frequencies_cm1)


def test_field_gradient_raman_matches_displaced_polarizabilities():
    """Default Raman route == brute-force alpha at every displaced geometry."""
    pytest.importorskip("tblite")
    pytest.importorskip("rdkit")
    from fol.chem.xtb import Settings, compute_sticks

    fast = compute_sticks("acetone", "CC(C)=O")
    ref = compute_sticks(
        "acetone",
        "CC(C)=O",
        settings=Settings(raman="displaced", field=0.0005, two_sided_field=True, scc_accuracy=0.001),
    )
    np.testing.assert_allclose(fast.frequencies_cm1, ref.frequencies_cm1, atol=1.0)
    r0, r1 = ref.raman_activity_A4_amu, fast.raman_activity_A4_amu
    strong = r0 > 0.05 * r0.max()
    assert np.max(np.abs(r1 - r0)[strong] / r0[strong]) < 0.02
    assert np.max(np.abs(r1 - r0)) < 0.01 * r0.max()


def test_compute_sticks_is_deterministic():
    pytest.importorskip("tblite")
    pytest.importorskip("rdkit")
    from fol.chem.xtb import compute_sticks

    a = compute_sticks("ethanol", "CCO")
    b = compute_sticks("ethanol", "CCO")
    np.testing.assert_array_equal(a.frequencies_cm1, b.frequencies_cm1)
    np.testing.assert_array_equal(a.raman_activity_A4_amu, b.raman_activity_A4_amu)


def test_bad_smiles_is_reported_not_fatal(tmp_path, caplog):
    pytest.importorskip("tblite")
    pytest.importorskip("rdkit")
    from fol.chem.build import build_sticks

    rows = [{"name": "junk", "smiles": "C1CC(("}, {"name": "methane", "smiles": "C"}]
    lines: list[str] = []
    with caplog.at_level("INFO", logger="fol.chem"):
        res = build_sticks(rows, tmp_path, jobs=1, progress=lines.append)
    assert set(res) == {"methane"}
    err = "\n".join(lines)
    assert "junk FAILED" in err and "failed substances: junk" in err
    assert "failed substances: junk" in caplog.text  # the same lines go to the fol.chem logger
