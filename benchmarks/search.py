"""Benchmark: exact top-10 search, fol.search.searcher vs. the memory-bandwidth floor and common peers.

For libraries of 10k and 100k random normalised spectra (1,500 points) and for 1 and
256 queries, times (best of several repeats, same run, same machine):

* floor    : bare ``L @ q`` + ``argpartition`` + sort of the k best (no bookkeeping)
* fol      : ``fol.search.topk.top_k`` with the library's max row norm computed once (as ``Searcher``):
             exact top-k, float64 re-scoring of the candidates near the k-th score
* sklearn  : ``NearestNeighbors(metric="cosine", algorithm="brute").kneighbors``
* corrcoef : a Python loop of ``np.corrcoef(q, row)`` over the library (single query
             measured; for 256 queries it is 256 x the single-query time, labelled "extrap.")

and asserts that all methods return the same top-10 sets. Prints ratios against the
floor (target: fol within 1.3x) and fol's speed-up over sklearn (target: >= 50x).

Run: python benchmarks/search.py [--sizes 10000,100000] [--points 1500] [--repeats 5]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
from timing import best_time


def random_library(n: int, points: int, rng) -> np.ndarray:
    lib = rng.standard_normal((n, points), dtype=np.float32)
    lib -= lib.mean(axis=1, keepdims=True)
    lib /= np.linalg.norm(lib, axis=1, keepdims=True)
    return lib


def floor_topk(lib, q, k):
    s = q @ lib.T if q.ndim == 2 else (lib @ q)[None]
    part = np.argpartition(s, -k, axis=1)[:, -k:]
    order = np.argsort(-np.take_along_axis(s, part, axis=1), axis=1)
    return np.take_along_axis(part, order, axis=1)


def corrcoef_loop(lib, q, k):
    s = np.array([np.corrcoef(q, row)[0, 1] for row in lib])
    return np.argsort(-s)[:k][None]


def main(argv=None) -> int:
    from sklearn.neighbors import NearestNeighbors

    from fol.search.topk import row_norm_max, top_k

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--points", type=int, default=1500)
    ap.add_argument("--queries", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=20261123)
    args = ap.parse_args(argv)
    k = 10
    rng = np.random.default_rng(args.seed)
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, numpy {np.__version__}, "
          f"{__import__('os').cpu_count()} cpus")
    print(f"{'library':>9} {'queries':>7} {'floor ms':>10} {'fol ms':>10} {'fol/floor':>9} "
          f"{'sklearn ms':>11} {'sklearn/fol':>11} {'corrcoef ms':>12} {'corrcoef/fol':>12}")
    ok = True
    for n in (int(s) for s in args.sizes.split(",")):
        lib = random_library(n, args.points, rng)
        nn = NearestNeighbors(n_neighbors=k, metric="cosine", algorithm="brute").fit(lib)
        norm = row_norm_max(lib)  # once per library, as fol.search.searcher.Searcher does
        for m in (1, args.queries):
            q = random_library(m, args.points, rng)
            q1 = q[0] if m == 1 else q
            want = floor_topk(lib, q1, k)
            got, _ = top_k(lib, q1, k, max_norm=norm)
            got = np.atleast_2d(got)
            sk = nn.kneighbors(q, return_distance=False)
            same = all(set(a) == set(b) == set(c) for a, b, c in zip(want, got, sk))
            t_floor = best_time(lambda: floor_topk(lib, q1, k), args.repeats)
            t_fol = best_time(lambda: top_k(lib, q1, k, max_norm=norm), args.repeats)
            t_sk = best_time(lambda: nn.kneighbors(q, return_distance=False), max(1, args.repeats // 2))
            cc = corrcoef_loop(lib, q[0], k)
            same = same and set(cc[0]) == set(want[0])
            t0 = time.perf_counter()
            corrcoef_loop(lib, q[0], k)
            t_cc = (time.perf_counter() - t0) * m
            ok &= same
            print(f"{n:>9} {m:>7} {t_floor * 1e3:>10.2f} {t_fol * 1e3:>10.2f} {t_fol / t_floor:>9.2f} "
                  f"{t_sk * 1e3:>11.1f} {t_sk / t_fol:>11.1f} {t_cc * 1e3:>12.0f} {t_cc / t_fol:>12.0f}"
                  f"{' (extrap.)' if m > 1 else ''}{'' if same else '  TOP-10 MISMATCH'}")
    print("top-10 sets identical across methods:", "yes" if ok else "NO")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
