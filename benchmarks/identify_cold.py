"""Benchmark: wall time of ``fol identify --file`` in a fresh process (cold start).

Uses the shipped library (``spectra_library/fol-reference.h5``, the default of ``fol
identify``) when it is there, else, or with ``--synthetic N``, a Raman library of N
entries (the catalogue's substances, then synthetic compounds; Lorentzian bands
processed by the default recipe). A recording holds one spectrum of a street sample
(fentanyl 20 %, mannitol 80 %) simulated from the library by the simulated
analyzer's measurement model. Then times, each in a new Python process and in the
same run:

* ``python -c pass``                      the interpreter alone (the floor);
* ``python -c "import numpy, scipy..."``  the scientific stack the command needs;
* ``python -m fol identify --file REC [--library LIB]``  the command, end to end;
* ``python -m fol --help``                the CLI without work.

Prints best and median of ``--repeats`` runs, the command's time over the floor, and
the modules that dominate import time (``python -X importtime``).
Target: ``fol identify --file`` <= 1.0 s.

Run: python benchmarks/identify_cold.py [--repeats 7] [--synthetic 103]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_scale import band_parameters, machine, render  # noqa: E402


def synthetic_library(path: Path, size: int, seed: int) -> Path:
    """A ``size``-entry Raman library: catalogue substances first, then synthetic compounds."""
    from fol.catalogue import load_catalogue
    from fol.io.library import make_section, write_library
    from fol.preprocess.recipe import default_grid, default_recipe

    rng = np.random.default_rng(seed)
    cat = load_catalogue()
    grid = default_grid("raman")
    names = [s.name for s in cat][:size]
    names += [f"compound-{i:05d}" for i in range(size - len(names))]
    raw = render(grid, *band_parameters(size, grid[0], grid[-1], rng, n_bands=10)) + 0.05
    section = make_section("raman", grid, raw, names, [cat[n].cls if n in cat else "other" for n in names],
                           [n in cat and cat[n].alarm for n in names], ["measured"] * size, ["synthetic"] * size,
                           default_recipe("raman"))
    write_library(path, {"raman": section}, name="cold-start")
    return path


def street_sample(library: Path, path: Path, seed: int) -> Path:
    """A recording of one simulated Raman spectrum of fentanyl 20 % / mannitol 80 %."""
    from drivers.simulator.model import ReferenceSet, simulate_batch
    from fol.io.library import load_library
    from fol.io.recording import RecordingWriter

    refset = ReferenceSet.from_library(load_library(library).section("raman"))
    batch = simulate_batch(refset, "fentanyl:0.2,mannitol:0.8", 1, np.random.default_rng(seed))
    with RecordingWriter(path, "w") as w:
        w.add_spectrum(batch[0])
    return path


def wall(cmd: list[str], repeats: int) -> tuple[float, float]:
    """(best, median) wall seconds of ``cmd`` in fresh processes; fails loudly if the command fails."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True)
        times.append(time.perf_counter() - t)
        if r.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed: {r.stderr.strip()}")
    return min(times), statistics.median(times)


def import_profile(cmd: list[str], top: int = 10) -> tuple[list, list]:
    """From ``python -X importtime``: (modules the program imported itself, all modules), each the
    ``top`` by cumulative import time in seconds (a module's time includes what it imports)."""
    r = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], capture_output=True, text=True)
    direct, every = [], []
    for line in r.stderr.splitlines():
        if line.startswith("import time:") and "cumulative" not in line:
            _, cumulative, name = line[len("import time:"):].split("|")
            row = (int(cumulative) / 1e6, name.strip())
            every.append(row)
            if not name[1:].startswith(" "):  # one space after the bar: imported at top level
                direct.append(row)
    return sorted(direct, reverse=True)[:top], sorted(every, reverse=True)[:top]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--synthetic", type=int, metavar="N", help="use a synthetic N-entry library, not the shipped one")
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args(argv)
    print(f"machine: {machine()}")
    py = sys.executable
    from fol.paths import default_library

    with tempfile.TemporaryDirectory() as tmp:
        shipped = default_library()
        if args.synthetic or not shipped.exists():
            lib = synthetic_library(Path(tmp) / "library.h5", args.synthetic or 103, args.seed)
            what, lib_args = f"{args.synthetic or 103}-entry synthetic library", ["--library", str(lib)]
        else:
            lib, what, lib_args = shipped, "the shipped library", []
        rec = street_sample(lib, Path(tmp) / "sample.h5", args.seed)
        identify = [py, "-m", "fol", "identify", "--file", str(rec), *lib_args]
        runs = [("python -c pass (floor)", [py, "-c", "pass"]),
                ("import numpy, scipy, h5py, pybaselines", [py, "-c", "import numpy, scipy.signal, h5py, pybaselines"]),
                ("fol --help", [py, "-m", "fol", "--help"]),
                (f"fol identify --file ({what})", identify)]
        print(f"\n{'command (fresh process each run)':<52} {'best s':>7} {'median s':>9} {'- floor':>8}")
        floor = None
        results = {}
        for label, cmd in runs:
            best, median = wall(cmd, args.repeats)
            floor = floor if floor is not None else best
            results[label] = best
            print(f"{label:<52} {best:>7.2f} {median:>9.2f} {best - floor:>8.2f}")
        out = subprocess.run(identify, capture_output=True, text=True).stdout.splitlines()
        print("\nthe command printed:\n  " + "\n  ".join(out[:4]))
        direct, every = import_profile(identify)
        print("\nslowest imports of fol identify (cumulative s, including what each imports):")
        print("  imported by the program itself:")
        for seconds, name in direct:
            print(f"    {seconds:6.3f}  {name}")
        print("  at any depth:")
        for seconds, name in every:
            print(f"    {seconds:6.3f}  {name}")
    best = results[runs[-1][0]]
    print(f"\ntarget <= 1.0 s: {best:.2f} s {'met' if best <= 1.0 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
