"""Batched NNLS (fol.identification.nnls) against scipy.optimize.nnls, on random and real ENFSI columns.

Tolerances (the module doc states them): where the columns have full rank the minimiser
is unique and the solutions agree to 1e-9 of the solution's norm; where they do not
(rays of one reference span three dimensions with four columns, repeated columns), the
residual norms agree to 1e-9 of ||b|| and the solution satisfies the KKT conditions.
"""

import numpy as np
import pytest
from scipy.optimize import nnls
from scipy.signal import savgol_filter

from fol.identification.nnls import _lawson_hanson, gram_blocks, gram_rows, nnls_batch, nnls_gram

X_TOL = 1e-9
R_TOL = 1e-9


def scipy_stack(A, b):
    b = np.broadcast_to(b, A.shape[:2])
    out = [nnls(a, y) for a, y in zip(A, b)]
    return np.array([o[0] for o in out]), np.array([o[1] for o in out])


def assert_kkt(A, b, x, tol=1e-8):
    """x >= 0; gradient A'(b - Ax) <= 0 where x = 0 and = 0 where x > 0 (relative to ||a_j|| ||b||)."""
    b = np.broadcast_to(b, A.shape[:2])
    assert (x >= 0).all()
    r = b - np.einsum("mnp,mp->mn", A, x)
    w = np.einsum("mnp,mn->mp", A, r)
    scale = np.linalg.norm(A, axis=1) * np.linalg.norm(b, axis=1)[:, None] + 1e-300
    assert (w / scale <= tol).all()
    assert (np.abs(np.where(x > 0, w, 0.0)) / scale <= tol).all()


def assert_same_as_scipy(A, b, *, unique: bool):
    x, r = nnls_batch(A, b)
    xs, rs = scipy_stack(A, b)
    bn = np.linalg.norm(np.broadcast_to(b, A.shape[:2]), axis=1)
    np.testing.assert_allclose(r, rs, rtol=0, atol=R_TOL * max(bn.max(), 1e-300))
    assert (r <= rs + R_TOL * bn).all()  # never a worse fit than scipy's
    if unique:
        err = np.abs(x - xs).max(axis=1) / np.maximum(np.linalg.norm(xs, axis=1), 1e-300)
        assert (err <= X_TOL).all(), err.max()
    assert_kkt(A, b, x)
    return x, r


@pytest.mark.parametrize("n,p", [(1, 1), (5, 1), (40, 3), (300, 8), (850, 24), (2000, 12), (850, 35)])
def test_random_full_rank_problems_match_scipy(n, p):
    rng = np.random.default_rng(n * 100 + p)
    A = rng.standard_normal((30, n, p))
    truth = np.where(rng.random((30, p)) < 0.5, rng.random((30, p)), 0.0)
    b = np.einsum("mnp,mp->mn", A, truth) + 0.3 * rng.standard_normal((30, n))
    x, _ = assert_same_as_scipy(A, b, unique=n >= p)
    assert (x == 0).any() and (x > 0).any()  # both constraints active and inactive were exercised


def test_non_negative_columns_like_spectra_match_scipy():
    """Positive, overlapping band-like columns (the typical case): many bound coefficients."""
    rng = np.random.default_rng(3)
    grid = np.linspace(0, 1, 600)
    centres = rng.random((40, 20, 6))
    A = np.exp(-((grid[None, :, None, None] - centres[:, None]) / 0.02) ** 2).sum(axis=-1)
    b = A[:, :, :3] @ np.array([1.0, 0.4, 0.1]) + 0.05 * rng.standard_normal((40, 600))
    assert_same_as_scipy(A, b, unique=True)


def test_degenerate_problems():
    rng = np.random.default_rng(5)
    n, p = 200, 10
    A = rng.standard_normal((8, n, p))
    A[0, :, 3] = A[0, :, 2]                       # a repeated column
    A[1, :, 4] = 2.0 * A[1, :, 1] - 0.5 * A[1, :, 7]  # a column in the span of others
    A[2, :, 5] = 0.0                              # a column of zeros
    A[3] = 0.0                                    # all zero
    A[4] = np.abs(A[4])                           # positive columns ...
    b = rng.standard_normal((8, n))
    b[4] = -A[4] @ rng.random(p)                  # ... and b in their negative cone: x = 0
    b[5] = A[5] @ rng.random(p)                   # b in the span with positive coefficients: exact fit
    b[6] = 0.0                                    # b = 0
    A[7, :, 6] = 1e-8 * A[7, :, 0] + A[7, :, 1]   # nearly collinear
    x, r = assert_same_as_scipy(A, b, unique=False)
    assert x[2, 5] == 0 and (x[3] == 0).all() and (x[4] == 0).all() and (x[6] == 0).all()
    np.testing.assert_allclose(r[4], np.linalg.norm(b[4]))
    assert r[5] <= 1e-10 * np.linalg.norm(b[5])
    assert r[3] == pytest.approx(np.linalg.norm(b[3]))


def test_all_negative_correlation_gives_zero():
    rng = np.random.default_rng(6)
    A = np.abs(rng.standard_normal((5, 100, 6)))
    b = -np.abs(rng.standard_normal((5, 100)))
    x, r = nnls_batch(A, b)
    assert (x == 0).all()
    np.testing.assert_allclose(r, np.linalg.norm(b, axis=1))


def test_underdetermined_problems():
    """More columns than rows: many minimisers with zero residual; the residual agrees."""
    rng = np.random.default_rng(8)
    A = rng.standard_normal((10, 6, 12))
    b = rng.standard_normal((10, 6))
    assert_same_as_scipy(A, b, unique=False)


def test_a_problem_alone_or_in_a_stack_gets_the_same_solution():
    """A fit never depends on what else is in its batch (replays are byte-identical for any chunking)."""
    rng = np.random.default_rng(9)
    A = rng.standard_normal((25, 300, 9))
    b = rng.standard_normal((25, 300))
    x, r = nnls_batch(A, b)
    for i in (0, 7, 24):
        xi, ri = nnls_batch(A[i:i + 1], b[i:i + 1])
        assert np.array_equal(xi[0], x[i]) and ri[0] == r[i]


def test_zero_padding_changes_nothing():
    """Problems of different widths and lengths share a stack padded with zero columns and rows."""
    rng = np.random.default_rng(10)
    A = rng.standard_normal((4, 120, 7))
    b = rng.standard_normal((4, 120))
    x, r = nnls_batch(A, b)
    Ap = np.zeros((4, 150, 11))
    Ap[:, :120, 2:9] = A
    bp = np.zeros((4, 150))
    bp[:, :120] = b
    xp, rp = nnls_batch(Ap, bp)
    assert (xp[:, :2] == 0).all() and (xp[:, 9:] == 0).all()
    np.testing.assert_allclose(xp[:, 2:9], x, rtol=0, atol=1e-12 * np.abs(x).max())
    np.testing.assert_allclose(rp, r, rtol=1e-12)


def test_one_right_hand_side_for_all_problems():
    """The mixture's candidate step: one residual, many candidate column sets."""
    rng = np.random.default_rng(11)
    A = rng.standard_normal((12, 400, 8))
    b = rng.standard_normal(400)
    x, r = nnls_batch(A, b)
    xs, rs = scipy_stack(A, b)
    np.testing.assert_allclose(x, xs, rtol=0, atol=X_TOL * np.abs(xs).max())


def test_unit_diagonal_core_reports_iterations_and_convergence():
    rng = np.random.default_rng(12)
    A = rng.standard_normal((3, 50, 6))
    A /= np.linalg.norm(A, axis=1, keepdims=True)
    b = rng.standard_normal((3, 50))
    G = np.swapaxes(A, 1, 2) @ A
    c = np.einsum("mnp,mn->mp", A, b)
    x, iterations, converged = _lawson_hanson(G, c)
    assert converged.all() and (iterations >= 0).all()
    np.testing.assert_allclose(x, scipy_stack(A, b)[0], atol=1e-9)
    _, _, converged = _lawson_hanson(G, c, maxiter=0)
    assert converged[(iterations > 0)].sum() == 0  # problems needing a step stop at maxiter=0, not converged


def test_gram_form_with_shared_columns_matches_scipy():
    """The mixture's forward step from Gram blocks: kept columns shared, one candidate block each."""
    rng = np.random.default_rng(15)
    n = 850
    C = np.abs(rng.standard_normal((n, 12)))
    blocks = np.abs(rng.standard_normal((8, n, 4)))
    y = C @ rng.random(12) + blocks[3] @ rng.random(4) + 0.1 * rng.standard_normal(n)
    G, c, yy = gram_blocks(C, blocks, y)
    x, rss = nnls_gram(G, c, yy)
    A = np.concatenate([np.broadcast_to(C, (8, n, 12)), blocks], axis=2)
    xs, rs = scipy_stack(A, y)
    np.testing.assert_allclose(x, xs, rtol=0, atol=X_TOL * np.abs(xs).max())
    np.testing.assert_allclose(np.sqrt(rss), rs, rtol=1e-9)
    assert nnls_gram(G, c)[1] is None


def test_gram_rows_is_gram_blocks_transposed_and_takes_the_blocks_gram():
    rng = np.random.default_rng(17)
    n = 400
    C = rng.standard_normal((n, 8))
    blocks = rng.standard_normal((5, n, 4))
    y = rng.standard_normal(n)
    want = gram_blocks(C, blocks, y)
    R = np.ascontiguousarray(np.swapaxes(blocks, 1, 2))
    for RR in (None, R @ np.swapaxes(R, 1, 2)):
        G, c, yy = gram_rows(C, R, y, RR)
        np.testing.assert_allclose(G, want[0], rtol=1e-12, atol=1e-10)
        np.testing.assert_allclose(c, want[1], rtol=1e-12, atol=1e-10)
        assert yy == want[2]


def test_warm_start_gives_the_cold_solution():
    """x0: the solution of the problem without the last block (mixture's forward step) or any feasible point."""
    rng = np.random.default_rng(18)
    n = 600
    C = np.abs(rng.standard_normal((n, 8)))
    blocks = np.abs(rng.standard_normal((6, n, 4)))
    y = C @ rng.random(8) + blocks[2] @ rng.random(4) + 0.1 * rng.standard_normal(n)
    G, c, yy = gram_blocks(C, blocks, y)
    cold, _ = nnls_gram(G, c, yy)
    first = nnls(C, y)[0]
    for x0 in (np.broadcast_to(np.r_[first, np.zeros(4)], c.shape), rng.random(c.shape), np.zeros(c.shape)):
        warm, _ = nnls_gram(G, c, yy, x0=x0)
        np.testing.assert_allclose(warm, cold, rtol=0, atol=X_TOL * np.abs(cold).max())


def test_gram_form_drops_columns_by_zeroing_them():
    """The backward step: the model without component i is the same Gram with its columns zeroed."""
    rng = np.random.default_rng(16)
    A = np.abs(rng.standard_normal((300, 12)))
    y = A @ rng.random(12) + 0.2 * rng.standard_normal(300)
    G, c = A.T @ A, A.T @ y
    keep = np.ones((3, 12), dtype=bool)
    for i in range(3):
        keep[i, 4 * i:4 * i + 4] = False
    Gk = np.where(keep[:, :, None] & keep[:, None, :], G, 0.0)
    x, rss = nnls_gram(Gk, np.where(keep, c, 0.0), float(y @ y))
    for i in range(3):
        xs, rs = nnls(A[:, keep[i]], y)
        assert (x[i, ~keep[i]] == 0).all()
        np.testing.assert_allclose(x[i, keep[i]], xs, rtol=0, atol=X_TOL * np.abs(xs).max())
        assert np.sqrt(rss[i]) == pytest.approx(rs, rel=1e-9)


def test_bad_input():
    with pytest.raises(ValueError, match="stack"):
        nnls_batch(np.zeros((3, 4)), np.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        nnls_batch(np.full((1, 3, 2), np.nan), np.zeros(3))
    x, r = nnls_batch(np.zeros((0, 5, 3)), np.zeros((0, 5)))
    assert x.shape == (0, 3) and r.shape == (0,)
    with pytest.raises(ValueError, match="G"):
        nnls_gram(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="finite"):
        nnls_gram(np.full((1, 2, 2), np.inf), np.zeros((1, 2)))


# ----------------------------------------------------------------------------- real ENFSI columns


def enfsi_columns(section, rows, mask, basis):
    """Mixture-analysis-like columns of real references: each scaled to a unit strongest band, its four
    rays s +- 2 s' + {0, 4} s'' (Savitzky-Golay derivatives per cm-1), the baseline projected out."""
    grid = section.grid
    step = float(np.median(np.diff(grid)))
    raw = np.asarray(section.raw, dtype=np.float64)[rows]
    s = raw / raw.max(axis=1, keepdims=True)
    d1 = savgol_filter(s, 7, 3, deriv=1, delta=step, axis=1)
    d2 = savgol_filter(s, 7, 3, deriv=2, delta=step, axis=1)
    rays = np.stack([s + a * d1 + c * d2 for a in (-2.0, 2.0) for c in (0.0, 4.0)], axis=-1)  # [k, n, 4]
    cols = rays[:, mask].transpose(1, 0, 2).reshape(mask.sum(), -1)
    q, _ = np.linalg.qr(basis[mask])
    return cols - q @ (q.T @ cols), q


@pytest.fixture(scope="module")
def enfsi(enfsi_library):
    from fol.io.library import load_library

    section = load_library(enfsi_library).section("ftir")
    grid = section.grid
    mask = np.ones(grid.size, dtype=bool)
    u = (grid - grid[0]) / (grid[-1] - grid[0]) * 2 - 1
    basis = np.polynomial.legendre.legvander(u, 12)
    return section, mask, basis


def test_real_enfsi_mixture_fits_match_scipy(enfsi):
    """Forward-selection-like problems on the 67 real ENFSI references: a measured mixture of two or
    three, fitted with 1-5 components (4 to 20 columns, three-dimensional rays) and one candidate more."""
    section, mask, basis = enfsi
    rng = np.random.default_rng(13)
    N = len(section)
    problems_A, problems_b = [], []
    for trial in range(40):
        present = rng.choice(N, size=rng.integers(2, 4), replace=False)
        cols, q = enfsi_columns(section, present, mask, basis)
        y = cols[:, ::4] @ rng.uniform(0.2, 1.0, len(present))
        y = y + 0.01 * np.abs(y).max() * rng.standard_normal(y.size)
        y = y - q @ (q.T @ y)
        k = int(rng.integers(1, 6))
        fit_rows = list(present[:k]) + list(rng.choice(np.setdiff1d(np.arange(N), present), size=max(0, k - len(present)),
                                                       replace=False))
        A, _ = enfsi_columns(section, np.array(fit_rows[:k]), mask, basis)
        problems_A.append(A)
        problems_b.append(y)
    p_max = max(a.shape[1] for a in problems_A)
    A = np.zeros((len(problems_A), mask.sum(), p_max))
    for i, a in enumerate(problems_A):
        A[i, :, :a.shape[1]] = a
    b = np.stack(problems_b)
    assert_same_as_scipy(A, b, unique=False)


def test_real_enfsi_single_reference_rays_and_all_pairs(enfsi):
    """Every ENFSI reference's own four rays against every other reference as the query (most
    coefficients bound), and exact fits where the query is in the cone."""
    section, mask, basis = enfsi
    N = len(section)
    cols, q = enfsi_columns(section, np.arange(N), mask, basis)
    blocks = cols.reshape(cols.shape[0], N, 4).transpose(1, 0, 2)  # [N, n, 4]
    rng = np.random.default_rng(14)
    others = rng.permutation(N)
    b = cols[:, ::4][:, others].T  # query: another reference (projected)
    assert_same_as_scipy(blocks, b, unique=False)
    inside = np.einsum("mnp,mp->mn", blocks, rng.random((N, 4)))
    x, r = assert_same_as_scipy(blocks, inside, unique=False)
    assert (r <= 1e-8 * np.linalg.norm(inside, axis=1)).all()
