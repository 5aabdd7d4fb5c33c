"""Accuracy evaluation: simulated recordings through the full identification path.

Every spectrum is made by the simulated analyzer's measurement model
(``drivers.simulator.model.simulate_batch``: instrument line shape and axis error,
detector response, fluorescence or baseline and water/CO2 bands, shot/read noise,
cosmic rays), written to a recording with its ground truth (``fol.io.recording``), read
back chunk by chunk and analysed by ``fol.identification.pipeline.Identifier`` (search, mixture
analysis, confidence, class alarm, decision), as ``fol replay`` does. Prints:

* pure substances at SNR 20 / 50 / 200: top-1 accuracy (most abundant component);
* fentanyl and 5 other analogues at 2 / 5 / 10 / 20 % in each of 5 cutting agents, with
  and without 30 % xylazine: fentanyl-class alarm sensitivity per fraction (the alarm
  must name ``fentanyl-analogue``: xylazine raises an alarm of its own);
* cutting agents, solvents and blanks alone: false-alarm rate;
* leave-one-out class alarm: each analogue removed from the library (and the class
  model retrained without it) and queried pure and at 20 % in a cutting agent, share
  that raise a ``fentanyl-analogue`` alarm; every other classified substance treated
  the same way, share that wrongly raise one;
* the expected calibration error of the reported component confidences.

Fixed seed (``--seed``, default 2026, the evaluation seed: nothing is tuned on it);
thresholds were chosen on the development seed 1234 (``--seed 1234``). A library that
carries a calibration (``fol library calibrate``, development seed) is evaluated with
it; one without (the ENFSI records imported here) with the defaults. ``--calibrate``
refits the default confidence calibration on the development seed and prints it.
The simulation and replay code is shared with ``fol library calibrate``: ``fol.qa.evaluation``.

``--suite``: the instrument-variation suite instead (``fol.qa.suite``): the real ENFSI
ATR-FTIR records as library *and* as the source of the queries, through physically
parameterised instrument effects (``fol.qa.effects``) one at a time and all together at
a moderate and a harsh setting, on the suite's evaluation seed (``--seed dev``: its
development seed, the one tuned on); then the real cross-instrument Raman comparisons
(Wasatch set 1 ↔ set 3, SLoPP half/half) beside the peers. ``--suite --calibrate`` refits
the FTIR default confidence on the suite's development seed and prints it.

Run: python benchmarks/accuracy.py [--library LIB.h5] [--technique ftir] [--enfsi DIR]
     python benchmarks/accuracy.py --suite [--seed dev|eval] [--only LABEL ...] [--no-raman | --raman-only]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fol.qa.evaluation import (ALARM_CLASS, CUTTING, DEV_SEED, EVAL_SEED, Bench, benign, calibration_labels,  # noqa: E402
                            calibration_set, fentanyl_alarm, mixtures, pick, specable)


#: benign samples of the suite are made this many times per row (each with its own effects)
BENIGN_REPEATS = 3

def pure_top1(b: Bench, snrs=(20, 50, 200)) -> dict:
    names = [nm for nm in b.section.names if specable(nm)]
    out = {}
    for snr in snrs:
        res = b.replay(b.record([(nm, {nm: 1.0}, {"snr": snr}) for nm in names]))
        ok = [bool(r["components"]) and r["components"][0]["name"] in e for r, e in res]
        out[snr] = (sum(ok), len(ok))
    return out


def leave_one_out(b: Bench, cuts_n: int = 5) -> dict:
    """Class-alarm rate on left-out analogues and false class alarms on left-out others."""
    from fol.identification.pipeline import Identifier

    sec = b.section
    cuts = pick(CUTTING, sec, "cutting-agent", cuts_n)
    counts = {"analogue": [0, 0, 0], "other": [0, 0, 0]}  # alarms, of which class_only, total
    wrong = []
    for i, (name, cls) in enumerate(zip(sec.names, sec.classes)):
        if cls == "unknown" or not specable(name):
            continue
        kind = "analogue" if cls == ALARM_CLASS else "other"
        keep = np.arange(len(sec)) != i
        reduced = replace(b.library, sha256=f"{b.library.sha256}-without-{i}",
                          sections={**b.library.sections, b.technique: sec.subset(keep)})
        ident = Identifier(reduced)
        cut = cuts[i % len(cuts)] if cuts[i % len(cuts)] != name else cuts[(i + 1) % len(cuts)]
        samples = [(name, {name: 1.0}, {}), (f"{name}:0.2,{cut}:0.8", {name: 0.2, cut: 0.8}, {})]
        for r, e in b.replay(b.record(samples), ident):
            alarm = fentanyl_alarm(r)
            c = counts[kind]
            c[0] += alarm
            c[1] += alarm and "class_only" in r["flags"]
            c[2] += 1
            if alarm and kind == "other":
                wrong.append(name)
    counts["wrong"] = sorted(set(wrong))
    return counts


def pct(k: int, n: int) -> str:
    return f"{100.0 * k / n:5.1f}% ({k}/{n})" if n else "n/a"


def evaluate(library, technique: str, seed: int, n: int, loo: bool, workdir: Path) -> list[str]:
    from fol.identification.confidence import ece

    b = Bench(library, technique, seed, workdir, n)
    lines = [f"## {library.name} / {technique}: {len(b.section)} entries, seed {seed}, {n} spectra per condition", ""]
    t0 = time.perf_counter()
    top1 = pure_top1(b)
    lines.append("| pure substances | top-1 |")
    lines.append("|---|---|")
    for snr, (k, m) in top1.items():
        lines.append(f"| SNR {snr} | {pct(k, m)} |")
    lines.append("")
    mix, mix_res = mixtures(b)
    lines.append("| analogue fraction | fentanyl-class alarm, no xylazine | with 30 % xylazine |")
    lines.append("|---|---|---|")
    for f in sorted({k[0] for k in mix}):
        cells = [pct(*mix[(f, x)]) if (f, x) in mix else "n/a" for x in (False, True)]
        lines.append(f"| {f:.0%} | {cells[0]} | {cells[1]} |")
    lines.append("")
    bad, total, which = benign(b)
    lines.append(f"| false alarms (cutting agents, solvents, blanks alone) | {pct(bad, total)} |")
    lines.append("|---|---|")
    if which:
        lines.append(f"| false alarms were | {'; '.join(f'{e} -> {a} {c}' for e, a, c in which[:6])} |")
    p, y = calibration_labels(mix_res, b.section)
    lines.append(f"| confidence ECE (reported components of the mixtures, n={len(p)}) | {ece(np.array(p), np.array(y)):.3f} |")
    if loo:
        c = b_loo = leave_one_out(b)
        a, o = c["analogue"], c["other"]
        lines.append(f"| leave-one-out class alarm on analogues (pure and 20 %) | {pct(a[0], a[2])}, "
                     f"of which by the class model alone {a[1]} |")
        lines.append(f"| leave-one-out false class alarm on other substances | {pct(o[0], o[2])} |")
        if b_loo["wrong"]:
            lines.append(f"| false class alarms were | {', '.join(b_loo['wrong'][:12])} |")
    lines.append("")
    lines.append(f"({b.count} recordings, {time.perf_counter() - t0:.0f} s)")
    lines.append("")
    return lines


def fit_and_report(x: np.ndarray, y: np.ndarray) -> None:
    """Fit on alternate rows, report the ECE and reliability on the others, print the calibration."""
    from fol.identification.confidence import ece, fit_calibration, reliability

    train, test = np.arange(len(y)) % 2 == 0, np.arange(len(y)) % 2 == 1
    cal = fit_calibration(x[train], y[train])
    p = cal.probability(x[test])
    print(cal.to_json())
    print(f"components: {len(y)} ({y.mean():.1%} truly present); held-out ECE {ece(p, y[test]):.3f}")
    for lo, mp, obs, cnt in reliability(p, y[test]):
        print(f"  bin {lo:.1f}: predicted {mp:.2f} observed {obs:.2f} (n={cnt})")


def run_suite(args) -> int:
    """``--suite``: the instrument-variation table on the real ENFSI records, then real cross-instrument Raman."""
    from fol.identification.pipeline import Identifier
    from fol.io.library import load_library
    from fol.libtools.tools import import_library
    from fol.qa import suite

    seed = {"dev": suite.DEV_SEED, "eval": suite.EVAL_SEED, None: suite.EVAL_SEED}.get(args.seed)
    seed = int(args.seed) if seed is None else seed
    real = Path(args.enfsi).parent
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        out = tmp / "enfsi-ir.h5"
        import_library(sorted(Path(args.enfsi).glob("*.json")), out, name="enfsi-ir")
        lib = load_library(out)
        sec = lib.section("ftir")
        refs = suite.load_references(Path(args.enfsi), sec)
        if args.calibrate:
            from fol.identification.confidence import ALL_FEATURES, ece, fit_calibration
            from fol.identification.mixture import MixtureModel

            x, y = suite.calibration_data(MixtureModel(sec), sec, refs, suite.DEV_SEED if seed == suite.EVAL_SEED
                                          else seed, rounds=2)
            cal = fit_calibration(x, y, ALL_FEATURES)
            print(cal.to_json())
            print(f"components: {len(y)} ({y.mean():.1%} truly present); in-sample ECE "
                  f"{ece(cal.probability(x), y):.3f}")
            return 0
        which = "evaluation" if seed == suite.EVAL_SEED else "development" if seed == suite.DEV_SEED else "other"
        print(f"# Instrument-variation suite: ENFSI ATR-FTIR ({len(sec)} real records), seed {seed} ({which})\n")
        kinds = suite.samples(sec, refs, BENIGN_REPEATS)
        n_pure = sum(k == "pure" for k, _, _ in kinds)
        n_mix = sum(k == "mixture" for k, _, _ in kinds) // len(suite.FRACTIONS)
        n_cuts = len([c for c in suite.CUTS if c in refs])
        n_benign = sum(k == "benign" for k, _, _ in kinds)
        print(f"n per row: {n_pure} pure, {n_mix} per analogue fraction ({n_mix // max(n_cuts, 1)} analogues x "
              f"{n_cuts} cutting agents), {n_benign} benign (cutting agents/adulterants alone and 50:50 pairs, "
              f"x{BENIGN_REPEATS}). Rates in %.")
        n_two = sum(k == "mixture" for k, _, _ in suite.two_agent_samples(sec, refs)) // len(suite.FRACTIONS)
        n_bases = len([1 for a, b in suite.TWO_AGENT_BASES if a in refs and b in refs])
        print(f"'two-agent base' rows: only analogues, {n_two} per fraction ({n_two // max(n_bases, 1)} analogues x "
              f"{n_bases} 50:50 bases: {', '.join(f'{a} + {b}' for a, b in suite.TWO_AGENT_BASES)}); "
              f"no pure or benign queries (n/a).\n")
        if not args.raman_only:
            print(suite.HEADER)
            print("|" + "---|" * 9)
            t0 = time.perf_counter()
            suite.run(Identifier(lib), sec, refs, seed, args.only, repeats=BENIGN_REPEATS,
                      progress=lambda label, row: print(suite.table_line(label, row), flush=True))
            print(f"\n({time.perf_counter() - t0:.0f} s)\n")
        if not args.no_raman:
            print("# Real cross-instrument Raman (library from one instrument, queries from another)\n")
            peers = ("raw Pearson", "AsLS + Pearson", "derivative")
            cols = ("fol top-1", "fol verdict", "fol abstained", "fol wrong", *peers)
            print("| data | " + " | ".join(cols) + " |")
            print("|---" * (len(cols) + 1) + "|")
            rows: dict[str, dict] = {}
            for label, lib_files, query_files, key, entry_name in suite.raman_datasets(real):
                c = suite.cross_instrument(lib_files, query_files, key, tmp, "raman-x", entry_name)
                for k, (right, n) in c.items():  # several library/query pairs of one kind share a row
                    acc = rows.setdefault(label, {}).setdefault(k, [0, 0])
                    acc[0] += right
                    acc[1] += n
            for label, c in rows.items():
                cells = [c.get(k, (0, 0)) for k in cols]
                print(f"| {label} | " + " | ".join(f"{100 * k / n:.1f} ({k}/{n})" if n else "n/a" for k, n in cells)
                      + " |", flush=True)
            set1 = sorted(real.glob("raman_wasatch_enlighten/set1*/*.csv"))
            if set1:
                print(f"\n# Synthetic Raman suite: Wasatch set 1 ({len(set1)} real 785 nm records) as library and "
                      f"query source, Raman effects of fol.qa.effects, seed {seed}\n")
                print(suite.RAMAN_HEADER)
                print("|---" * 8 + "|")
                t0 = time.perf_counter()
                suite.raman_suite(set1, tmp, seed, args.only,
                                  progress=lambda label, row: print(suite.raman_line(label, row), flush=True))
                print(f"\n({time.perf_counter() - t0:.0f} s)")
    return 0


def main(argv=None) -> int:
    from fol.io.library import load_library

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--library", action="append", help="library file (default: the shipped library); repeatable")
    ap.add_argument("--technique", choices=("raman", "ftir"), help="default: every technique of the library")
    ap.add_argument("--enfsi", default=str(ROOT.parent / "shared" / "data" / "real" / "enfsi_ir"),
                    help="folder of ENFSI IR records: also evaluated (imported as a library); '' to skip")
    ap.add_argument("--seed", default=None, help=f"seed (default {EVAL_SEED}; with --suite: 'eval' or 'dev')")
    ap.add_argument("--suite", action="store_true", help="the instrument-variation suite on real spectra")
    ap.add_argument("--only", nargs="*", help="--suite: run the conditions whose label contains one of these")
    ap.add_argument("--no-raman", action="store_true", help="--suite: skip the real cross-instrument Raman part")
    ap.add_argument("--raman-only", action="store_true", help="--suite: only the real cross-instrument Raman part")
    ap.add_argument("--n", type=int, default=2, help="spectra per condition (default 2)")
    ap.add_argument("--no-loo", action="store_true", help="skip the leave-one-out class-alarm runs (slow)")
    ap.add_argument("--calibrate", action="store_true", help="refit the confidence calibration (development seed)")
    args = ap.parse_args(argv)
    if args.suite:
        return run_suite(args)
    args.seed = EVAL_SEED if args.seed is None else int(args.seed)

    libraries = [load_library(p) for p in args.library or ()]
    if not args.library:
        try:
            libraries.append(load_library(None))
        except Exception as e:  # noqa: BLE001 - the shipped library may not be built yet
            print(f"(shipped library not available: {e})", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.enfsi and Path(args.enfsi).is_dir():
            from fol.libtools.tools import import_library

            out = tmp / "enfsi-ir.h5"
            import_library(sorted(Path(args.enfsi).glob("*.json")), out, name="enfsi-ir")
            libraries.append(load_library(out))
        if args.calibrate:
            sets = []
            for lib in libraries:
                for t in ([args.technique] if args.technique else lib.techniques):
                    print(f"# calibration data: {lib.name} / {t}, seed {DEV_SEED}")
                    sets.append(calibration_set(lib, t))
            fit_and_report(np.vstack([s[0] for s in sets]), np.concatenate([s[1] for s in sets]))
            return 0
        print("# Identification accuracy (benchmarks/accuracy.py)\n")
        for lib in libraries:
            for t in ([args.technique] if args.technique else lib.techniques):
                if t not in lib.sections:
                    continue
                print("\n".join(evaluate(lib, t, args.seed, args.n, not args.no_loo, tmp)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
