"""``Identifier`` itself: batch and one-spectrum paths agree, results follow result-format.md,
order and batch composition do not change a row's result, missing techniques are reported."""

from __future__ import annotations

import numpy as np
import pytest

from builders import bands, synthetic_library
from fol.identification.pipeline import Identifier
from fol.io.library import load_library
from fol.spectrum import Spectrum, SpectrumBatch

NAMES = ["fentanyl", "xylazine", "heroin", "cocaine", "mannitol", "lactose", "caffeine", "lidocaine"]
RESULT_KEYS = {"verdict", "alarm", "alarm_classes", "hits", "components", "quality", "library", "source", "entry"}


@pytest.fixture(scope="module")
def lib_and_queries(tmp_path_factory):
    path = tmp_path_factory.mktemp("pipe") / "lib.h5"
    _, spec = synthetic_library(path, NAMES, seed=11)
    lib = load_library(path)
    rng = np.random.default_rng(12)
    axis = np.linspace(180, 2050, 1100)
    truth = ["fentanyl", "mannitol", "caffeine", "xylazine", "lactose", "cocaine"]
    rows = []
    for n in truth:
        clean = bands(axis, *spec[n]) + 0.1
        rows.append(1000 * clean + rng.normal(0, 5, axis.size) + 50)
    mix = 1000 * (0.3 * bands(axis, *spec["fentanyl"]) + 0.7 * bands(axis, *spec["mannitol"])) + 50
    rows.append(mix + rng.normal(0, 5, axis.size))
    return lib, SpectrumBatch(axis, np.stack(rows), "raman", "counts"), truth + ["fentanyl+mannitol"]


def test_batch_equals_one_at_a_time(lib_and_queries):
    lib, batch, _ = lib_and_queries
    ident = Identifier(lib)
    together = ident.analyse(batch, source="t", entry="e")
    for i, r in enumerate(together):
        alone = ident.analyse_spectrum(Spectrum(batch.wavenumber, batch.intensity[i], "raman", "counts"),
                                       source="t", entry="e", index=i)
        assert alone == r


def test_results_are_result_objects(lib_and_queries):
    lib, batch, truth = lib_and_queries
    results = Identifier(lib).analyse(batch, source="t", entry="e")
    assert len(results) == len(truth)
    for i, (r, t) in enumerate(zip(results, truth)):
        assert RESULT_KEYS <= set(r), RESULT_KEYS - set(r)
        assert r["index"] == i and r["library"]["sha256"] == lib.sha256
        names = {c["name"] for c in r["components"]}
        assert set(t.split("+")) <= names, (t, names)
    assert results[0]["alarm"] and results[-1]["alarm"]  # pure fentanyl, 30 % fentanyl
    assert not results[1]["alarm"]  # mannitol


def test_order_does_not_matter(lib_and_queries):
    lib, batch, _ = lib_and_queries
    ident = Identifier(lib)
    fwd = ident.analyse(batch, source="t", entry="e")
    rev_batch = SpectrumBatch(batch.wavenumber, batch.intensity[::-1].copy(), "raman", "counts")
    rev = ident.analyse(rev_batch, source="t", entry="e")
    for a, b in zip(fwd, rev[::-1]):
        a, b = dict(a), dict(b)
        a.pop("index"), b.pop("index")
        assert a == b


def test_single_substance_path(lib_and_queries):
    lib, batch, truth = lib_and_queries
    results = Identifier(lib, mixture=False, class_alarm=False, top=3).analyse(batch, source="t", entry="e")
    assert [r["hits"][0]["name"] for r in results[:6]] == truth[:6]
    assert all(len(r["hits"]) == 3 for r in results)


def test_missing_technique_is_reported(lib_and_queries):
    lib, batch, _ = lib_and_queries
    ftir = SpectrumBatch(np.linspace(700, 3900, 800), np.ones((1, 800)), "ftir", "absorbance")
    r = Identifier(lib).analyse(ftir, source="t", entry="e")[0]
    assert r["verdict"] == "inconclusive" and "ftir" in r["error"]


def test_unverified_library_is_flagged(lib_and_queries, tmp_path):
    """Issue 14.3: a tampered library used with --allow-unverified leaves a trace in every result."""
    import shutil

    import h5py

    lib, batch, _ = lib_and_queries
    copy = tmp_path / "tampered.h5"
    shutil.copy(lib.path, copy)
    with h5py.File(copy, "r+") as f:
        f["raman/raw"][0, 0] += 1.0
    tampered = load_library(copy, allow_unverified=True)
    assert not tampered.verified
    results = Identifier(tampered).analyse(batch, source="t", entry="e")
    assert all("unverified_library" in r["flags"] for r in results)
    assert all("unverified_library" not in r["flags"] for r in Identifier(lib).analyse(batch, source="t", entry="e"))
