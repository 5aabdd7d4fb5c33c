"""Exact top-k similarity search over a processed library matrix.

Library rows and queries are processed by the same recipe, which ends with
``normalize`` (mean-centred, unit L2 norm), so the dot product of a query with a
library row *is* their Pearson correlation. One query is one BLAS GEMV plus
``argpartition``; a batch is a GEMM done in chunks of queries so that the score
matrix held at once stays under ``chunk_bytes`` whatever the batch size.

Scores are reported HQI-style in 0..1: the correlation with negatives clipped to 0.

Similarities follow one contract (as in matchms): ``pair(a, b) -> float`` for two
processed spectra and ``matrix(A, B) -> ndarray[len(A), len(B)]``; the pair form is
the reference definition and the matrix form must agree with it (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_CHUNK_BYTES = 64 << 20
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


def _top_k_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the k largest entries of each row, sorted descending."""
    n = scores.shape[1]
    k = min(k, n)
    if k < n:
        part = np.argpartition(scores, n - k, axis=1)[:, n - k:]
    else:
        part = np.broadcast_to(np.arange(n), scores.shape).copy()
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(vals, order, axis=1)


def top_k(library: np.ndarray, queries: np.ndarray, k: int = 10,
          chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by dot product. ``library`` [N, n] and ``queries`` [m, n] or [n] (float32).

    Returns ``(indices [m, k], scores [m, k])`` (1-D for a 1-D query), best first, scores not clipped.
    """
    lib = np.asarray(library)
    q = np.asarray(queries, dtype=lib.dtype)
    single = q.ndim == 1
    if single:
        s = lib @ q  # GEMV
        idx, val = _top_k_rows(s[None, :], k)
        return idx[0], val[0]
    m, n_lib = q.shape[0], lib.shape[0]
    kk = min(k, n_lib)
    idx = np.empty((m, kk), dtype=np.intp)
    val = np.empty((m, kk), dtype=lib.dtype)
    step = max(1, int(chunk_bytes // max(1, n_lib * lib.itemsize)))
    for a in range(0, m, step):
        s = q[a:a + step] @ lib.T  # GEMM on a bounded chunk
        idx[a:a + step], val[a:a + step] = _top_k_rows(s, kk)
    return idx, val


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


class Searcher:
    """Top-k search of processed queries against one library section."""

    def __init__(self, section, mode: str = "pearson", chunk_bytes: int = DEFAULT_CHUNK_BYTES):
        self.section = section
        self.similarity = similarity(mode)
        self.matrix = self.similarity.prepare(section.processed)
        self.chunk_bytes = chunk_bytes
        names = np.asarray(section.names, dtype=object)
        _, self._name_id = np.unique(names, return_inverse=True)

    def search(self, processed: np.ndarray, k: int = 10) -> SearchResult:
        q = np.atleast_2d(processed)
        if self.similarity.name != "pearson":
            q = self.similarity.prepare(q)
        # fetch a few extra hits so that the best *different* substance is usually among them
        kk = min(len(self.section), k + 8)
        idx, val = top_k(self.matrix, q, kk, self.chunk_bytes)
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
        s = self.section
        k = result.indices.shape[1] if k is None else k
        return [self.hit(j, v) for j, v in zip(result.indices[row, :k], result.scores[row, :k])]

    def hit(self, j: int, score: float) -> dict:
        """One hit/component description for library row ``j``."""
        s = self.section
        return {"name": s.names[j], "class": s.classes[j], "score": round(float(score), 4),
                "alarm": bool(s.alarm[j]), "provenance": s.provenance[j]}
