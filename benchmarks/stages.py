"""Benchmark: per-spectrum cost of the pipeline's heavy stages, against named baselines.

* recipe  : the default Raman recipe on a batch of 1,000 spectra (1,024 native pixels),
            against the same recipe applied one spectrum at a time (``apply_spectrum`` loop).
* mixture : ``MixtureModel.fit`` one spectrum at a time, and ``fit_many`` on a batch of 200
            (as replay runs it), on a 10,000-entry library (goal: <= 50 ms per spectrum),
            against one single-substance search of the same query (GEMV + argpartition).

Best of ``--repeats``; both sides of each ratio measured in the same run.
Run: python benchmarks/stages.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform

import numpy as np
from timing import best_time


def lorentz(grid, centres, heights, width):
    g = grid[:, None]
    hw = width / 2
    return (heights[None, :] * hw**2 / ((g - centres[None, :]) ** 2 + hw**2)).sum(axis=1)


def raman_batch(rng, m: int):
    x = np.linspace(150.0, 2050.0, 1024)
    rows = []
    for _ in range(m):
        y = lorentz(x, rng.uniform(250, 1900, 6), rng.uniform(200, 1000, 6), 10.0)
        y += 3000 * np.exp(-(x - 150) / 900) + rng.normal(0, 10, x.size)
        rows.append(y)
    return x, np.vstack(rows)


def main(argv=None) -> int:
    from fol.io.library import make_section
    from fol.identification.mixture import MixtureModel
    from fol.preprocess.recipe import RAMAN_GRID, default_recipe
    from fol.search.topk import top_k
    from fol.spectrum import Spectrum, SpectrumBatch

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, numpy {np.__version__}; "
          f"load average {os.getloadavg()[0]:.1f}")

    recipe = default_recipe("raman")
    x, Y = raman_batch(rng, 1000)
    batch = SpectrumBatch(x, Y, "raman")
    t_batch = best_time(lambda: recipe.apply(batch, RAMAN_GRID), args.repeats) / len(Y)
    singles = [Spectrum(x, y, "raman") for y in Y[:200]]
    t_single = best_time(lambda: [recipe.apply_spectrum(s, RAMAN_GRID) for s in singles], args.repeats) / len(singles)
    print(f"recipe   batch of 1000: {t_batch * 1e3:7.3f} ms/spectrum | baseline one-at-a-time: "
          f"{t_single * 1e3:7.3f} ms/spectrum | ratio {t_single / t_batch:5.1f}x")

    grid = RAMAN_GRID
    n_lib = 10_000
    raw = np.vstack([lorentz(grid, rng.uniform(250, 1950, 8), rng.uniform(0.2, 1, 8), 10.0)
                     for _ in range(n_lib)]).astype(np.float32)
    proc = raw - raw.mean(axis=1, keepdims=True)
    proc /= np.linalg.norm(proc, axis=1, keepdims=True)
    section = make_section("raman", grid, raw, [f"s{i}" for i in range(n_lib)], ["x"] * n_lib, [False] * n_lib,
                           ["computed"] * n_lib, ["synthetic"] * n_lib, recipe, processed=proc)
    model = MixtureModel(section)
    queries = np.stack([0.7 * raw[i] + 0.3 * raw[i + 1] + 0.2 + rng.normal(0, 0.005, grid.size)
                        for i in range(0, 400, 2)])
    t_fit = best_time(lambda: [model.fit(q) for q in queries[:10]], args.repeats) / 10
    t_many = best_time(lambda: model.fit_many(queries), args.repeats) / len(queries)
    qn = proc[0]
    t_search = best_time(lambda: top_k(section.processed, qn, 10), args.repeats * 5)
    print(f"mixture  10k library:   {t_fit * 1e3:7.2f} ms/spectrum one at a time (goal <= 50), "
          f"{t_many * 1e3:7.2f} ms/spectrum in a batch of {len(queries)} | baseline single search: "
          f"{t_search * 1e3:7.2f} ms | ratio {t_fit / t_search:5.1f}x, {t_many / t_search:5.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
