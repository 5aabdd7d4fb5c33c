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
    q.add_argument("--search", metavar="TEXT", help="only entries whose name or catalogue synonym contains TEXT")
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
    q.add_argument("--name", action="append", metavar="NAME", help="only this entry (any spelling or synonym; repeatable)")
    q.set_defaults(func=run_export)

    q = lsub.add_parser("import", help="build a library from measured spectra files",
                        description="Build a library from measured spectra: JCAMP-DX, CSV/TXT (decimal commas, ';'), "
                                    "ENFSI JSON, the ENFSI DWG library zip or folder, Wasatch ENLIGHTEN, B&W Tek, "
                                    "SPC, OPUS, SPA, WDF (docs/formats.md). Names resolve through the catalogue; "
                                    "classes come from the name map, the catalogue, name rules or the source, and the "
                                    "class model scores what is left unknown: the table printed says how each was "
                                    "decided. A batch with refused files writes nothing (exit 1) unless --skip-bad.")
    q.add_argument("files", nargs="+", metavar="FILE", help="files, folders or zip archives")
    q.add_argument("--out", required=True, metavar="LIB.h5")
    q.add_argument("--technique", choices=("raman", "ftir"), help="technique for files that do not say")
    q.add_argument("--name-map", metavar="CSV", help="CSV with name,class,alarm (or name_in_file,catalogue_name) columns")
    q.add_argument("--catalogue", action="append", default=[], metavar="CSV",
                   help="lab catalogue (name,class,alarm[,synonyms,...]) extending the shipped one; repeatable")
    q.add_argument("--name", help="library name (default: the output file name)")
    q.add_argument("--skip-bad", action="store_true", help="write the library from the readable files even if some are refused")
    q.add_argument("--dedupe", action="store_true", help="drop repeated measurements, report near-duplicates")
    q.add_argument("--jobs", type=int, default=None, metavar="N", help="processes for reading large zips/folders")
    q.add_argument("--no-progress", action="store_true", help="no progress bar (it only shows on a terminal anyway)")
    q.add_argument("--all-decisions", action="store_true", help="print how every entry's class was decided")
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
                                    "<= 1 %, best fentanyl-class sensitivity at 5 %); store them in the library, "
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
    for t, s in lib.sections.items():
        info["sections"][t]["substances"] = per_substance_counts(s)
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
        subs = s["substances"]
        several = {k: v for k, v in subs.items() if v > 1}
        print(f"{t:<9} {s['entries']} entries of {len(subs)} substances, grid {lo:g}-{hi:g} cm-1 ({n} points); "
              f"provenance: {prov}")
        steps = [" ".join([st["step"], *(f"{k}={v}" for k, v in st.items() if k != "step")])
                 for st in s.get("recipe", [])]
        print(f"          recipe: {' | '.join(steps)}")
        if several:
            top = sorted(several.items(), key=lambda kv: (-kv[1], kv[0]))
            print("          several measurements: " + ", ".join(f"{k} {v}" for k, v in top[:12])
                  + (f", ... ({len(top)} substances)" if len(top) > 12 else ""))
    if lib.sticks:
        print(f"sticks    {len(lib.sticks)} computed stick spectra (re-render with: fol library render)")
    return 0


def per_substance_counts(section) -> dict[str, int]:
    out: dict[str, int] = {}
    for n in section.names:
        out[n] = out.get(n, 0) + 1
    return out


def run_list(args) -> int:
    from fol.catalogue import load_catalogue, name_key

    lib = _load(args)
    needle = name_key(args.search) if args.search else None
    cat = load_catalogue() if needle else None
    shown = 0
    for t, s in lib.sections.items():
        if args.technique and t != args.technique:
            continue
        for j, (name, cls, alarm, prov) in enumerate(zip(s.names, s.classes, s.alarm, s.provenance)):
            meta = s.entry_meta(j)
            if needle:
                spellings = [name, meta.get("name_in_file", "")]
                if cat is not None and cat.resolve(name):
                    spellings += list(cat[name].synonyms)
                if not any(needle in name_key(x) for x in spellings if x):
                    continue
            extra = ""
            if meta.get("suspected_class"):
                extra = f"\tsuspected {meta['suspected_class']} (p={meta['suspected_probability']:.2f})"
            if meta.get("enfsi_id") is not None:
                extra += f"\tENFSI #{meta['enfsi_id']}{'v' if meta.get('validated') else 'n'}"
            print(f"{t}\t{name}\t{cls}\t{'ALARM' if alarm else '-'}\t{prov}{extra}")
            shown += 1
    if needle and not shown:
        print(f"no entry matches {args.search!r}", file=sys.stderr)
        return 1
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
        n += len(export_section(s, args.out, args.format, "processed" if args.processed else "raw", names=args.name))
    if args.name and not n:
        print(f"fol: error: no entry named {', '.join(args.name)}", file=sys.stderr)
        return 1
    print(f"wrote {n} files to {args.out}")
    return 0


def _progress_bar(enabled: bool):
    if not enabled or not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        width = 30
        k = int(width * done / max(total, 1))
        sys.stderr.write(f"\rimporting [{'#' * k}{'.' * (width - k)}] {done}/{total}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()
    return show


def format_decisions(rows: list[dict]) -> str:
    """The table of entries and how each class was decided."""
    lines = [f"{'technique':<9}  {'name':<34}  {'class':<18}  {'alarm':<5}  how the class was decided"]
    for d in rows:
        how = d["class_source"]
        if d.get("class_model_probability") is not None:
            how += f"; class model P(fentanyl-analogue) = {d['class_model_probability']:.2f}"
            if d.get("suspected_class"):
                how += f" -> SUSPECTED {d['suspected_class']}"
        lines.append(f"{d['technique']:<9}  {d['name'][:34]:<34}  {d['class'][:18]:<18}  "
                     f"{'yes' if d['alarm'] else 'no':<5}  {how}")
    return "\n".join(lines)


def run_import(args) -> int:
    from fol.cli.display import warn
    from fol.libtools.tools import import_library

    rep = import_library(args.files, args.out, technique=args.technique, name_map=args.name_map, name=args.name,
                         catalogues=args.catalogue, skip_bad=args.skip_bad, dedupe=args.dedupe, jobs=args.jobs,
                         progress=_progress_bar(not args.no_progress))
    for w in rep.warnings:
        warn(w)
    for d in rep.duplicates:
        warn(d)
    for s in rep.refused:
        warn(f"refused: {s}")
    if not rep.written:
        print(f"fol: error: {len(rep.refused)} file(s) refused, nothing written to {args.out}; fix or remove them, "
              "or pass --skip-bad to import the rest", file=sys.stderr)
        return 1
    rows = rep.decisions if args.all_decisions else [d for d in rep.decisions if d["class"] == "unknown"
                                                     or not d["class_source"].startswith("catalogue")]
    if rows:
        print("How each entry's class was decided:" if args.all_decisions else
               "Entries not classified by the catalogue (class decided otherwise, or left unknown):")
        print(format_decisions(rows))
    unknown = rep.unknown()
    counts = ", ".join(f"{n} {t}" for t, n in rep.counts.items())
    print(f"wrote {rep.path}: {counts} spectra (measured, imported) from {rep.files} path(s); "
          f"{len(unknown)} left unknown"
          + (f"; {len(rep.refused)} refused (--skip-bad)" if rep.refused else "") + f"; sha256 {rep.sha256}")
    return 0


def run_build(args) -> int:
    from fol.cli.display import warn
    from fol.libtools.tools import build_computed_library

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
    from fol.paths import default_library
    from fol.cli.display import progress
    from fol.io.library import store_calibrations
    from fol.qa.evaluation import EVAL_SEED, calibrate_section

    if args.seed == EVAL_SEED:
        raise UsageError(f"--seed {EVAL_SEED} is the evaluation seed; calibrate on a development seed (1234)")
    src = Path(args.library) if args.library else default_library()
    lib = _load(argparse.Namespace(library=str(src)))
    techniques = [args.technique] if args.technique else list(lib.techniques)
    records = {}
    with tempfile.TemporaryDirectory() as tmp:
        for t in techniques:
            bar = progress(f"calibrating {t}", unit="stages")
            rec = calibrate_section(lib, t, Path(tmp), seed=args.seed, n=args.n, n_spectra=args.spectra,
                                    max_false_alarm=args.max_false_alarm, progress=bar)
            bar.close()
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
