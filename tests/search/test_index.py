"""Exact search at scale: the PCA index returns exactly the brute-force top k; chunked and
memory-mapped matrices; top_k does not depend on batching."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from fol.search.index import PCAIndex, chunked_top_k, export_npy, open_rows
from fol.search.searcher import Searcher
from fol.search.topk import exact_scores, score_margin, top_k

N_POINTS = 300
GRID = np.linspace(200.0, 2000.0, N_POINTS)


def _normalise(a: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=1, keepdims=True)
    return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)


def _substances(k: int, rng) -> np.ndarray:
    """``k`` reference spectra: 10 Lorentzian bands each, half of them from a shared pool of positions."""
    pool = rng.uniform(250, 1950, 25)
    centres = np.where(rng.random((k, 10)) < 0.5, rng.choice(pool, (k, 10)), rng.uniform(250, 1950, (k, 10)))
    heights, hw = rng.uniform(0.1, 1.0, (k, 10)), rng.uniform(3, 9, (k, 10))
    g = GRID[None, None, :]
    return (heights[..., None] * hw[..., None] ** 2 / ((g - centres[..., None]) ** 2 + hw[..., None] ** 2)).sum(1)


def _mixtures(base: np.ndarray, m: int, rng, noise: float = 0.01) -> np.ndarray:
    """``m`` spectra, each 1-3 of ``base`` mixed, on a random sloping baseline, with noise; normalised."""
    pick = rng.integers(0, len(base), (m, 3))
    frac = rng.dirichlet([1, 1, 1], m) * (rng.random((m, 3)) < [1, 0.4, 0.2])
    y = np.einsum("mc,mcn->mn", frac, base[pick]) + rng.normal(0, 0.05, (m, 1)) * np.linspace(-1, 1, N_POINTS)
    return _normalise(y + noise * rng.standard_normal(y.shape))


@pytest.fixture(scope="module")
def library():
    rng = np.random.default_rng(11)
    base = _substances(40, rng)
    lib = _mixtures(base, 6000, rng)
    lib[100] = lib[4000]  # exact duplicates: ties in score, broken by the lower index
    lib[200] = lib[4000]
    known = _mixtures(base, 40, rng)
    unknown = _mixtures(_substances(10, np.random.default_rng(99)), 20, rng)  # substances not in the library
    return lib, np.vstack([known, unknown, lib[4000][None]])


@pytest.fixture(scope="module")
def index(library):
    lib, _ = library
    return PCAIndex.build(lib, levels=(16, 64), sample_rows=2000)


def _brute(lib, q, k):
    """The definition: canonical scores of every row, best first, ties to the lower index."""
    s = exact_scores(lib, q)
    order = np.lexsort((np.arange(len(lib)), -s))[:k]
    return order, s[order]


def test_top_k_is_the_definition_and_does_not_depend_on_batching(library):
    lib, queries = library
    for k in (1, 10, 18):
        idx, val = top_k(lib, queries, k)
        small_idx, small_val = top_k(lib, queries, k, chunk_bytes=lib.shape[0] * 4 * 3)
        np.testing.assert_array_equal(idx, small_idx)
        np.testing.assert_array_equal(val, small_val)  # bit for bit
        for i, q in enumerate(queries):
            one_idx, one_val = top_k(lib, q, k)  # GEMV path
            want_idx, want_val = _brute(lib, q, k)
            np.testing.assert_array_equal(one_idx, want_idx)
            np.testing.assert_array_equal(idx[i], want_idx)
            np.testing.assert_array_equal(val[i], want_val)
    idx, _ = top_k(lib, lib[4000], 3)
    assert list(idx) == [100, 200, 4000]  # identical rows: lower index first


def test_index_returns_exactly_the_brute_force_top_k(library, index):
    lib, queries = library
    for k in (1, 5, 18):
        want_idx, want_val = top_k(lib, queries, k)
        got_idx, got_val = index.search(queries, k)
        np.testing.assert_array_equal(got_idx, want_idx)
        np.testing.assert_array_equal(got_val, want_val)
        one_idx, one_val = index.search(queries[0], k)
        np.testing.assert_array_equal(one_idx, want_idx[0])
    assert index.stats["fraction_scored"] < 0.05  # it did prune: most rows were never read


def test_the_bound_holds_for_every_row(library, index):
    """q·l <= p_q·p_l + ‖r_q‖‖r_l‖ at both levels, for every library row and query (the proof's premise)."""
    lib, queries = library
    d1, _ = index.levels
    for q in queries[::7]:
        p = q.astype(np.float64) @ index.basis
        exact = exact_scores(lib, q)
        norm2 = float(q.astype(np.float64) @ q)
        approx1 = index.head.astype(np.float64) @ p[:d1]
        approx2 = approx1 + index.tail.astype(np.float64) @ p[d1:]
        head = approx1 + np.sqrt(max(norm2 - p[:d1] @ p[:d1], 0)) * index.residual_head
        full = approx2 + np.sqrt(max(norm2 - p @ p, 0)) * index.residual_tail
        margin = score_margin(q, index.max_norm)[0]
        assert np.all(exact <= head + margin) and np.all(exact <= full + margin)
        assert np.median(full - exact) < np.median(head - exact)  # level 2 is tighter


def test_zero_query_and_k_larger_than_the_library(library, index):
    lib, _ = library
    idx, val = index.search(np.zeros(N_POINTS, np.float32), 4)
    assert list(idx) == [0, 1, 2, 3] and not val.any()
    small = PCAIndex.build(lib[:7], levels=(2, 4))
    idx, val = small.search(lib[3], 10)
    np.testing.assert_array_equal(idx, top_k(lib[:7], lib[3], 10)[0])
    assert len(idx) == 7


def test_index_over_hdf5_chunks_and_a_memory_map_gives_the_same_result(library, index, tmp_path):
    lib, queries = library
    path = tmp_path / "lib.h5"
    with h5py.File(path, "w") as f:  # chunked and compressed, as library files store ``processed``
        f.create_dataset("raman/processed", data=lib, chunks=(256, N_POINTS), compression="gzip", shuffle=True)
    rows = open_rows(path, "raman", block_bytes=1000 * N_POINTS * 4)
    assert rows.block_rows == 768  # whole chunk bands
    want = top_k(lib, queries, 10)
    for got in (chunked_top_k(rows, queries, 10), PCAIndex.build(rows, levels=(16, 64), sample_rows=2000)
                .search(queries, 10)):
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(rows.take(np.array([3, 300, 301, 5999])), lib[[3, 300, 301, 5999]])
    npy = export_npy(rows, tmp_path / "lib.npy")
    mapped = open_rows(npy)
    assert isinstance(mapped.data, np.memmap)
    got = PCAIndex.build(mapped, levels=(16, 64), sample_rows=2000).search(queries, 10)
    np.testing.assert_array_equal(got[0], want[0])
    with pytest.raises(KeyError, match="ftir"):
        open_rows(path, "ftir")


def test_save_and_load_round_trip(library, index, tmp_path):
    lib, queries = library
    index.save(tmp_path / "ix.npz")
    back = PCAIndex.load(tmp_path / "ix.npz", lib)
    np.testing.assert_array_equal(back.search(queries, 10)[0], index.search(queries, 10)[0])
    with pytest.raises(ValueError, match="does not fit"):
        PCAIndex.load(tmp_path / "ix.npz", lib[:100])


class _Section:
    def __init__(self, processed):
        self.processed = processed
        self.names = [f"s{i % 500}" for i in range(len(processed))]
        self.classes = ["c"] * len(processed)
        self.alarm = np.zeros(len(processed), bool)
        self.provenance = ["measured"] * len(processed)

    def __len__(self):
        return len(self.names)


def test_searcher_with_and_without_index_agrees(library):
    lib, queries = library
    section = _Section(lib)
    plain, indexed = Searcher(section, index=False), Searcher(section, index=True)
    assert plain.index is None and indexed.index is not None
    a, b = plain.search(queries, 10), indexed.search(queries, 10)
    for field in ("indices", "scores", "gap", "second"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_white_noise_library_is_not_worth_an_index():
    rng = np.random.default_rng(3)
    noise = _normalise(rng.standard_normal((3000, N_POINTS)))
    assert not PCAIndex.build(noise, levels=(16, 64)).useful()
    structured = _mixtures(_substances(20, rng), 3000, rng)
    assert PCAIndex.build(structured, levels=(16, 64)).useful()


# ------------------------------------------------------------ the index cache of Searcher


def test_searcher_caches_its_index_and_reads_it_back(library, tmp_path, monkeypatch):
    monkeypatch.setenv("FOL_CACHE_DIR", str(tmp_path))
    lib, queries = library
    section = _Section(lib)
    section.technique = "raman"
    first = Searcher(section, index=True, cache_key="libsha-1")
    files = list(tmp_path.glob("pcaindex-*.npz"))
    assert len(files) == 1 and "libsha-1" in files[0].name and "raman" in files[0].name
    monkeypatch.setattr(PCAIndex, "build", classmethod(lambda *a, **k: pytest.fail("rebuilt despite the cache")))
    second = Searcher(section, index=True, cache_key="libsha-1")
    for field in ("indices", "scores", "gap", "second"):
        np.testing.assert_array_equal(getattr(first.search(queries, 10), field),
                                      getattr(second.search(queries, 10), field))


def test_cached_index_of_other_rows_is_refused_and_rebuilt(library, tmp_path, monkeypatch):
    """Same shape, same key, other rows: loading it would make the search inexact."""
    monkeypatch.setenv("FOL_CACHE_DIR", str(tmp_path))
    lib, queries = library
    other = _mixtures(_substances(40, np.random.default_rng(5)), len(lib), np.random.default_rng(6))
    section = _Section(other)
    section.technique = "raman"
    Searcher(section, index=True, cache_key="same-key")  # cached for `other`
    path = next(tmp_path.glob("pcaindex-*.npz"))
    with pytest.raises(ValueError, match="do not match the rows"):
        PCAIndex.load(path, lib)
    with pytest.raises(ValueError, match="built for"):
        PCAIndex.load(path, other, key="another-key")
    section = _Section(lib)
    section.technique = "raman"
    searcher = Searcher(section, index=True, cache_key="same-key")  # refused, rebuilt for lib
    np.testing.assert_array_equal(searcher.search(queries, 10).indices, Searcher(section, index=False).search(queries, 10).indices)
    path.write_bytes(b"not an npz")  # a damaged cache file is rebuilt too
    assert Searcher(section, index=True, cache_key="same-key").index is not None
