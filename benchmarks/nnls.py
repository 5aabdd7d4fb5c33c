"""Benchmark: batched NNLS (fol.identification.nnls.nnls_batch) against a loop of scipy.optimize.nnls.

The problem sizes of mixture analysis (fol.identification.mixture): ~850 points on the
mask; k = 1..5 components of four ray columns each (s +- shift s' + {lo, hi} s'', three-
dimensional, so the columns are collinear by construction), the baseline projected out
(``--baseline 0``, as the model does today) or kept as ~15 further non-negative columns
(``--baseline 15``); the query a mixture of two references plus noise.

Stacks of ``m`` problems: 8 (one forward-selection step of one spectrum: ``candidates``
fits against the same residual), 256 (one step for a replay task's batch of spectra in
lock step) and 2,048. Both sides solve the same stack in the same run; best of
``--repeats``. The solutions are checked against scipy's (residual norms to 1e-9 of ||b||).

Run: python benchmarks/nnls.py [--points 850] [--baseline 0] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import best_time  # noqa: E402


def rays(grid, rng, count):
    """``[count, n, 4]``: Lorentzian references (10 bands) and their four shift/width rays."""
    c = rng.uniform(grid[0], grid[-1], (count, 10, 1))
    h = rng.uniform(0.2, 1.0, (count, 10, 1))
    w = rng.uniform(6, 20, (count, 10, 1)) / 2
    s = (h * w**2 / ((grid - c) ** 2 + w**2)).sum(axis=1)
    s /= s.max(axis=1, keepdims=True)
    d1 = np.gradient(s, grid, axis=1)
    d2 = np.gradient(d1, grid, axis=1)
    return np.stack([s + a * d1 + b * d2 for a in (-2.0, 2.0) for b in (0.0, 4.0)], axis=-1)


def problems(rng, m, n, k, baseline):
    grid = np.linspace(200, 1900, n)
    A = rays(grid, rng, m * k).reshape(m, k, n, 4).transpose(0, 2, 1, 3).reshape(m, n, 4 * k)
    u = np.linspace(-1, 1, n)
    if baseline:
        B = np.polynomial.legendre.legvander(u, baseline - 1)
        B = np.abs(B)  # non-negative columns (a free baseline would be eliminated by projection instead)
        A = np.concatenate([A, np.broadcast_to(B, (m, n, baseline))], axis=2)
    present = rays(grid, rng, 2)[:, :, 0]
    b = 0.7 * A[:, :, 0] + (present.T @ np.array([0.5, 0.2]))[None]  # the first fitted reference and two others
    b = b + 0.3 * (1 + u + u**2) + 0.01 * rng.standard_normal((m, n))
    return A, b


def main(argv=None) -> int:
    from scipy.optimize import nnls

    from fol.identification.nnls import gram_blocks, nnls_batch, nnls_gram

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=850)
    ap.add_argument("--baseline", type=int, default=0, help="non-negative baseline columns added to each problem")
    ap.add_argument("--stacks", default="8,256,2048")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)  # as a replay worker runs
    except ImportError:
        pass
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; one BLAS thread; load {os.getloadavg()[0]:.1f}")
    print(f"{args.points} points, 4 k ray columns + {args.baseline} baseline columns; best of {args.repeats}")
    print(f"{'k':>2} {'cols':>4} {'stack':>6} {'scipy loop':>11} {'batched':>10} {'speed-up':>8} "
          f"{'us/problem scipy':>16} {'batched':>8} {'max |dr|/|b|':>12}")
    rng = np.random.default_rng(1)
    print("\nA. independent problems (nnls_batch: columns and right-hand side of each problem its own)")
    for m in map(int, args.stacks.split(",")):
        for k in (1, 2, 3, 4, 5):
            A, b = problems(rng, m, args.points, k, args.baseline)
            t_loop = best_time(lambda: [nnls(a, y) for a, y in zip(A, b)], args.repeats)
            t_batch = best_time(lambda: nnls_batch(A, b), args.repeats)
            rs = np.array([nnls(a, y)[1] for a, y in zip(A, b)])
            _, r = nnls_batch(A, b)
            dev = float(np.max(np.abs(r - rs) / np.linalg.norm(b, axis=1)))
            print(f"{k:>2} {A.shape[2]:>4} {m:>6} {t_loop * 1e3:>9.1f}ms {t_batch * 1e3:>8.1f}ms "
                  f"{t_loop / t_batch:>7.1f}x {1e6 * t_loop / m:>16.0f} {1e6 * t_batch / m:>8.0f} {dev:>12.1e}")

    # B. the forward step of mixture analysis, in lock step over a batch of spectra: per spectrum,
    # k - 1 kept components' columns C (shared) and `candidates` candidate blocks of 4 rays, one
    # residual y; scipy: one call per (spectrum, candidate); batched: gram_blocks per spectrum
    # (C'C once) and one nnls_gram for all
    candidates = 8
    print(f"\nB. forward step: per spectrum {candidates} candidates (4 rays each) beside the k - 1 kept "
          "components, one residual; gram_blocks + one nnls_gram for the batch")
    print(f"{'k':>2} {'cols':>4} {'spectra':>7} {'scipy loop':>11} {'batched':>10} {'speed-up':>8} "
          f"{'us/spectrum scipy':>17} {'batched':>8} {'max |dr|/|b|':>12}")
    for spectra in (1, 32, 256):
        for k in (1, 2, 3, 4, 5):
            A, b = problems(rng, spectra, args.points, max(k - 1, 1), args.baseline)
            C = A[:, :, :4 * (k - 1) + args.baseline * (k > 1)] if k > 1 else A[:, :, :0]
            blocks = rays(np.linspace(200, 1900, args.points), rng, spectra * candidates)
            blocks = blocks.reshape(spectra, candidates, args.points, 4)

            def loop():
                return [nnls(np.concatenate([C[s], blocks[s, j]], axis=1), b[s])
                        for s in range(spectra) for j in range(candidates)]

            def batched():
                parts = [gram_blocks(C[s], blocks[s], b[s]) for s in range(spectra)]
                G = np.concatenate([g for g, _, _ in parts])
                c = np.concatenate([c for _, c, _ in parts])
                bb = np.repeat([v for _, _, v in parts], candidates)
                return nnls_gram(G, c, bb)

            t_loop = best_time(loop, args.repeats)
            t_batch = best_time(batched, args.repeats)
            rs = np.array([r for _, r in loop()])
            _, rss = batched()
            dev = float(np.max(np.abs(np.sqrt(rss) - rs) / np.repeat(np.linalg.norm(b, axis=1), candidates)))
            print(f"{k:>2} {C.shape[2] + 4:>4} {spectra:>7} {t_loop * 1e3:>9.1f}ms {t_batch * 1e3:>8.1f}ms "
                  f"{t_loop / t_batch:>7.1f}x {1e6 * t_loop / spectra:>17.0f} {1e6 * t_batch / spectra:>8.0f} "
                  f"{dev:>12.1e}")

    # C. the backward step: the final model and the k models without one component each
    print("\nC. backward step: the full k-component model and the k models each without one component; "
          "one Gram per spectrum (columns zeroed) and one nnls_gram for the batch")
    print(f"{'k':>2} {'cols':>4} {'spectra':>7} {'scipy loop':>11} {'batched':>10} {'speed-up':>8} "
          f"{'max |dr|/|b|':>12}")
    for spectra in (1, 256):
        for k in (2, 3, 4, 5):
            A, b = problems(rng, spectra, args.points, k, args.baseline)
            p = A.shape[2]
            keep = np.ones((k + 1, p), dtype=bool)
            for i in range(k):
                keep[i + 1, 4 * i:4 * i + 4] = False

            def loop():
                return [nnls(A[s][:, keep[i]], b[s]) for s in range(spectra) for i in range(k + 1)]

            def batched():
                At = np.swapaxes(A, 1, 2)
                G = At @ A
                c = (At @ b[:, :, None])[:, :, 0]
                mask = keep[None, :, :, None] & keep[None, :, None, :]
                Gk = np.where(mask, G[:, None], 0.0).reshape(-1, p, p)
                ck = np.where(keep[None], c[:, None], 0.0).reshape(-1, p)
                return nnls_gram(Gk, ck, np.repeat(np.einsum("mn,mn->m", b, b), k + 1))

            t_loop = best_time(loop, args.repeats)
            t_batch = best_time(batched, args.repeats)
            rs = np.array([r for _, r in loop()])
            _, rss = batched()
            dev = float(np.max(np.abs(np.sqrt(rss) - rs) / np.repeat(np.linalg.norm(b, axis=1), k + 1)))
            print(f"{k:>2} {p:>4} {spectra:>7} {t_loop * 1e3:>9.1f}ms {t_batch * 1e3:>8.1f}ms "
                  f"{t_loop / t_batch:>7.1f}x {dev:>12.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
