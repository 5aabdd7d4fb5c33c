"""Library format: round trip, content hash, refusal of tampered files, export."""

import h5py
import numpy as np
import pytest

from fol.errors import LibraryError
from fol.io.library import load_library, make_section, write_library
from fol.preprocess.recipe import default_recipe


@pytest.fixture
def lib_path(tmp_path, peak_library_rows):
    grid, names, raw = peak_library_rows
    sec = make_section("raman", grid, raw, names, ["cutting-agent"] * 11 + ["fentanyl-analogue"],
                       [False] * 11 + [True], ["computed"] * 12, ["synthetic"] * 12, default_recipe("raman"))
    path = tmp_path / "lib.h5"
    write_library(path, {"raman": sec}, name="test-lib", description="synthetic")
    return path


def test_round_trip_and_processed_rows_are_normalised(lib_path, peak_library_rows):
    grid, names, raw = peak_library_rows
    lib = load_library(lib_path)
    s = lib.section("raman")
    assert lib.name == "test-lib" and lib.verified and len(lib.sha256) == 64
    assert s.names == names and s.alarm[-1] and not s.alarm[0]
    np.testing.assert_array_equal(s.grid, grid)
    np.testing.assert_allclose(s.raw, raw.astype(np.float32))
    assert s.processed.dtype == np.float32 and s.processed.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(s.processed, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(s.processed.mean(axis=1), 0, atol=1e-5)
    assert s.recipe.to_json() == default_recipe("raman").to_json()
    assert lib.info()["sections"]["raman"]["provenance"] == {"computed": 12}


def test_missing_technique_is_a_clear_error(lib_path):
    with pytest.raises(LibraryError, match="no ftir spectra"):
        load_library(lib_path).section("ftir")


def test_tampered_library_is_refused_unless_allowed(lib_path):
    with h5py.File(lib_path, "r+") as f:
        f["raman/processed"][0, 5] += 0.5
    with pytest.raises(LibraryError, match="does not match its SHA-256.*--allow-unverified"):
        load_library(lib_path)
    lib = load_library(lib_path, allow_unverified=True)
    assert not lib.verified


@pytest.mark.parametrize("content,msg", [(b"not hdf5", "not a readable"), (None, "not found")])
def test_not_a_library(tmp_path, content, msg):
    p = tmp_path / "x.h5"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(LibraryError, match=msg):
        load_library(p)


def test_wrong_format_attribute(tmp_path):
    p = tmp_path / "rec.h5"
    with h5py.File(p, "w") as f:
        f.attrs["format"] = "fol-recording"
    with pytest.raises(LibraryError, match="not a fol library"):
        load_library(p)


def test_export_jcamp_reads_back_with_the_jcamp_package(lib_path, tmp_path):
    import jcamp

    from fol.libtools.tools import export_section

    s = load_library(lib_path).section("raman")
    files = export_section(s, tmp_path / "out", "jcamp")
    assert len(files) == 12
    d = jcamp.readfile(str(files[3]))
    np.testing.assert_allclose(d["x"], s.grid, atol=1e-6)
    np.testing.assert_allclose(d["y"], s.raw[3], rtol=1e-5, atol=float(s.raw[3].max()) * 2e-6)
    csvs = export_section(s, tmp_path / "csv", "csv")
    back = np.loadtxt(csvs[0], delimiter=",", skiprows=7)  # 6 "# key: value" lines, then the column names
    np.testing.assert_allclose(back[:, 1], s.raw[0], rtol=1e-5)


def test_import_processing_by_axis_equals_one_spectrum_at_a_time(peak_library_rows):
    from fol.libtools.importing import _process_by_axis
    from fol.spectrum import Spectrum

    grid, _, raw = peak_library_rows
    other = grid[::2] + 0.5  # a second instrument's axis
    spectra = [Spectrum(grid if i % 3 else other, raw[i] if i % 3 else raw[i][::2], "raman") for i in range(9)]
    recipe = default_recipe("raman")
    want = np.vstack([recipe.apply_spectrum(s, grid).data for s in spectra])
    np.testing.assert_allclose(_process_by_axis(spectra, recipe, grid), want, atol=1e-6)
