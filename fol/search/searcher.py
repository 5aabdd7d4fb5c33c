"""Exact top-k similarity search over a processed library matrix.

Library rows and queries are processed by the same recipe, which ends with
``normalize`` (mean-centred, unit L2 norm), so the dot product of a query with a
library row *is* their Pearson correlation. One query is one BLAS GEMV; a batch is a
GEMM done in chunks of queries so that the score matrix held at once stays under
``chunk_bytes`` whatever the batch size. The rows within rounding error of the k-th
best are then rescored canonically (float64), so results do not depend on batching,
BLAS kernel or thread count, and ties go to the lower row index. Sections of
``INDEX_MIN_ROWS`` rows or more are searched through ``fol.search.index.PCAIndex`` (the same
result, without reading every row).

Scores are reported HQI-style in 0..1: the correlation with negatives clipped to 0.

Similarities follow one contract (as in matchms): ``pair(a, b) -> float`` for two
processed spectra and ``matrix(A, B) -> ndarray[len(A), len(B)]``; the pair form is
the reference definition and the matrix form must agree with it (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_CHUNK_BYTES = 64 << 20
#: bump when the index layout or build changes, so cached indexes of the old kind are rebuilt
INDEX_CACHE_VERSION = 1
#: sections with at least this many rows are searched through ``fol.search.index.PCAIndex`` (same results, faster)
INDEX_MIN_ROWS = 100_000
MODES = ("pearson", "derivative")


# ---------------------------------------------------------------------------- similarity contract


class PearsonSimilarity:
    """Pearson correlation of two processed (mean-centred, unit-norm) spectra, clipped to 0..1."""

    name = "pearson"

    @staticmethod
    def prepare(rows: np.ndarray) -> np.ndarray:
        """Rows are already normalised by the recipe: use them as they are (float32, C order)."""
        return np.ascontiguousarray(rows, dtype=np.float32)

    def pair(self, a: np.ndarray, b: np.ndarray) -> float:
        a = np.asarray(a, np.float64) - np.mean(a)
        b = np.asarray(b, np.float64) - np.mean(b)
        den = np.linalg.norm(a) * np.linalg.norm(b)
        return float(max(0.0, a @ b / den)) if den > 0 else 0.0

    def matrix(self, queries: np.ndarray, library: np.ndarray) -> np.ndarray:
        q, lib = self.prepare(queries), self.prepare(library)
        return np.clip(q @ lib.T, 0.0, 1.0)


class DerivativeSimilarity(PearsonSimilarity):
    """Pearson correlation of the first derivatives (Savitzky–Golay): insensitive to residual baseline."""

    name = "derivative"

    def __init__(self, window: int = 9, polyorder: int = 2):
        self.window, self.polyorder = window, polyorder

    def prepare(self, rows: np.ndarray) -> np.ndarray:
        from scipy.signal import savgol_filter

        d = savgol_filter(np.asarray(rows, dtype=np.float64), self.window, self.polyorder, deriv=1, axis=-1)
        d -= d.mean(axis=-1, keepdims=True)
        norm = np.linalg.norm(d, axis=-1, keepdims=True)
        np.divide(d, norm, out=d, where=norm > 0)
        return np.ascontiguousarray(d, dtype=np.float32)

    def pair(self, a: np.ndarray, b: np.ndarray) -> float:
        pa, pb = self.prepare(np.asarray(a)[None]), self.prepare(np.asarray(b)[None])
        return float(max(0.0, float(pa[0].astype(np.float64) @ pb[0].astype(np.float64))))


def similarity(mode: str):
    if mode == "pearson":
        return PearsonSimilarity()
    if mode == "derivative":
        return DerivativeSimilarity()
    raise ValueError(f"unknown similarity mode {mode!r} (expected one of {', '.join(MODES)})")


# ---------------------------------------------------------------------------- top-k


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
                 margin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of each query from its rounded ``scores`` [m, N].

    Candidates are the entries within ``margin`` of the k-th best rounded score; they
    hold every row of the exact top k. Their canonical (float64) scores decide.
    """
    m = scores.shape[0]
    rows, cols = np.nonzero(scores >= (_lower_kth(scores, k) - margin)[:, None])
    rounded = scores[rows, cols]
    order = np.lexsort((-rounded, rows))
    rows, cols, rounded = rows[order], cols[order], rounded[order]
    starts = np.searchsorted(rows, np.arange(m))
    keep = rounded >= (rounded[starts + k - 1] - margin)[rows]
    rows, cols = rows[keep], cols[keep]
    exact = np.empty(rows.size)
    step = max(1, (8 << 20) // (8 * lib.shape[1]))
    for a in range(0, rows.size, step):
        exact[a:a + step] = exact_scores(lib[cols[a:a + step]], q[rows[a:a + step]])
    order = np.lexsort((cols, -exact, rows))
    pick = order[np.searchsorted(rows[order], np.arange(m))[:, None] + np.arange(k)]
    return cols[pick], exact[pick]


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
    lib = np.asarray(library)
    q = np.asarray(queries, dtype=lib.dtype)
    single = q.ndim == 1
    q = np.atleast_2d(q)
    m, n_lib = q.shape[0], lib.shape[0]
    kk = min(k, n_lib)
    if max_norm is None:
        max_norm = row_norm_max(lib)
    margin = score_margin(q, max_norm, lib.dtype)
    idx = np.empty((m, kk), dtype=np.intp)
    val = np.empty((m, kk), dtype=np.float64)
    step = max(1, int(chunk_bytes // max(1, n_lib * lib.itemsize)))
    for a in range(0, m, step):
        chunk = q[a:a + step]
        s = lib @ chunk[0] if len(chunk) == 1 else chunk @ lib.T  # GEMV / GEMM on a bounded chunk
        idx[a:a + step], val[a:a + step] = _top_k_chunk(lib, chunk, np.atleast_2d(s), kk, margin[a:a + step])
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


@dataclass
class SearchResult:
    """Top-k hits for ``m`` queries: library row indices and 0..1 scores, plus the gap.

    ``gap[i]`` is the score of hit 1 minus the score of the best hit of a *different*
    substance (0 if there is none among the hits fetched).
    """

    indices: np.ndarray
    scores: np.ndarray
    gap: np.ndarray
    second: np.ndarray  # row index of the best different substance, -1 if none

    def __len__(self) -> int:
        return self.indices.shape[0]


def index_cache_path(technique: str, mode: str, cache_key: str):
    """Where ``Searcher`` keeps the PCA index of a library section (``fol.paths.cache_dir``)."""
    from fol.paths import cache_file

    return cache_file("pcaindex", INDEX_CACHE_VERSION, technique, similarity(mode).name, cache_key)


class Searcher:
    """Top-k search of processed queries against one library section.

    ``index``: None (default) builds a ``fol.search.index.PCAIndex`` for sections of at least
    ``INDEX_MIN_ROWS`` rows and keeps it if the library compresses well enough for it
    to pay (``PCAIndex.useful``); True/False force it on/off. Results are the same.

    ``cache_key`` (the library content hash; ``Identifier`` passes it for verified
    libraries) keeps a built index in ``fol.paths.cache_dir()`` and reads it back in
    the next process instead of building it again (15-40 s at a million rows). A
    cached index that does not fit the rows is rebuilt (``PCAIndex.load`` checks).
    """

    def __init__(self, section, mode: str = "pearson", chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                 index: bool | None = None, cache_key: str | None = None):
        self.section = section
        self.similarity = similarity(mode)
        self.matrix = self.similarity.prepare(section.processed)
        self.chunk_bytes = chunk_bytes
        names = np.asarray(section.names, dtype=object)
        _, self._name_id = np.unique(names, return_inverse=True)
        self.max_norm = row_norm_max(self.matrix)
        self.index = None
        if index or (index is None and len(section) >= INDEX_MIN_ROWS):
            built = self._index(cache_key)
            self.index = built if index or built.useful() else None

    def _index(self, cache_key: str | None):
        """The PCA index of ``self.matrix``: from the cache when it holds one, else built (and cached)."""
        import zipfile

        from fol.search.index import PCAIndex
        if not cache_key:
            return PCAIndex.build(self.matrix)
        key = f"{cache_key}/{self.section.technique}/{self.similarity.name}"
        path = index_cache_path(self.section.technique, self.similarity.name, cache_key)
        try:
            return PCAIndex.load(path, self.matrix, key=key)
        except (OSError, KeyError, ValueError, zipfile.BadZipFile):
            pass
        built = PCAIndex.build(self.matrix)
        try:
            built.save(path, key=key)
        except OSError:
            pass  # an unwritable cache only costs building again next time
        return built

    def search(self, processed: np.ndarray, k: int = 10) -> SearchResult:
        q = np.atleast_2d(processed)
        if self.similarity.name != "pearson":
            q = self.similarity.prepare(q)
        # fetch a few extra hits so that the best *different* substance is usually among them
        kk = min(len(self.section), k + 8)
        if self.index is not None:
            idx, val = self.index.search(q, kk)  # bounds its own scan memory
        else:
            idx, val = top_k(self.matrix, q, kk, self.chunk_bytes, self.max_norm)
        val = np.clip(val, 0.0, 1.0)
        nid = self._name_id[idx]
        differs = nid != nid[:, :1]
        has = differs.any(axis=1)
        first = np.where(has, differs.argmax(axis=1), 0)
        rows = np.arange(len(q))
        second = np.where(has, idx[rows, first], -1)
        gap = np.where(has, val[:, 0] - val[rows, first], val[:, 0])
        return SearchResult(idx[:, :k], val[:, :k], gap, second)

    def hits(self, result: SearchResult, row: int, k: int | None = None) -> list[dict]:
        """The ``hits`` list of a result object for one query row."""
        k = result.indices.shape[1] if k is None else k
        return [self.hit(j, v) for j, v in zip(result.indices[row, :k], result.scores[row, :k])]

    def hit(self, j: int, score: float) -> dict:
        """One hit/component description for library row ``j``."""
        s = self.section
        return {"name": s.names[j], "class": s.classes[j], "score": round(float(score), 4),
                "alarm": bool(s.alarm[j]), "provenance": s.provenance[j]}
