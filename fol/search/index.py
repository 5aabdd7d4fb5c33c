"""Exact top-k search past the brute-force floor, and libraries larger than RAM.

Brute force (``fol.search.topk.top_k``) reads the whole library matrix for every query:
at a million 1,500-point rows that is 6 GB per query, bounded by memory bandwidth.
``PCAIndex`` reads a compressed copy instead and still returns *exactly* the rows
brute force returns.

The bound. Let ``V`` be an orthonormal basis ``[n, d]`` (the leading principal axes
of the library, from ``numpy.linalg.eigh`` of the Gram matrix of a row sample).
Every row splits as ``l = V p_l + r_l`` with ``p_l = Vᵀ l`` and ``r_l ⊥ V``, and so
does the query. Then ``q·l = p_q·p_l + r_q·r_l`` and, by Cauchy–Schwarz,

    q·l  ≤  p_q·p_l + ‖r_q‖ ‖r_l‖.

The index stores ``P = L V`` (float32) and ``‖r_l‖`` per row. A search scans ``P``
(``d`` columns instead of ``n``), takes rows of high bound as seeds, scores them
exactly, and keeps as candidates only the rows whose upper bound reaches the current
k-th exact score; only those are read in full and scored exactly. A row left out has
an upper bound below a score already found ``k`` times, so it cannot be in the top k:
the result is the brute-force top k, by construction.

Two levels make the bound tight without scanning many columns: level 1 scans the
first ``d1`` columns of ``P``, stored next to ``‖r_l‖`` so that one GEMM of the
queries' ``[p_q, ‖r_q‖]`` gives every row's bound; for its survivors level 2 adds
columns ``d1..d2`` (read only for those rows) with the smaller residual beyond ``d2``.
Bounds are cut into blocks of ``BLOCK_ROWS`` rows: the block maxima give the seeds,
and blocks whose maximum is below the bar are not looked at again.

Floating point. Candidates are scored with ``fol.search.topk.exact_scores`` (float64
products of the float32 rows, summed the same way whatever the batch), the score
``fol.search.topk.top_k`` orders by too; ties go to the lower row index in both. The
projections and residual norms are computed in float64 (norms rounded up to
float32), and every bound comparison is widened by ``fol.search.topk.score_margin``
(twice the worst-case error of a float32 dot product of length ``n``), far more than
the float32 scan of ``P`` can be off. So both searches return the same rows in the
same order with the same scores.

Rows larger than RAM: ``Rows`` gives block-wise and gathered access to an ``[N, n]``
matrix held in memory, memory-mapped (``.npy``, ``np.memmap``) or in an HDF5 dataset
(read chunk-band by chunk-band with h5py); ``chunked_top_k`` is brute force over it
in bounded memory, and ``PCAIndex.build`` streams it once to project.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from fol.search.topk import exact_scores, row_norm_max, score_margin, select_top_k, top_k

#: the default levels: columns scanned for every row, and columns used to refine survivors
DEFAULT_LEVELS = (64, 256)
#: rows sampled to find the principal axes (the bound holds for any basis; more rows, tighter bound)
DEFAULT_SAMPLE_ROWS = 20_000
#: bytes of one block read from a memory-mapped or HDF5 matrix
DEFAULT_BLOCK_BYTES = 64 << 20
#: h5py chunk cache of a matrix opened by ``open_rows`` (decompressed chunks kept for the next reads)
DEFAULT_CHUNK_CACHE_BYTES = 256 << 20
#: bytes of the ``[queries, N]`` level-1 bound matrix of one chunk of queries
DEFAULT_SCAN_BYTES = 256 << 20
#: above this median level-1 residual norm (of unit rows) the level-1 bound prunes too little to pay
USEFUL_RESIDUAL = 0.8


# ----------------------------------------------------------------------------- row access


class Rows:
    """Block and gather access to an ``[N, n]`` matrix: ndarray, ``np.memmap`` or ``h5py.Dataset``.

    ``blocks()`` yields ``(start, float32 block)`` of whole rows, at most
    ``block_bytes`` each (whole HDF5 chunk bands, so no chunk is decompressed twice);
    ``take(rows)`` gathers rows given in increasing order, reading each chunk band
    they touch once.
    """

    def __init__(self, data, block_bytes: int = DEFAULT_BLOCK_BYTES):
        if len(data.shape) != 2:
            raise ValueError(f"a row matrix must be 2-D, got shape {data.shape}")
        self.data = data
        self.shape = tuple(int(s) for s in data.shape)
        chunks = getattr(data, "chunks", None)
        self._band = int(chunks[0]) if chunks else 1  # rows per HDF5 chunk band (1: random access is cheap)
        rows = max(1, block_bytes // max(1, 4 * self.shape[1]))
        self.block_rows = max(self._band, rows // self._band * self._band)

    def __len__(self) -> int:
        return self.shape[0]

    def blocks(self) -> Iterator[tuple[int, np.ndarray]]:
        for a in range(0, self.shape[0], self.block_rows):
            yield a, np.ascontiguousarray(self.data[a:a + self.block_rows], dtype=np.float32)

    def take(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.intp)
        if isinstance(self.data, np.ndarray):
            return np.ascontiguousarray(self.data[rows], dtype=np.float32)
        out = np.empty((rows.size, self.shape[1]), dtype=np.float32)
        band = rows // self._band
        starts = np.flatnonzero(np.r_[True, band[1:] != band[:-1]]) if rows.size else np.array([], int)
        for s, e in zip(starts, np.r_[starts[1:], rows.size]):
            lo, hi = int(rows[s]), int(rows[e - 1]) + 1
            out[s:e] = self.data[lo:hi][rows[s:e] - lo]
        return out


def open_rows(path: str | Path, technique: str = "raman", block_bytes: int = DEFAULT_BLOCK_BYTES,
              cache_bytes: int = DEFAULT_CHUNK_CACHE_BYTES) -> Rows:
    """The processed matrix of a library without loading it: ``.npy`` memory-mapped, HDF5 read by chunks.

    For an HDF5 library file the matrix is ``/<technique>/processed``; the file stays
    open as long as the returned ``Rows`` is referenced. ``cache_bytes`` is h5py's
    cache of decompressed chunks: candidates of successive queries often fall in the
    same chunks (random access to gzip chunks is slow; ``export_npy`` avoids it).
    """
    path = Path(path)
    if path.suffix == ".npy":
        return Rows(np.load(path, mmap_mode="r"), block_bytes)
    import h5py

    f = h5py.File(path, "r", rdcc_nbytes=cache_bytes, rdcc_nslots=100_003)
    try:
        return Rows(f[f"{technique}/processed"], block_bytes)
    except KeyError:
        f.close()
        raise KeyError(f"{path}: no /{technique}/processed matrix") from None


def export_npy(rows: Rows, path: str | Path) -> Path:
    """Copy a (chunked, compressed) matrix to an uncompressed float32 ``.npy`` for memory-mapped random access."""
    path = Path(path)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=rows.shape)
    for a, block in rows.blocks():
        out[a:a + len(block)] = block
    out.flush()
    del out
    return path


# ----------------------------------------------------------------------------- exact selection


def chunked_top_k(rows: Rows, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force exact top-k over a matrix read block by block (memory bounded by one block).

    Same contract as ``fol.search.topk.top_k``: ``(indices, scores)`` best first, 1-D for a 1-D query.
    """
    q = np.asarray(queries, dtype=np.float32)
    single = q.ndim == 1
    q = np.atleast_2d(q)
    kk = min(k, len(rows))
    best_i = np.empty((q.shape[0], 0), dtype=np.intp)
    best_v = np.empty((q.shape[0], 0), dtype=np.float64)
    for a, block in rows.blocks():
        bi, bv = top_k(block, q, kk, max_norm=row_norm_max(block))
        cand_i, cand_v = np.hstack([best_i, bi + a]), np.hstack([best_v, bv])
        picked = [select_top_k(ci, cv, kk) for ci, cv in zip(cand_i, cand_v)]
        best_i = np.array([p[0] for p in picked], dtype=np.intp)
        best_v = np.array([p[1] for p in picked], dtype=np.float64)
    return (best_i[0], best_v[0]) if single else (best_i, best_v)


# ----------------------------------------------------------------------------- the index


#: rows per block of the level-1 bounds: block maxima give the seeds and skip blocks without survivors
BLOCK_ROWS = 1024


def _blocks(n: int, k: int) -> np.ndarray:
    """Start of each block of about ``BLOCK_ROWS`` rows (at least ``4k`` blocks), and ``n`` at the end."""
    return np.linspace(0, n, min(n, max(4 * k, n // BLOCK_ROWS)) + 1).astype(np.intp)


def _seeds(bounds: np.ndarray, maxima: np.ndarray, starts: np.ndarray, k: int) -> np.ndarray:
    """Per query, ``k`` rows of high bound: the best row of each of the ``k`` blocks of highest maximum.

    Any ``k`` rows would do (they only set the first bar); good ones make the bar high.
    """
    best = np.argpartition(maxima, maxima.shape[1] - k, axis=1)[:, maxima.shape[1] - k:]
    return np.array([np.sort([starts[b] + int(np.argmax(row[starts[b]:starts[b + 1]])) for b in blocks])
                     for row, blocks in zip(bounds, best)], dtype=np.intp).reshape(len(bounds), k)


def _survivors(bounds: np.ndarray, maxima: np.ndarray, starts: np.ndarray, bar: float) -> np.ndarray:
    """Rows whose bound reaches ``bar``, looking only inside blocks whose maximum does."""
    hit = np.flatnonzero(maxima >= bar)
    if hit.size > maxima.size // 4:
        return np.flatnonzero(bounds >= bar)
    parts = [starts[b] + np.flatnonzero(bounds[starts[b]:starts[b + 1]] >= bar) for b in hit]
    return np.concatenate(parts) if parts else np.empty(0, np.intp)


def _round_up(a: np.ndarray) -> np.ndarray:
    """float64 → float32 never below the input (residual norms must stay upper bounds)."""
    f = a.astype(np.float32)
    low = f.astype(np.float64) < a
    f[low] = np.nextafter(f[low], np.float32(np.inf))
    return f


def _round_down(a: np.ndarray) -> np.ndarray:
    """float64 → float32 never above the input (a bar must not rise when compared in float32)."""
    f = np.atleast_1d(a).astype(np.float32)
    high = f.astype(np.float64) > a
    f[high] = np.nextafter(f[high], np.float32(-np.inf))
    return f


class PCAIndex:
    """Exact top-k over ``rows`` through a two-level PCA projection (see the module docstring).

    Build with ``PCAIndex.build(rows)``; ``search(queries, k)`` has the contract of
    ``fol.search.topk.top_k``. ``stats`` reports, for the last search, how many rows were
    scored exactly and how many survived level 1, per query on average.

    The level-1 matrix holds ``[p_l[:d1], ‖r_l‖]`` per row, so that one GEMM with
    ``[p_q[:d1], ‖r_q‖]`` gives the level-1 *upper bounds* directly.
    """

    def __init__(self, rows: Rows, basis: np.ndarray, scan: np.ndarray, tail: np.ndarray,
                 residual_tail: np.ndarray, max_norm: float):
        self.rows = rows
        self.basis = basis  # [n, d2] float64, orthonormal columns
        self.scan = scan  # [N, d1 + 1] float32: projections on the first d1 axes, then ‖l - V₁V₁ᵀl‖ rounded up
        self.tail = tail  # [N, d2 - d1] float32: projections on the next axes (read for survivors)
        self.residual_tail = residual_tail  # [N] float32 ‖l - VVᵀl‖, rounded up
        self.max_norm = max_norm
        self.stats: dict[str, float] = {}

    @property
    def head(self) -> np.ndarray:
        """``[N, d1]`` projections on the first axes (a view)."""
        return self.scan[:, :-1]

    @property
    def residual_head(self) -> np.ndarray:
        """``[N]`` residual norms beyond the first axes (a view)."""
        return self.scan[:, -1]

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def levels(self) -> tuple[int, int]:
        d1 = self.scan.shape[1] - 1
        return d1, d1 + self.tail.shape[1]

    def useful(self) -> bool:
        """Whether the library compresses enough for the index to beat brute force.

        The level-1 bound is loose by ``‖r_q‖‖r_l‖``: when the first axes leave most of
        a typical row unexplained (white-noise-like libraries) nearly every row
        survives, and brute force is cheaper.
        """
        return float(np.median(self.residual_head)) <= USEFUL_RESIDUAL * self.max_norm

    @classmethod
    def build(cls, rows: Rows | np.ndarray, levels: tuple[int, int] = DEFAULT_LEVELS,
              sample_rows: int = DEFAULT_SAMPLE_ROWS, seed: int = 0) -> "PCAIndex":
        """Principal axes from a row sample, then one streaming pass to project every row."""
        rows = rows if isinstance(rows, Rows) else Rows(rows)
        n_rows, n = rows.shape
        d2 = int(min(levels[1], n - 1))
        d1 = int(min(levels[0], d2 - 1))
        if d1 < 1:
            raise ValueError(f"rows of {n} points are too short to project")
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(n_rows, size=min(n_rows, sample_rows), replace=False))
        sample = rows.take(pick)
        gram = (sample.T @ sample).astype(np.float64)  # only the basis quality depends on its precision
        _, vecs = np.linalg.eigh(gram)
        basis = np.ascontiguousarray(vecs[:, ::-1][:, :d2])
        scan = np.empty((n_rows, d1 + 1), np.float32)
        tail = np.empty((n_rows, d2 - d1), np.float32)
        res_tail = np.empty(n_rows, np.float32)
        max_norm = 0.0
        for a, block in rows.blocks():
            b64 = block.astype(np.float64)
            p = b64 @ basis
            norm2 = np.einsum("ij,ij->i", b64, b64)
            head_energy = np.einsum("ij,ij->i", p[:, :d1], p[:, :d1])
            tail_energy = head_energy + np.einsum("ij,ij->i", p[:, d1:], p[:, d1:])
            e = a + len(block)
            scan[a:e, :d1], tail[a:e] = p[:, :d1], p[:, d1:]
            scan[a:e, d1] = _round_up(np.sqrt(np.maximum(norm2 - head_energy, 0.0)))
            res_tail[a:e] = _round_up(np.sqrt(np.maximum(norm2 - tail_energy, 0.0)))
            max_norm = max(max_norm, float(np.sqrt(norm2.max(initial=0.0))))
        return cls(rows, basis, scan, tail, res_tail, max_norm)

    # -- persistence (plain arrays, no pickle)

    def save(self, path: str | Path, key: str = "") -> None:
        """Write the index to ``path`` (``.npz``; written to a temporary file, then renamed).

        ``key`` names what it was built from (``fol.search.searcher.Searcher`` uses the library
        hash, technique and similarity); ``load`` can insist on it.
        """
        from fol.paths import save_npz

        save_npz(path, basis=self.basis, scan=self.scan, tail=self.tail, residual_tail=self.residual_tail,
                 max_norm=np.float64(self.max_norm), key=np.str_(key))

    @classmethod
    def load(cls, path: str | Path, rows: Rows | np.ndarray, key: str | None = None) -> "PCAIndex":
        """Read an index saved for ``rows``; ValueError if it does not fit them.

        Besides the shapes (and ``key``, when given), a sample of rows is projected
        again and must agree with the stored projections and residual bounds: an index
        of other rows would make the search inexact, so it is refused.
        """
        rows = rows if isinstance(rows, Rows) else Rows(rows)
        with np.load(path, allow_pickle=False) as z:
            if key is not None and str(z["key"]) != key:
                raise ValueError(f"{path}: index built for {str(z['key'])!r}, not {key!r}")
            index = cls(rows, z["basis"], z["scan"], z["tail"], z["residual_tail"], float(z["max_norm"]))
        if index.scan.shape[0] != len(rows) or index.basis.shape[0] != rows.shape[1]:
            raise ValueError(f"{path}: index of shape {index.scan.shape[0]}x{index.basis.shape[0]} "
                             f"does not fit a {rows.shape[0]}x{rows.shape[1]} matrix")
        if not index._matches_rows():
            raise ValueError(f"{path}: the stored projections do not match the rows (built from another matrix)")
        return index

    def _matches_rows(self, sample: int = 64, seed: int = 0) -> bool:
        """Re-project a few rows (the first, the last, a random sample) and compare."""
        n_rows = len(self.rows)
        if n_rows == 0:
            return True
        pick = np.unique(np.r_[0, n_rows - 1, np.random.default_rng(seed).integers(0, n_rows, sample)])
        b64 = self.rows.take(pick).astype(np.float64)
        d1 = self.levels[0]
        p = b64 @ self.basis
        norm2 = np.einsum("ij,ij->i", b64, b64)
        res_head = np.sqrt(np.maximum(norm2 - np.einsum("ij,ij->i", p[:, :d1], p[:, :d1]), 0.0))
        scale = max(self.max_norm, 1e-30)
        return bool(np.allclose(self.scan[pick, :d1], p[:, :d1], rtol=0, atol=1e-5 * scale)
                    and np.allclose(self.tail[pick], p[:, d1:], rtol=0, atol=1e-5 * scale)
                    and np.all(self.residual_head[pick] >= res_head - 1e-5 * scale)
                    and np.all(self.residual_head[pick] <= res_head + 1e-4 * scale))

    # -- search

    def search(self, queries: np.ndarray, k: int = 10,
               chunk_bytes: int = DEFAULT_SCAN_BYTES) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k by dot product, the same as ``fol.search.topk.top_k``: ``(indices [m, k], scores [m, k])``.

        Queries are scanned in chunks whose ``[queries, N]`` bound matrix stays under
        ``chunk_bytes``.
        """
        q = np.asarray(queries, dtype=np.float32)
        single = q.ndim == 1
        q = np.atleast_2d(q)
        m, n_rows = q.shape[0], len(self)
        kk = min(k, n_rows)
        d1, _ = self.levels
        q64 = q.astype(np.float64)
        proj = q64 @ self.basis  # [m, d2]
        norm2 = np.einsum("ij,ij->i", q64, q64)
        rq_head = np.sqrt(np.maximum(norm2 - np.einsum("ij,ij->i", proj[:, :d1], proj[:, :d1]), 0.0))
        rq_tail = np.sqrt(np.maximum(norm2 - np.einsum("ij,ij->i", proj, proj), 0.0))
        left = np.hstack([proj[:, :d1], rq_head[:, None]]).astype(np.float32)
        margin = score_margin(q, self.max_norm)
        idx = np.empty((m, kk), dtype=np.intp)
        val = np.empty((m, kk), dtype=np.float64)
        scored = survived = 0
        step = max(1, int(chunk_bytes // max(1, 4 * n_rows)))
        starts = _blocks(n_rows, kk)
        for a in range(0, m, step):
            b = min(m, a + step)
            bounds = left[a:b] @ self.scan.T  # level 1: upper bounds of every row, one GEMM
            maxima = np.maximum.reduceat(bounds, starts[:-1], axis=1)
            found = [self._exact(q[i], s) for i, s in zip(range(a, b), _seeds(bounds, maxima, starts, kk))]
            bar = _round_down(np.array([_kth(f, kk) for f in found]) - margin[a:b])
            for j, i in enumerate(range(a, b)):
                survivors = _survivors(bounds[j], maxima[j], starts, bar[j])
                idx[i], val[i] = self._level2(q[i], proj[i], rq_head[i], rq_tail[i], bounds[j], survivors,
                                              found[j], margin[i], kk)
                scored += len(found[j])
                survived += survivors.size
        self.stats = {"scored_per_query": scored / m, "survived_level1_per_query": survived / m,
                      "fraction_scored": scored / (m * n_rows)}
        return (idx[0], val[0]) if single else (idx, val)

    def _exact(self, q: np.ndarray, rows: np.ndarray, known: dict | None = None) -> dict:
        """Canonical scores of ``rows`` (increasing) added to ``known`` (a new dict by default)."""
        known = {} if known is None else known
        new = np.setdiff1d(rows, np.fromiter(known, np.intp, len(known)), assume_unique=True)
        if new.size:
            known.update(zip(new.tolist(), exact_scores(self.rows.take(new), q).tolist()))
        return known

    def _level2(self, q, p, rq_head, rq_tail, bounds, survivors, found, margin, k):
        """Top k of one query from its level-1 survivors: more axes, better seeds, exact scores."""
        d1, _ = self.levels
        if survivors.size > len(self) // 8:  # many: reading the whole tail in order beats gathering rows
            approx = (bounds - np.float32(rq_head) * self.residual_head + self.tail @ p[d1:].astype(np.float32))
            approx = approx[survivors]
        else:
            approx = (bounds[survivors] - np.float32(rq_head) * self.residual_head[survivors]
                      + self.tail[survivors] @ p[d1:].astype(np.float32))
        if survivors.size > k:
            self._exact(q, np.sort(survivors[np.argpartition(approx, approx.size - k)[approx.size - k:]]), found)
        bound2 = approx + np.float32(rq_tail) * self.residual_tail[survivors]
        self._exact(q, survivors[bound2 >= _round_down(np.array(_kth(found, k) - margin))[0]], found)
        cand = np.fromiter(found, np.intp, len(found))
        return select_top_k(cand, np.fromiter(found.values(), np.float64, len(found)), k)


def _kth(scores: dict, k: int) -> float:
    """The k-th best of the scores found so far (a lower bound of the final k-th best)."""
    values = np.fromiter(scores.values(), np.float64, len(scores))
    return float(np.partition(values, values.size - k)[values.size - k])
