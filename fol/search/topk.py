"""Exact top-k by dot product over a float32 matrix, independent of batching and BLAS.

One query is one BLAS GEMV; a batch is a GEMM done in chunks of queries so that the score
matrix held at once stays under ``chunk_bytes``. The rows within rounding error of the k-th
best are then rescored canonically (float64, ``exact_scores``), so results do not depend on
batching, BLAS kernel or thread count, and ties go to the lower row index. Used by the
``Searcher``, the PCA index and mixture screening.
"""

from __future__ import annotations

import numpy as np

DEFAULT_CHUNK_BYTES = 64 << 20


def gamma(n: int, dtype=np.float32) -> float:
    """Higham's ``γ_n = n u / (1 - n u)``: relative error bound of a dot product of length ``n`` in ``dtype``."""
    u = float(np.finfo(dtype).eps) / 2
    return n * u / (1.0 - n * u)


def score_margin(queries: np.ndarray, max_norm: float, dtype=np.float32) -> np.ndarray:
    """Per query, twice the worst-case error of a ``dtype`` dot product with any library row.

    ``|fl(q·l) - q·l| <= γ_n ‖q‖ ‖l‖``; the k-th best rounded score can sit that much
    above the k-th best exact one, and a top-k row that much below it.
    """
    q = np.atleast_2d(queries)
    return 2.0 * gamma(q.shape[1], dtype) * np.linalg.norm(q.astype(np.float64), axis=1) * max_norm


def exact_scores(rows: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """``rows[i] · queries[i]`` (or each row with one query) in float64: the canonical score.

    Products of float32 inputs are exact in float64 and numpy sums each row the same
    way whatever the batch, BLAS kernel or thread count, so the score of a pair never
    depends on what else was searched with it.
    """
    return np.multiply(rows, queries, dtype=np.float64).sum(axis=-1)


def select_top_k(indices: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best candidates of one query, by score descending then index ascending."""
    order = np.lexsort((indices, -scores))[:k]
    return indices[order], scores[order]


def _lower_kth(scores: np.ndarray, k: int) -> np.ndarray:
    """Per row, a value at most the k-th largest: the k-th largest of ``4k`` block maxima.

    The k largest block maxima are k distinct entries, so the k-th of them cannot
    exceed the k-th largest entry; it is one pass over the scores, unlike a selection.
    """
    n = scores.shape[1]
    blocks = np.linspace(0, n, min(n, 4 * k) + 1).astype(np.intp)[:-1]
    maxima = np.maximum.reduceat(scores, blocks, axis=1)
    return np.partition(maxima, maxima.shape[1] - k, axis=1)[:, maxima.shape[1] - k]


def _top_k_chunk(lib: np.ndarray, q: np.ndarray, scores: np.ndarray, k: int,
                 margin: np.ndarray, rescore_all: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Exact top-k of each query from its rounded ``scores`` [m, N].

    Candidates are the entries within ``margin`` of the k-th best rounded score; they
    hold every row of the exact top k. Their canonical (float64) scores decide.

    ``rescore_all=False`` (indices only, ``top_k_indices``): only candidates whose rounded score
    is within ``margin`` of a neighbour's (in rounded order) are rescored. Two rounded scores more
    than ``margin`` apart are in the exact order (each is off by at most ``margin / 2``), so the
    candidates fall into runs ("clusters") whose order is that of their rounded scores, and only
    the order inside a run needs the canonical scores: the same indices, in the same order.
    """
    m = scores.shape[0]
    rows, cols = np.nonzero(scores >= (_lower_kth(scores, k) - margin)[:, None])
    rounded = scores[rows, cols]
    order = np.lexsort((-rounded, rows))
    rows, cols, rounded = rows[order], cols[order], rounded[order]
    starts = np.searchsorted(rows, np.arange(m))
    keep = rounded >= (rounded[starts + k - 1] - margin)[rows]
    rows, cols, rounded = rows[keep], cols[keep], rounded[keep]
    if rescore_all:
        which = np.arange(rows.size)
        group = rows
    else:  # runs of rounded scores closer than the margin: only they are rescored
        gap = np.ones(rows.size, dtype=bool)
        gap[1:] = (rows[1:] != rows[:-1]) | (np.diff(-rounded.astype(np.float64)) > margin[rows[1:]])
        group = np.cumsum(gap)
        alone = gap & np.r_[gap[1:], True]
        which = np.flatnonzero(~alone)
    exact = np.zeros(rows.size)
    step = max(1, (8 << 20) // (8 * max(1, lib.shape[1])))
    for a in range(0, which.size, step):
        w = which[a:a + step]
        exact[w] = exact_scores(lib[cols[w]], q[rows[w]])
    order = np.lexsort((cols, -exact, group))
    pick = order[np.searchsorted(rows[order], np.arange(m))[:, None] + np.arange(k)]
    return cols[pick], (exact[pick] if rescore_all else None)


def top_k(library: np.ndarray, queries: np.ndarray, k: int = 10, chunk_bytes: int = DEFAULT_CHUNK_BYTES,
          max_norm: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by dot product. ``library`` [N, n] and ``queries`` [m, n] or [n] (float32).

    Returns ``(indices [m, k], scores [m, k])`` (1-D for a 1-D query), best first, scores
    float64 and not clipped. The scan is a BLAS product in the library's precision
    (GEMV for one query, GEMM on chunks of queries bounded by ``chunk_bytes``); the
    rows within its rounding error of the k-th best are then rescored canonically
    (``exact_scores``), which gives the returned scores and the order, ties going to
    the lower index. The result is therefore
    the same for any batch, chunking or BLAS. ``max_norm`` is the largest row norm of
    the library (computed if not given; pass it when searching one library often).
    """
    return _top_k(library, queries, k, chunk_bytes, max_norm, True)


def top_k_indices(library: np.ndarray, queries: np.ndarray, k: int = 10, chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                  max_norm: float | None = None) -> np.ndarray:
    """The indices ``top_k`` returns (``[m, k]``, or ``[k]`` for a 1-D query), without their scores:
    only near-ties of the rounded scores are rescored canonically (``_top_k_chunk``), which is
    most of ``top_k``'s time after the product itself (mixture screening ranks ~24 rows per query
    and uses only their order)."""
    return _top_k(library, queries, k, chunk_bytes, max_norm, False)[0]


def _top_k(library, queries, k, chunk_bytes, max_norm, scores: bool):
    lib = np.asarray(library)
    q = np.asarray(queries, dtype=lib.dtype)
    single = q.ndim == 1
    q = np.atleast_2d(q)
    m, n_lib = q.shape[0], lib.shape[0]
    kk = min(k, n_lib)
    if kk <= 0 or q.shape[1] == 0:  # empty library (or a query that covers none of its axis)
        empty = np.empty((m, 0), dtype=np.intp), np.empty((m, 0), dtype=np.float64)
        return (empty[0][0], empty[1][0]) if single else empty
    if max_norm is None:
        max_norm = row_norm_max(lib)
    margin = score_margin(q, max_norm, lib.dtype)
    idx = np.empty((m, kk), dtype=np.intp)
    val = np.empty((m, kk), dtype=np.float64)
    step = max(1, int(chunk_bytes // max(1, n_lib * lib.itemsize)))
    for a in range(0, m, step):
        chunk = q[a:a + step]
        s = lib @ chunk[0] if len(chunk) == 1 else chunk @ lib.T  # GEMV / GEMM on a bounded chunk
        i, v = _top_k_chunk(lib, chunk, np.atleast_2d(s), kk, margin[a:a + step], scores)
        idx[a:a + step] = i
        if scores:
            val[a:a + step] = v
    return (idx[0], val[0]) if single else (idx, val)


def row_norm_max(matrix: np.ndarray) -> float:
    """An upper bound of the largest L2 row norm, within ``γ_n`` of it.

    The squares are summed in the matrix's precision (one fast pass, like a GEMV); a
    sum of ``n`` non-negative terms is off by at most ``γ_n`` relative, so the result
    is raised by that much to stay an upper bound.
    """
    m = np.atleast_2d(matrix)
    largest = float(np.einsum("ij,ij->i", m, m).max(initial=0.0))
    return float(np.sqrt(largest * (1.0 + 2.0 * gamma(m.shape[1], m.dtype))))
