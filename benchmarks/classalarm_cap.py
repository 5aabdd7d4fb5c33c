"""Benchmark: the class-alarm training cap on a 10,000-entry library, and the model cache.

``fol.identification.classalarm`` trains its detector on at most ``MAX_TRAINING`` simulated spectra
(analogues keep ``PER_ENTRY`` each; the other entries share the rest). This measures,
in the same run, on the replay benchmark's 10,000-entry Raman library
(``replay_throughput.build_library``): training time and peak memory with the cap
(``capped``) and without it (``uncapped``, the baseline: 12 spectra for every entry),
and whether the cap costs detection: six analogues (all their entries) are left out of
training, and the detector is asked about their spectra (pure, and 30 % in a random
other entry, after the training measurement model) and about 500 random other entries.

Each configuration runs in its own process (peak memory is per process). The uncapped
baseline needs about 8 GB of memory and a minute. Also: the time to read a trained
model back from the cache directory (what every later process and replay worker does).

Run: python benchmarks/classalarm_cap.py [--library-size 10000] [--skip-uncapped]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

HELD_OUT = 6


def measure(library_path: str, capped: bool) -> dict:
    """Train once (capped or not), evaluate on held-out analogues; runs in a fresh process."""
    from fol.identification import classalarm
    from fol.io.library import load_library
    from fol.spectrum import SpectrumBatch

    section = load_library(library_path).section("raman")
    names, classes = np.array(section.names), np.array(section.classes)
    analogues = sorted(set(names[classes == classalarm.ALARM_CLASS]))
    rng = np.random.default_rng(5)
    held = [analogues[i] for i in rng.choice(len(analogues), HELD_OUT, replace=False)]
    out = np.isin(names, held)
    if not capped:
        classalarm.MAX_TRAINING = 10**12
    t = time.perf_counter()
    model = classalarm.train(section.subset(~out))
    seconds = time.perf_counter() - t
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6

    grid = np.asarray(section.grid)
    raw = np.asarray(section.raw, dtype=np.float64)
    raw = raw / raw.max(axis=1, keepdims=True)
    others = np.flatnonzero(classes != classalarm.ALARM_CLASS)
    test_rng = np.random.default_rng(9)
    positives = [raw[i] for i in np.flatnonzero(out)]
    positives += [0.3 * raw[i] + 0.7 * raw[test_rng.choice(others)] for i in np.flatnonzero(out) for _ in range(5)]
    negatives = [raw[i] for i in test_rng.choice(others, 500, replace=False)]
    x = classalarm.perturb(grid, np.array(positives + negatives), test_rng)
    p = model.probability(section.recipe.apply(SpectrumBatch(grid, x, "raman"), grid).data)
    n_pos = len(positives)
    return {"seconds": seconds, "peak_gb": peak_gb, "detected": float(np.mean(p[:n_pos] > 0.5)), "n_pos": n_pos,
            "false": float(np.mean(p[n_pos:] > 0.5)), "n_neg": len(negatives), "held_out": held}


def cache_read_ms(library_path: str, cache: str) -> tuple[float, float]:
    """(first use: train and write, ms; next process: read back, ms)."""
    code = ("import time, sys; from fol import classalarm; from fol.io.library import load_library; "
            "lib = load_library(sys.argv[1]); s = lib.section('raman'); t = time.perf_counter(); "
            "classalarm.for_section(lib.sha256, s); print((time.perf_counter() - t) * 1e3)")
    env = {**os.environ, "FOL_CACHE_DIR": cache}
    run = lambda: float(subprocess.run([sys.executable, "-c", code, library_path], env=env, check=True,  # noqa: E731
                                       capture_output=True, text=True).stdout.strip())
    return run(), run()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--library-size", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=20261123)
    ap.add_argument("--skip-uncapped", action="store_true", help="skip the ~8 GB uncapped baseline")
    ap.add_argument("--measure", nargs=2, metavar=("LIBRARY", "capped|uncapped"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure[0], args.measure[1] == "capped")))
        return 0

    from replay_throughput import build_library, machine

    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        lib = Path(tmp) / "library.h5"
        build_library(lib, args.library_size, args.seed)
        rows = {}
        for kind in ("capped",) + (() if args.skip_uncapped else ("uncapped",)):
            done = subprocess.run([sys.executable, __file__, "--measure", str(lib), kind], check=True,
                                  capture_output=True, text=True)
            rows[kind] = json.loads(done.stdout.strip().splitlines()[-1])
        first, again = cache_read_ms(str(lib), str(Path(tmp) / "cache"))
    print(f"library: {args.library_size} Raman entries; {HELD_OUT} analogues left out of training: "
          f"{', '.join(rows['capped']['held_out'])}")
    print(f"{'training':<10} {'seconds':>8} {'peak GB':>8} {'held-out analogues detected':>28} {'others flagged':>15}")
    for kind, r in rows.items():
        print(f"{kind:<10} {r['seconds']:>8.1f} {r['peak_gb']:>8.1f} {r['detected']:>20.1%} (n={r['n_pos']}) "
              f"{r['false']:>8.1%} (n={r['n_neg']})")
    if "uncapped" in rows:
        u, c = rows["uncapped"], rows["capped"]
        print(f"capped vs uncapped: {u['seconds'] / c['seconds']:.1f}x faster, {u['peak_gb'] / c['peak_gb']:.1f}x "
              f"less memory; detection {c['detected'] - u['detected']:+.1%}, false {c['false'] - u['false']:+.1%}")
    print(f"first use in a process (train, write the cache): {first:,.0f} ms; next process (read the cache): "
          f"{again:,.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
