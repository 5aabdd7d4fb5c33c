"""``fol library``: build, import, inspect, verify, re-render, export and calibrate reference libraries."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub) -> None:
    p = sub.add_parser("library", help="build, import, inspect, verify, re-render and export libraries",
                       description="Reference library tools. Without LIB the shipped library is used.")
    lsub = p.add_subparsers(dest="library_command", metavar="ACTION", required=True)

    def lib_arg(q):
        q.add_argument("library", nargs="?", metavar="LIB", help="library file (default: the shipped library)")
        q.add_argument("--allow-unverified", action="store_true", help="open a library whose content hash does not match")

    q = lsub.add_parser("info", help="name, hash, provenance and recipe per technique")
    lib_arg(q)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=run_info)

    q = lsub.add_parser("list", help="one line per entry: technique, name, class, alarm, provenance")
    lib_arg(q)
    q.add_argument("--technique", choices=("raman", "ftir"))
    q.set_defaults(func=run_list)

    q = lsub.add_parser("verify", help="check the content hash (exit 1 if it does not match)")
    q.add_argument("library", nargs="?", metavar="LIB")
    q.set_defaults(func=run_verify)

    q = lsub.add_parser("export", help="write every entry as CSV or JCAMP-DX")
    lib_arg(q)
    q.add_argument("--format", choices=("csv", "jcamp"), default="csv")
    q.add_argument("--out", required=True, metavar="DIR", help="output folder")
    q.add_argument("--technique", choices=("raman", "ftir"))
    q.add_argument("--processed", action="store_true", help="export processed instead of raw spectra")
    q.set_defaults(func=run_export)

    q = lsub.add_parser("import", help="build a library from measured spectra files",
                        description="Build a library from JCAMP-DX, two-column CSV/TXT and spectral-synth JSON "
                                    "(ENFSI) files. Names are resolved to catalogue names via synonyms; unknown "
                                    "names are kept with class 'unknown' and a warning.")
    q.add_argument("files", nargs="+", metavar="FILE")
    q.add_argument("--out", required=True, metavar="LIB.h5")
    q.add_argument("--technique", choices=("raman", "ftir"), help="technique for files that do not say")
    q.add_argument("--name-map", metavar="CSV", help="CSV mapping names in files to catalogue names")
    q.add_argument("--name", help="library name (default: the output file name)")
    q.set_defaults(func=run_import)

    q = lsub.add_parser("build", help="compute the reference library from structure (needs the 'build' extra)",
                        description="Compute Raman and IR spectra for catalogue substances with GFN2-xTB "
                                    "(harmonic, finite differences) and write a library. Results are cached "
                                    "per substance, so an interrupted build resumes. Needs: pip install 'fol[build]'.")
    q.add_argument("--catalogue", required=True, metavar="CSV")
    q.add_argument("--out", required=True, metavar="LIB.h5")
    q.add_argument("--cache", default="spectra_library/.cache", metavar="DIR", help="per-substance cache")
    q.add_argument("--jobs", type=int, default=1)
    q.add_argument("--only", metavar="NAMES", help="comma-separated substance names")
    q.add_argument("--name", default="fol-reference")
    q.set_defaults(func=run_build)

    q = lsub.add_parser("render", help="re-render a computed library for another instrument (no chemistry)")
    lib_arg(q)
    q.add_argument("--out", required=True, metavar="LIB.h5")
    q.add_argument("--resolution", type=float, metavar="CM1", help="line width (FWHM) for both techniques")
    q.add_argument("--raman-resolution", type=float, metavar="CM1")
    q.add_argument("--ftir-resolution", type=float, metavar="CM1")
    q.add_argument("--excitation", type=float, default=785.0, metavar="NM", help="Raman excitation (default 785)")
    q.set_defaults(func=run_render)

    q = lsub.add_parser("calibrate", help="fit this library's confidence calibration and threshold (simulated data)",
                        description="Simulate labelled spectra from the library itself (development seed), fit the "
                                    "per-component confidence calibration and choose min_confidence (false alarms "
                                    "<= 1 %%, best fentanyl-class sensitivity at 5 %%); store them in the library, "
                                    "per technique, covered by its content hash.")
    q.add_argument("library", nargs="?", metavar="LIB", help="library file (default: the shipped library)")
    q.add_argument("--technique", choices=("raman", "ftir"), help="default: every technique of the library")
    q.add_argument("--seed", type=int, default=1234, help="development seed (default 1234; 2026 is refused)")
    q.add_argument("--n", type=int, default=3, help="spectra per condition for the threshold (default 3)")
    q.add_argument("--max-false-alarm", type=float, default=0.01, metavar="RATE",
                   help="false-alarm limit on the development data for choosing min_confidence (default 0.01)")
    q.add_argument("--spectra", type=int, default=600, help="simulated samples for the confidence fit (default 600)")
    q.add_argument("--out", metavar="LIB2.h5", help="write a calibrated copy here (default: in place)")
    q.set_defaults(func=run_calibrate)


def _load(args):
    from fol.io.library import load_library

    return load_library(args.library, allow_unverified=getattr(args, "allow_unverified", False))


def run_info(args) -> int:
    lib = _load(args)
    info = lib.info()
    if args.json:
        json.dump(info, sys.stdout, indent=2)
        print()
        return 0
    from fol.libtools.tools import COMPUTED_LABEL

    print(f"library   {info['name']}  ({info['path']})")
    print(f"sha256    {info['sha256']}{'' if info['verified'] else '  (UNVERIFIED: content does not match)'}")
    print(f"created   {info['created']}")
    if info["description"]:
        print(f"about     {info['description']}")
    for t, s in info["sections"].items():
        prov = ", ".join(f"{n} {COMPUTED_LABEL if k == 'computed' else k}" for k, n in s["provenance"].items())
        lo, hi, n = s["grid"]
        print(f"{t:<9} {s['entries']} entries, grid {lo:g}-{hi:g} cm-1 ({n} points); provenance: {prov}")
    if lib.sticks:
        print(f"sticks    {len(lib.sticks)} computed stick spectra (re-render with: fol library render)")
    return 0


def run_list(args) -> int:
    lib = _load(args)
    for t, s in lib.sections.items():
        if args.technique and t != args.technique:
            continue
        for name, cls, alarm, prov in zip(s.names, s.classes, s.alarm, s.provenance):
            print(f"{t}\t{name}\t{cls}\t{'ALARM' if alarm else '-'}\t{prov}")
    return 0


def run_verify(args) -> int:
    from fol.io.library import load_library

    lib = load_library(args.library)  # raises with a clear message on mismatch
    print(f"{lib.path}: OK, content SHA-256 {lib.sha256}")
    return 0


def run_export(args) -> int:
    from fol.libtools.tools import export_section

    lib = _load(args)
    n = 0
    for t, s in lib.sections.items():
        if args.technique and t != args.technique:
            continue
        n += len(export_section(s, args.out, args.format, "processed" if args.processed else "raw"))
    print(f"wrote {n} files to {args.out}")
    return 0


def run_import(args) -> int:
    from fol.libtools.tools import import_library, warn

    rep = import_library(args.files, args.out, technique=args.technique, name_map=args.name_map, name=args.name)
    for w in rep.warnings:
        warn(w)
    for s in rep.skipped:
        warn(f"skipped: {s}")
    counts = ", ".join(f"{n} {t}" for t, n in rep.counts.items())
    print(f"wrote {rep.path}: {counts} spectra (measured, imported); sha256 {rep.sha256}")
    return 0


def run_build(args) -> int:
    from fol.libtools.tools import build_computed_library, warn

    only = [s.strip() for s in args.only.split(",")] if args.only else None
    sha, failed = build_computed_library(args.catalogue, args.out, cache_dir=args.cache, jobs=args.jobs,
                                         only=only, name=args.name)
    for n in failed:
        warn(f"{n}: could not be computed; left out of the library")
    print(f"wrote {args.out}; sha256 {sha}")
    return 1 if failed else 0


def run_render(args) -> int:
    from fol.libtools.tools import render_library

    lib = _load(args)
    sha = render_library(lib, args.out, raman_fwhm=args.raman_resolution or args.resolution,
                         ftir_fwhm=args.ftir_resolution or args.resolution, excitation_nm=args.excitation)
    print(f"wrote {args.out}; sha256 {sha}")
    return 0


def run_calibrate(args) -> int:
    import shutil
    import tempfile
    from pathlib import Path

    from fol.errors import UsageError
    from fol.qa.evaluation import EVAL_SEED, calibrate_section, store_calibrations
    from fol.paths import default_library

    if args.seed == EVAL_SEED:
        raise UsageError(f"--seed {EVAL_SEED} is the evaluation seed; calibrate on a development seed (1234)")
    src = Path(args.library) if args.library else default_library()
    lib = _load(argparse.Namespace(library=str(src)))
    techniques = [args.technique] if args.technique else list(lib.techniques)
    records = {}
    with tempfile.TemporaryDirectory() as tmp:
        for t in techniques:
            rec = calibrate_section(lib, t, Path(tmp), seed=args.seed, n=args.n, n_spectra=args.spectra,
                                    max_false_alarm=args.max_false_alarm)
            dev = rec["development"]
            print(f"{t}: min_confidence {rec['policy']['min_confidence']:.2f}; development seed {args.seed}: "
                  f"false alarms {dev['false_alarm'][0]}/{dev['false_alarm'][1]}, fentanyl-class alarm at 5 % "
                  f"{dev['sensitivity_5pct'][0]}/{dev['sensitivity_5pct'][1]}, at 10 % "
                  f"{dev['sensitivity_10pct'][0]}/{dev['sensitivity_10pct'][1]}, ECE {dev['ece_reported']:.3f}")
            records[t] = rec
    out = Path(args.out) if args.out else src
    if out != src:
        shutil.copyfile(src, out)
    sha = store_calibrations(out, records)
    print(f"wrote {out}; sha256 {sha}")
    return 0
