"""`fol library build` / `render` end to end on three small molecules (needs the build extra)."""

import numpy as np
import pytest

from fol.cli import main
from fol.io.library import load_library

pytest.importorskip("tblite")
pytest.importorskip("rdkit")


@pytest.fixture(scope="module")
def small_lib(tmp_path_factory):
    d = tmp_path_factory.mktemp("build")
    out = d / "small.h5"
    rc = main(["library", "build", "--catalogue", "spectra_library/substances.csv", "--out", str(out),
               "--cache", str(d / "cache"), "--only", "acetonitrile,acetone,ethanol"])
    assert rc == 0
    return out


def test_build_writes_computed_entries_for_both_techniques(small_lib, capsys):
    lib = load_library(small_lib)
    for t in ("raman", "ftir"):
        s = lib.section(t)
        assert sorted(s.names) == ["acetone", "acetonitrile", "ethanol"]
        assert s.provenance == ["computed"] * 3
        assert all("GFN2-xTB" in src for src in s.source)
        assert np.all(np.isfinite(s.raw)) and np.all(s.raw >= 0)
    assert set(lib.sticks) == {"acetone", "acetonitrile", "ethanol"}
    assert len(lib.sticks["acetonitrile"]["frequencies_cm1"]) == 3 * 6 - 6
    assert main(["library", "info", str(small_lib)]) == 0
    assert "computed (GFN2-xTB, harmonic)" in capsys.readouterr().out


def test_render_rebroadens_without_recomputing(small_lib, tmp_path):
    wide = tmp_path / "wide.h5"
    assert main(["library", "render", str(small_lib), "--resolution", "20", "--out", str(wide)]) == 0
    from fol.chem.render import render_sticks
    from fol.libtools.tools import sticks_from_store

    narrow, lib = load_library(small_lib), load_library(wide)
    a, b = narrow.section("raman"), lib.section("raman")
    i = a.names.index("acetonitrile")
    sticks = sticks_from_store(lib.sticks)["acetonitrile"]
    # the rows are the stored sticks rendered at the new width: nothing was recomputed
    np.testing.assert_allclose(b.raw[i], render_sticks(sticks, b.grid, "raman", fwhm_cm1=20), rtol=1e-5,
                               atol=1e-6 * float(b.raw[i].max()))
    assert b.raw[i].max() < a.raw[i].max()  # broader lines, lower peaks
    assert load_library(wide).sticks.keys() == load_library(small_lib).sticks.keys()
