"""Many small non-negative least-squares problems solved together.

``nnls_batch(A, b)`` solves ``min ||A[i] x - b[i]||, x >= 0`` for a stack of problems
(``A [m, n, p]``, ``b [m, n]`` or one ``b [n]`` for all), the Lawson-Hanson active-set
method (the algorithm of ``scipy.optimize.nnls``) vectorised over the stack: every
problem keeps its own passive set, and each round of the loop advances all unfinished
problems by one step (add the column with the largest positive gradient, or one
interpolation step back into the feasible region) with one batched ``numpy.linalg.solve``
of the passive systems. The loop runs as many rounds as the hardest problem of the stack
needs (about twice its final passive-set size), so the Python overhead is paid per round,
not per problem: it is meant for the many small fits of mixture analysis (``p`` up to a
few dozen columns, ``n`` up to a few thousand points), where ``scipy.optimize.nnls`` in a
loop spends most of its time in per-call overhead.

Numerics. The steps work on the normal equations of the column-scaled problem (unit
column norms, so the Gram matrix has a unit diagonal); a column that is (numerically) in
the span of the passive columns is not added (the test Lawson-Hanson makes with its
Householder update: its squared sine against the passive set must exceed
``SPAN_TOL``), nor one whose tentative coefficient is not positive. Columns of zeros
get 0. When the active set is settled, the passive coefficients get one step of
iterative refinement with the residual computed from ``A`` itself (corrected semi-normal
equations), which recovers the accuracy of an orthogonal factorisation for the
well-conditioned problems mixture analysis makes.

Agreement with ``scipy.optimize.nnls`` (``tests/identification/test_nnls.py``): on
problems with full column rank the solution is unique and agrees to ``1e-9`` relative
(to the norm of the solution); where columns are collinear or repeated the minimiser is
not unique, and the residual norm agrees to ``1e-9`` relative (to ``||b||``).

Problems of different widths go in one stack padded with zero columns (which get 0);
problems of different lengths padded with zero rows (which change nothing).
"""

from __future__ import annotations

import numpy as np

#: squared sine (against the span of the passive columns, unit-norm columns) below which a column is not added
SPAN_TOL = 1e-11
#: refinement steps of the passive solution with the residual from ``A``
REFINE_STEPS = 1


def _passive_solve(G: np.ndarray, rhs: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Solve ``G[P, P] s = rhs[P]`` per problem (``s = 0`` outside ``P``); identity on the rest."""
    both = P[:, :, None] & P[:, None, :]
    M = np.where(both, G, 0.0)
    idx = np.arange(G.shape[1])
    M[:, idx, idx] += ~P
    s = np.linalg.solve(M, np.where(P, rhs, 0.0)[:, :, None])[:, :, 0]
    return np.where(P, s, 0.0)


def _lawson_hanson(G: np.ndarray, c: np.ndarray, *, tol: np.ndarray | float | None = None,
                   maxiter: int | None = None, x0: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lawson-Hanson on the normal equations: ``min x'Gx - 2c'x, x >= 0`` per problem.

    ``G [m, p, p]`` (symmetric positive semi-definite) with a unit (or zero) diagonal,
    ``c [m, p]``.
    ``tol``: gradient entries at or below it count as zero (per problem or one value).
    Returns ``(x [m, p], iterations [m], converged [m])``; a problem that needs more than
    ``maxiter`` (default ``3 p``) interpolation steps stops there, not converged.
    ``x0``: a feasible start (``x0 >= 0``), e.g. the solution of a problem with fewer columns: its
    positive entries are the first passive set, whose system is solved first (then the usual
    interpolation back into the feasible region); the active-set loop then goes on from there.
    """
    G = np.asarray(G, dtype=np.float64)
    c = np.asarray(c, dtype=np.float64)
    m, p = c.shape
    maxiter = 3 * p if maxiter is None else int(maxiter)
    tol = np.broadcast_to(np.asarray(0.0 if tol is None else tol, dtype=np.float64), (m,))
    live = np.diagonal(G, axis1=1, axis2=2) > 0
    x = np.zeros((m, p))
    P = np.zeros((m, p), dtype=bool)
    banned = np.zeros((m, p), dtype=bool)
    adding = np.ones(m, dtype=bool)  # True: next step adds a column; False: the passive system must be solved
    if x0 is not None:
        x = np.where(live, np.maximum(np.asarray(x0, dtype=np.float64), 0.0), 0.0)
        P = x > 0
        adding = ~P.any(axis=1)
    done = np.zeros(m, dtype=bool)
    converged = np.ones(m, dtype=bool)
    just_added = np.full(m, -1)
    iterations = np.zeros(m, dtype=np.int64)
    s_pre = np.zeros((m, p))
    have_s = np.zeros(m, dtype=bool)
    while not done.all():
        ia = np.flatnonzero(adding & ~done)
        if ia.size:
            w = c[ia] - np.einsum("bij,bj->bi", G[ia], x[ia])
            cand = live[ia] & ~P[ia] & ~banned[ia] & (w > tol[ia, None])
            has = cand.any(axis=1)
            done[ia[~has]] = True
            ia, w, cand = ia[has], w[has], cand[has]
            if ia.size:
                k = np.argmax(np.where(cand, w, -np.inf), axis=1)
                g = np.where(P[ia], G[ia, :, k], 0.0)
                t = _passive_solve(G[ia], g, P[ia])
                sine2 = G[ia, k, k] - np.einsum("bi,bi->b", g, t)
                ok = sine2 > SPAN_TOL * G[ia, k, k]
                banned[ia[~ok], k[~ok]] = True
                # the passive solution with k added, by bordering (x is the solution on the old set):
                # s_k = w_k / sine2, s_P = x_P - t s_k -- no second solve
                sk = w[np.flatnonzero(ok), k[ok]] / sine2[ok]
                s_new = np.where(P[ia[ok]], x[ia[ok]] - t[ok] * sk[:, None], 0.0)
                ia, k = ia[ok], k[ok]
                s_new[np.arange(ia.size), k] = sk
                s_pre[ia] = s_new
                have_s[ia] = True
                P[ia, k] = True
                banned[ia] = False
                adding[ia] = False
                just_added[ia] = k
        js = np.flatnonzero(~adding & ~done)
        if not js.size:
            continue
        pre = have_s[js]
        s = np.empty((js.size, p))
        s[pre] = s_pre[js[pre]]
        if not pre.all():
            s[~pre] = _passive_solve(G[js[~pre]], c[js[~pre]], P[js[~pre]])
        have_s[js] = False
        # the column just added must enter with a positive coefficient (else: numerically
        # not worth adding; it is set aside until the next column is added)
        ja = just_added[js]
        fresh = ja >= 0
        bad = np.zeros(js.size, dtype=bool)
        bad[fresh] = s[np.flatnonzero(fresh), ja[fresh]] <= 0
        if bad.any():
            jb = js[bad]
            P[jb, ja[bad]] = False
            banned[jb, ja[bad]] = True
            adding[jb] = True
        just_added[js] = -1
        keep = ~bad
        js, s = js[keep], s[keep]
        if not js.size:
            continue
        neg = P[js] & (s <= 0)
        feasible = ~neg.any(axis=1)
        jf = js[feasible]
        x[jf] = s[feasible]
        adding[jf] = True
        # interpolation step back to the feasible region for the others
        jn, sn, negn = js[~feasible], s[~feasible], neg[~feasible]
        if jn.size:
            xn = x[jn]
            den = xn - sn
            ratio = np.where(negn, np.divide(xn, den, out=np.zeros_like(xn), where=den > 0), np.inf)
            hit = np.argmin(ratio, axis=1)
            alpha = ratio[np.arange(jn.size), hit][:, None]
            xn = xn + alpha * (sn - xn)
            pn = P[jn] & (xn > 0)
            pn[np.arange(jn.size), hit] = False
            x[jn] = np.where(pn, xn, 0.0)
            P[jn] = pn
            iterations[jn] += 1
            over = jn[iterations[jn] >= maxiter]
            converged[over] = False
            done[over] = True
    return x, iterations, converged


def _scaled(G: np.ndarray, c: np.ndarray):
    """Unit-diagonal form of a Gram system: (Gs, cs, d) with ``G = D Gs D``, ``c = D cs``, ``D = diag(d)``."""
    p = G.shape[1]
    d = np.sqrt(np.maximum(np.diagonal(G, axis1=1, axis2=2), 0.0))
    live = d > 0
    d = np.where(live, d, 1.0)
    Gs = G / (d[:, :, None] * d[:, None, :])
    idx = np.arange(p)
    Gs[:, idx, idx] = np.where(live, 1.0, 0.0)  # exactly unit (zero for zero columns)
    cs = np.where(live, c / d, 0.0)
    return Gs, cs, d, live


def nnls_gram(G: np.ndarray, c: np.ndarray, bb: np.ndarray | float | None = None, *, maxiter: int | None = None,
              raise_on_failure: bool = True, x0: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """NNLS from the normal equations of each problem: ``G = A'A [m, p, p]``, ``c = A'b [m, p]``.

    For callers that have the Gram matrices cheaper than the columns: fits that share
    columns (``gram_blocks``), or refits of a model with columns dropped (zero the
    dropped rows and columns of ``G`` and entries of ``c``: a column with a zero diagonal
    gets 0). With ``bb = b'b`` (per problem or one value) the residual sums of squares
    ``bb - 2 c'x + x'Gx`` are returned too (accurate to ~1e-12 of ``bb``; ``nnls_batch``
    computes them from ``A`` instead), else None. Returns ``(x [m, p], rss [m] | None)``.
    ``x0 [m, p]``: a feasible start per problem (warm start: the solution of the same problem
    with fewer columns, zero for the new ones, saves most of the active-set rounds).
    """
    G = np.asarray(G, dtype=np.float64)
    c = np.asarray(c, dtype=np.float64)
    if G.ndim != 3 or c.shape != G.shape[:2] or G.shape[1] != G.shape[2]:
        raise ValueError(f"expected G [m, p, p] and c [m, p], got {G.shape} and {c.shape}")
    if not (np.isfinite(G).all() and np.isfinite(c).all()):
        raise ValueError("G and c must be finite")
    m, p = c.shape
    if m == 0 or p == 0:
        rss = None if bb is None else np.broadcast_to(np.asarray(bb, dtype=np.float64), (m,)).copy()
        return np.zeros((m, p)), rss
    Gs, cs, d, live = _scaled(G, c)
    if bb is not None:
        bb = np.broadcast_to(np.asarray(bb, dtype=np.float64), (m,))
        scale = np.sqrt(np.maximum(bb, 0.0))
    else:
        scale = np.abs(cs).max(axis=1)
    z0 = None if x0 is None else np.asarray(x0, dtype=np.float64) * d
    z, _, converged = _lawson_hanson(Gs, cs, tol=10.0 * p * np.finfo(np.float64).eps * scale, maxiter=maxiter, x0=z0)
    if raise_on_failure and not converged.all():
        raise RuntimeError(f"nnls_gram: {int((~converged).sum())} of {m} problems did not converge "
                           f"in {3 * p if maxiter is None else maxiter} iterations")
    x = np.where(z > 0, z / d, 0.0)
    if bb is None:
        return x, None
    rss = bb - 2.0 * np.einsum("mp,mp->m", c, x) + np.einsum("mp,mpq,mq->m", x, G, x)
    return x, np.maximum(rss, 0.0)


def gram_blocks(C: np.ndarray, blocks: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Gram systems of the problems ``[C | blocks[j]] x ~ y``: columns ``C [n, q]`` shared by all,
    ``blocks [m, n, r]`` one per problem, one right-hand side ``y [n]``.

    ``C'C`` and ``C'y`` are computed once (the forward step of mixture analysis: the kept
    components' columns with each candidate's four rays against the same residual).
    Returns ``(G [m, q+r, q+r], c [m, q+r], y'y)`` for ``nnls_gram``.
    """
    C = np.asarray(C, dtype=np.float64)
    B = np.asarray(blocks, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    m, n, r = B.shape
    q = C.shape[1]
    G = np.empty((m, q + r, q + r))
    G[:, :q, :q] = C.T @ C
    CB = C.T @ B  # [m, q, r]
    G[:, :q, q:] = CB
    G[:, q:, :q] = np.swapaxes(CB, 1, 2)
    Bt = np.swapaxes(B, 1, 2)
    G[:, q:, q:] = Bt @ B
    c = np.empty((m, q + r))
    c[:, :q] = C.T @ y
    c[:, q:] = (Bt @ y[:, None])[:, :, 0]
    return G, c, float(y @ y)


def gram_rows(C: np.ndarray, R: np.ndarray, y: np.ndarray, RR: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray, float]:
    """``gram_blocks`` with each problem's block given by its rows: ``R [m, r, n]`` (``blocks[j] = R[j].T``),
    and optionally ``RR = R R' [m, r, r]`` when the caller keeps it (mixture analysis caches the
    Gram matrices of library rows' rays). The products with ``C`` are one matrix product for all
    problems. Returns ``(G [m, q+r, q+r], c [m, q+r], y'y)``.
    """
    C = np.asarray(C, dtype=np.float64)
    R = np.asarray(R, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    m, r, n = R.shape
    q = C.shape[1]
    flat = R.reshape(m * r, n)
    G = np.empty((m, q + r, q + r))
    G[:, :q, :q] = C.T @ C
    CB = (flat @ C).reshape(m, r, q)
    G[:, q:, :q] = CB
    G[:, :q, q:] = np.swapaxes(CB, 1, 2)
    G[:, q:, q:] = R @ np.swapaxes(R, 1, 2) if RR is None else RR
    c = np.empty((m, q + r))
    c[:, :q] = C.T @ y
    c[:, q:] = (flat @ y).reshape(m, r)
    return G, c, float(y @ y)


def nnls_batch(A: np.ndarray, b: np.ndarray, *, maxiter: int | None = None,
               raise_on_failure: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``min ||A[i] x - b[i]||_2, x >= 0`` for every problem of a stack.

    ``A [m, n, p]``; ``b [m, n]``, or ``[n]`` for the same right-hand side in all.
    Returns ``(x [m, p], rnorm [m])`` as ``scipy.optimize.nnls`` does per problem.
    ``maxiter``: interpolation steps per problem (default ``3 p``, scipy's); a problem
    that needs more raises ``RuntimeError`` (or, with ``raise_on_failure=False``, keeps
    its last feasible point).
    """
    A = np.asarray(A, dtype=np.float64)
    if A.ndim != 3:
        raise ValueError(f"expected a stack of matrices [m, n, p], got shape {A.shape}")
    m, n, p = A.shape
    b = np.broadcast_to(np.asarray(b, dtype=np.float64), (m, n))
    if not np.isfinite(b).all():
        raise ValueError("A and b must be finite")
    if m == 0 or p == 0:
        return np.zeros((m, p)), np.linalg.norm(b, axis=1)
    At = np.swapaxes(A, 1, 2)
    G = At @ A
    c = (At @ b[:, :, None])[:, :, 0]
    if not (np.isfinite(G).all() and np.isfinite(c).all()):  # what A holds of inf or nan reaches them
        raise ValueError("A and b must be finite")
    Gs, cs, d, live = _scaled(G, c)
    bnorm = np.linalg.norm(b, axis=1)
    tol = 10.0 * max(n, p) * np.finfo(np.float64).eps * bnorm
    z, _, converged = _lawson_hanson(Gs, cs, tol=tol, maxiter=maxiter)
    if raise_on_failure and not converged.all():
        raise RuntimeError(f"nnls_batch: {int((~converged).sum())} of {m} problems did not converge "
                           f"in {3 * p if maxiter is None else maxiter} iterations")
    # refinement of the passive coefficients with the residual from A (corrected semi-normal equations)
    P = z > 0
    for _ in range(REFINE_STEPS):
        if not P.any():
            break
        r = b - np.einsum("mnp,mp->mn", A, np.where(P, z / d, 0.0))
        g = (At @ r[:, :, None])[:, :, 0] / d
        zn = z + _passive_solve(Gs, g, P)
        ok = np.all(np.where(P, zn > 0, True), axis=1)  # a step that would leave the feasible set is not taken
        z = np.where(ok[:, None], zn, z)
    x = np.where(z > 0, z / d, 0.0)
    rnorm = np.linalg.norm(b - np.einsum("mnp,mp->mn", A, x), axis=1)
    return x, rnorm
