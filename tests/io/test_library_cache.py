"""The mapped library cache replay workers use (fol.io.library: write_library_cache, map_library)."""

import json

import numpy as np
import pytest

from fol.errors import LibraryError
from fol.io.library import (library_cache_path, load_library, make_section, map_library, write_library,
                            write_library_cache)
from fol.preprocess.recipe import default_recipe


@pytest.fixture
def lib_path(tmp_path, peak_library_rows, monkeypatch):
    monkeypatch.setenv("FOL_CACHE_DIR", str(tmp_path / "cache"))
    grid, names, raw = peak_library_rows
    n = len(names)
    section = make_section("raman", grid, raw, names, ["cutting-agent"] * n, [i % 3 == 0 for i in range(n)],
                           ["computed"] * n, [f"src {i}" for i in range(n)], default_recipe("raman"),
                           meta=[{"i": i, "note": "é"} for i in range(n)])
    section.calibration_json = json.dumps({"threshold": 0.5})
    sticks = {"sub0": {"frequencies_cm1": np.array([100.0, 200.5]), "ir_intensity_km_mol": np.array([1.0, 2.0]),
                       "raman_activity_A4_amu": np.array([3.0, 4.0]), "smiles": "CCO", "warnings": ["x"]}}
    path = tmp_path / "lib.h5"
    write_library(path, {"raman": section}, name="t", description="d", sticks=sticks)
    return path


def assert_same_library(a, b):
    assert (a.name, a.sha256, a.created, a.description, a.verified) == (b.name, b.sha256, b.created,
                                                                         b.description, b.verified)
    assert a.techniques == b.techniques
    for t in a.techniques:
        s, m = a[t], b[t]
        for f in ("grid", "processed", "raw", "alarm"):
            x, y = getattr(s, f), getattr(m, f)
            assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y), f
        for f in ("names", "classes", "provenance", "source", "recipe_json", "calibration_json", "meta"):
            assert getattr(s, f) == getattr(m, f), f
    assert a.sticks.keys() == b.sticks.keys()
    for k in a.sticks:
        for f, v in a.sticks[k].items():
            assert np.array_equal(v, b.sticks[k][f]) if isinstance(v, np.ndarray) else v == b.sticks[k][f]


def test_mapped_library_is_the_loaded_one_without_decompressing_or_hashing(lib_path, monkeypatch):
    loaded = load_library(lib_path)
    where = write_library_cache(loaded)
    assert where == library_cache_path(loaded.sha256) and (where / "library.json").exists()
    assert not any(p.suffix == ".pkl" for p in where.iterdir())

    import fol.io.library as module

    def no_hashing(*args, **kwargs):
        raise AssertionError("the content was hashed again")

    monkeypatch.setattr(module, "content_sha256", no_hashing)
    mapped = map_library(lib_path, loaded.sha256)
    assert mapped.mapped and not loaded.mapped and mapped.path == str(lib_path)
    assert_same_library(loaded, mapped)
    assert isinstance(mapped["raman"].processed, np.memmap)
    assert not mapped["raman"].processed.flags.writeable  # shared pages: nobody writes into them
    sub = mapped["raman"].subset([0, 2])
    assert np.array_equal(sub.processed, loaded["raman"].processed[[0, 2]])


def test_the_cache_is_written_once(lib_path):
    lib = load_library(lib_path)
    where = write_library_cache(lib)
    stamp = (where / "library.json").stat().st_mtime_ns
    assert write_library_cache(lib) == where
    assert (where / "library.json").stat().st_mtime_ns == stamp
    assert not list(where.parent.glob("*.tmp"))


def test_without_a_usable_cache_the_file_is_loaded_and_checked(lib_path):
    lib = load_library(lib_path)
    got = map_library(lib_path, lib.sha256)  # no cache yet
    assert not got.mapped
    assert_same_library(lib, got)
    with pytest.raises(LibraryError, match="differs from the ffffffffffff this run started with"):
        map_library(lib_path, "f" * 64)

    where = write_library_cache(lib)
    (where / "s0.processed.npy").write_bytes(b"\x93NUMPY damaged")  # a damaged cache is ignored
    got = map_library(lib_path, lib.sha256)
    assert not got.mapped
    assert_same_library(lib, got)


def test_a_cache_for_another_hash_or_version_is_not_used(lib_path):
    lib = load_library(lib_path)
    where = write_library_cache(lib)
    doc = json.loads((where / "library.json").read_text())
    (where / "library.json").write_text(json.dumps({**doc, "sha256": "0" * 64}))
    assert not map_library(lib_path, lib.sha256).mapped
    (where / "library.json").write_text(json.dumps({**doc, "cache_version": 999}))
    assert not map_library(lib_path, lib.sha256).mapped
    (where / "library.json").write_text(json.dumps({**doc, "sections": {"raman": {**doc["sections"]["raman"],
                                                                               "rows": 3}}}))
    assert not map_library(lib_path, lib.sha256).mapped


def test_unverified_libraries_are_not_cached(lib_path):
    import h5py

    with h5py.File(lib_path, "r+") as f:
        f["raman"]["grid"][0] += 1.0  # content no longer matches the stored hash
    lib = load_library(lib_path, allow_unverified=True)
    assert not lib.verified
    assert write_library_cache(lib) is None
    assert not library_cache_path(lib.sha256).exists()
    got = map_library(lib_path, lib.sha256, allow_unverified=True)
    assert not got.mapped and not got.verified


def test_an_unwritable_cache_directory_means_no_cache(lib_path, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("FOL_CACHE_DIR", str(blocker / "cache"))
    lib = load_library(lib_path)
    assert write_library_cache(lib) is None
    assert not map_library(lib_path, lib.sha256).mapped


def test_a_damaged_cache_is_made_again(lib_path):
    lib = load_library(lib_path)
    where = write_library_cache(lib)
    (where / "s0.raw.npy").write_bytes(b"damaged")
    assert not map_library(lib_path, lib.sha256).mapped
    assert write_library_cache(lib) == where
    assert map_library(lib_path, lib.sha256).mapped
