"""Benchmark: the ``high_fluorescence`` flag beyond the synthetic Raman suite, share above zero vs above the dark level.

The synthetic Raman suite's queries (``fol.qa.suite.raman_query``: the 80 real Wasatch set 1
records, the suite's fluorescence effect and the harsh noise) with fluorescence 10-20x and
20-50x the strongest band, development seed, on a 1,030-count detector offset (the CHARISMA
FMNT-M Horiba bias). Per range and fluorescence shape: how many are flagged by the share
above zero counts (the definition before, on the rows without the offset) and by the share
above the dark level (``quality.signal_levels``, with the offset); then what ``Identifier``
reports for each query (with the offset): right, inconclusive, no-match, wrong/spurious, and,
for the flagged ones, whether the tentative component is right.

Run: python benchmarks/fluorescence_flag.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OFFSET = 1030.0
RANGES = ((10.0, 20.0), (20.0, 50.0))


def share_above_zero(x, Y):
    """The share as it was: background / smoothed row at the strongest band (0..1)."""
    from fol.identification import quality as q

    smoothed = q.savgol_filter(Y, q.SMOOTH_WINDOW, q.SMOOTH_ORDER, axis=1, mode="mirror")
    bg = q.background(x, smoothed, q.BACKGROUND_WIDTH_CM["raman"])
    peak = (np.arange(Y.shape[0]), (smoothed - bg).argmax(axis=1))
    level, total = bg[peak], smoothed[peak]
    return np.clip(np.divide(level, total, out=np.zeros_like(total), where=total > 0), 0.0, 1.0)


def in_grid(x, y, grid):
    first, stop = np.searchsorted(x, grid[0]), np.searchsorted(x, grid[-1], side="right")
    return x[first:stop], y[None, first:stop]


def main() -> int:
    from fol.identification.pipeline import Identifier
    from fol.identification.quality import FLUORESCENCE_HIGH
    from fol.io.library import load_library
    from fol.libtools.tools import import_library
    from fol.qa import suite
    from fol.spectrum import Spectrum

    real = ROOT.parent / "shared" / "data" / "real"
    set1 = sorted(real.glob("raman_wasatch_enlighten/set1*/*.csv"))
    if not set1:
        print("Wasatch set 1 records not found", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        lib_path = tmp / "raman-suite.h5"
        import_library([str(suite._two_column(p, tmp)) for p in set1], lib_path, technique="raman", name="raman-suite")
        lib = load_library(lib_path)
        sec = lib.section("raman")
        refs = suite.raman_references(set1, tmp)
        by_file = {Path(p.split(":", 1)[1]).stem: nm for p, nm in zip(sec.provenance, sec.names)}
        ident = Identifier(lib)
        print(f"# high_fluorescence beyond the suite: {len(refs)} pure queries per range, seed {suite.DEV_SEED}, "
              f"+{OFFSET:.0f} counts offset\n")
        print("| fluorescence | shape | n | flagged, share above zero | flagged, above dark level |")
        print("|---|---|---|---|---|")
        outcomes = {}
        for lo, hi in RANGES:
            rng = np.random.default_rng([suite.DEV_SEED, 999, int(lo)])
            setting = dict(suite.RAMAN_SETTINGS["harsh"], fluor=(lo, hi))
            counts: dict[str, list[int]] = {}
            for f in refs:
                state = rng.bit_generator.state
                x, y = suite.raman_query(refs, {f: 1.0}, {"fluorescence", "noise"}, setting, rng)
                again = np.random.default_rng()
                again.bit_generator.state = state
                again.uniform(lo, hi)
                shape = str(again.choice(["exp", "hump", "slope"]))  # the draw raman_query made
                old = bool(share_above_zero(*in_grid(x, y, sec.grid))[0] > FLUORESCENCE_HIGH)
                r = ident.analyse_spectrum(Spectrum(x, y + OFFSET, "raman", "counts"), source="bench", entry="q")
                new = "high_fluorescence" in r["quality"]["flags"]
                c = counts.setdefault(shape, [0, 0, 0])
                c[0] += 1
                c[1] += old
                c[2] += new
                truth = by_file[f]
                names = [c["name"] for c in r["components"]]
                tentative = [c["name"] for c in r.get("tentative_components", [])]
                if new:
                    what = "flagged, tentative right" if tentative == [truth] else "flagged, tentative other"
                elif r["verdict"] == "identified" and names == [truth]:
                    what = "right"
                elif any(n != truth for n in names):
                    what = "wrong or spurious"
                else:
                    what = r["verdict"]
                key = (f"{lo:.0f}-{hi:.0f}x", "flagged before" if old else "not flagged before", what)
                outcomes[key] = outcomes.get(key, 0) + 1
            for shape, (n, old, new) in sorted(counts.items()):
                print(f"| {lo:.0f}-{hi:.0f}x | {shape} | {n} | {old} | {new} |")
        print("\n| fluorescence | before | outcome now | queries |")
        print("|---|---|---|---|")
        for (rng_label, before, what), n in sorted(outcomes.items()):
            print(f"| {rng_label} | {before} | {what} | {n} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
