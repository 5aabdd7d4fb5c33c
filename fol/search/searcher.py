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

Similarities are in ``fol.search.similarity``, the exact top-k kernels in
``fol.search.topk``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fol.search.similarity import similarity
from fol.search.topk import DEFAULT_CHUNK_BYTES, row_norm_max, top_k

#: bump when the index layout or build changes, so cached indexes of the old kind are rebuilt
INDEX_CACHE_VERSION = 1
#: sections with at least this many rows are searched through ``fol.search.index.PCAIndex`` (same results, faster)
INDEX_MIN_ROWS = 100_000


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
