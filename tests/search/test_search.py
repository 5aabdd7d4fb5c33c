"""The similarity contract (pair form == matrix form) and exact top-k search."""

import numpy as np
import pytest

from fol.search.searcher import Searcher
from fol.search.similarity import SIMILARITIES, PearsonSimilarity
from fol.search.topk import top_k, top_k_indices


def _normalised(rng, m, n):
    a = rng.standard_normal((m, n)).cumsum(axis=1)  # correlated, not white noise
    a -= a.mean(axis=1, keepdims=True)
    return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("sim", [cls() for cls in SIMILARITIES.values()], ids=lambda s: s.name)
def test_pair_and_matrix_forms_agree(sim):
    rng = np.random.default_rng(1)
    a, b = _normalised(rng, 5, 300), _normalised(rng, 7, 300)
    m = sim.matrix(a, b)
    assert m.shape == (5, 7)
    for i in range(5):
        for j in range(7):
            assert m[i, j] == pytest.approx(sim.pair(a[i], b[j]), abs=2e-5)
    assert np.all((m >= 0) & (m <= 1))


def test_pearson_pair_is_scipy_pearson_clipped():
    from scipy.stats import pearsonr

    rng = np.random.default_rng(2)
    a, b = rng.random(200), rng.random(200) + np.linspace(0, 1, 200)
    assert PearsonSimilarity().pair(a, b) == pytest.approx(max(0.0, pearsonr(a, b)[0]))


@pytest.mark.parametrize("m", [1, 37])
def test_top_k_equals_brute_force_and_chunking_does_not_change_it(m):
    rng = np.random.default_rng(3)
    lib, q = _normalised(rng, 2000, 128), _normalised(rng, m, 128)
    brute = q @ lib.T
    want = np.argsort(-brute, axis=1)[:, :10]
    idx, val = top_k(lib, q, 10)
    idx_small, _ = top_k(lib, q, 10, chunk_bytes=2000 * 4 * 3)  # 3 queries per chunk
    np.testing.assert_array_equal(idx, want)
    np.testing.assert_array_equal(idx_small, want)
    np.testing.assert_allclose(val, np.take_along_axis(brute, want, axis=1), rtol=1e-6)
    i1, v1 = top_k(lib, q[0], 10)  # 1-D query: GEMV path
    np.testing.assert_array_equal(i1, want[0])


def test_top_k_indices_are_top_k_s_indices_through_near_ties():
    """Indices only (mixture screening) rescore only near-ties of the rounded scores: the result must
    be top_k's, in the same order, whatever the chunking, also where rows tie exactly, differ by
    less than the rounding error of a float32 product, or tie at the k-th place."""
    rng = np.random.default_rng(5)
    base = _normalised(rng, 400, 256)
    # exact duplicates, near-duplicates (below and around float32 rounding) and scaled copies
    near = [base[:40] + eps * _normalised(rng, 40, 256) for eps in (1e-7, 1e-6, 1e-5, 1e-3)]
    lib = np.vstack([base, base[:40], *near, 0.999999 * base[40:80]]).astype(np.float32)
    lib = lib[rng.permutation(len(lib))]
    q = np.vstack([base[:30] + 0.05 * _normalised(rng, 30, 256), _normalised(rng, 10, 256)]).astype(np.float32)
    for k in (1, 5, 24, 60):
        want, _ = top_k(lib, q, k)
        np.testing.assert_array_equal(top_k_indices(lib, q, k), want)
        np.testing.assert_array_equal(top_k_indices(lib, q, k, chunk_bytes=lib.shape[0] * 4 * 3), want)
        np.testing.assert_array_equal(top_k_indices(lib, q[7], k), want[7])  # GEMV path
    # the exact order of the canonical scores (ties to the lower index) is what both return
    exact = np.multiply(lib[None], q[:, None], dtype=np.float64).sum(axis=-1)
    order = np.lexsort((np.broadcast_to(np.arange(len(lib)), exact.shape), -exact), axis=1)[:, :24]
    np.testing.assert_array_equal(top_k_indices(lib, q, 24), order)


class _Section:
    def __init__(self, processed, names):
        self.processed, self.names = processed, names
        self.classes = ["c"] * len(names)
        self.alarm = np.zeros(len(names), bool)
        self.provenance = ["measured"] * len(names)

    def __len__(self):
        return len(self.names)


def test_gap_is_to_the_best_different_substance():
    rng = np.random.default_rng(4)
    base = _normalised(rng, 3, 200)
    # two replicates of substance "a" nearly identical, then "b" and "c"
    rep = base[0] + 0.01 * _normalised(rng, 1, 200)[0]
    rep = (rep - rep.mean()) / np.linalg.norm(rep - rep.mean())
    lib = np.vstack([base[0], rep, base[1], base[2]]).astype(np.float32)
    s = Searcher(_Section(lib, ["a", "a", "b", "c"]))
    res = s.search(base[0][None], k=3)
    assert [s.section.names[j] for j in res.indices[0][:2]] == ["a", "a"]
    second = res.second[0]
    assert s.section.names[second] in ("b", "c")
    assert res.gap[0] == pytest.approx(res.scores[0, 0] - max(0, float(lib[second] @ base[0])), abs=1e-6)
    hits = s.hits(res, 0)
    assert hits[0]["name"] == "a" and 0 <= hits[-1]["score"] <= 1
