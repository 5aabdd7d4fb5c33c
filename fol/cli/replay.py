"""``fol replay``: analyse every spectrum of one or more recordings, in order, at scale."""

from __future__ import annotations

import argparse
import sys

HELP = """\
Replay recordings (fol-recording HDF5, single and stacked entries) through the pipeline.

Writes one result object per spectrum (JSON Lines, in input order) and prints a summary:
counts per verdict and alarms; where recordings carry ground truth (sample/expected),
alarm sensitivity and specificity with 95% Wilson intervals, top-1 accuracy and
confusion matrices per substance and per class; where they carry earlier results
(results/result), a regression diff listing every spectrum whose verdict, alarm or top
component changed, with the library hashes involved.

A corrupt file or entry is reported on stderr and skipped (its spectra get error
results); the run goes on. The output is identical for any --workers and for --dask.
"""

EPILOG = """\
examples:
  fol replay day1.h5 day2.h5 --json out.jsonl --report qa.html
  fol replay big.h5 --json out.jsonl --workers 2          # processes on this machine
  fol replay big.h5 --json out.jsonl --dask local          # a local Dask cluster
  fol replay big.h5 --json out.jsonl --dask tcp://sched:8786   # paths must be readable on the workers
  fol replay big.h5 --json out.jsonl --resume              # continue an interrupted run
"""


def register(sub) -> None:
    p = sub.add_parser("replay", help="replay recordings through the pipeline (QA: metrics, regression, report)",
                       description=HELP, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", metavar="REC.h5")
    p.add_argument("--library", metavar="LIB.h5", help="reference library (default: the shipped library, or $FOL_LIBRARY)")
    p.add_argument("--allow-unverified", action="store_true", help="use a library whose content hash does not match")
    p.add_argument("--json", metavar="OUT.jsonl", help="write results as JSON Lines ('-' for stdout)")
    p.add_argument("--report", metavar="OUT.html", help="write a self-contained HTML report (needs matplotlib)")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="worker processes (default 1: in-process)")
    p.add_argument("--dask", metavar="SCHEDULER", help="run on a Dask cluster: scheduler address, or 'local'")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from the --json file")
    p.add_argument("--chunk", type=int, default=None, metavar="N",
                   help="spectra per task (default 256 with mixture analysis, as by default; 2048 without); "
                        "results do not depend on it")
    p.add_argument("--similarity", choices=("pearson", "derivative"), default="pearson",
                   help="similarity of the search (default pearson)")
    p.add_argument("--top", type=int, default=10, help="number of library hits per result (default 10)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (it only shows on a terminal anyway)")
    p.set_defaults(func=run)


def _check(args) -> None:
    from fol.errors import UsageError

    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    if args.chunk is not None and args.chunk < 1:
        raise UsageError("--chunk must be at least 1")
    if args.resume and (not args.json or args.json == "-"):
        raise UsageError("--resume needs --json OUT.jsonl (a file to continue)")
    if args.report:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise UsageError("--report needs matplotlib: pip install 'fol[report]'") from None
    if args.dask:
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise UsageError("--dask needs dask.distributed: pip install 'fol[dask]'") from None


def run(args) -> int:
    from fol.io.library import load_library
    from fol.paths import default_library
    from fol.identification.pipeline import Identifier
    from fol.qa.replay import LibrarySpec, prepare_resume, replay

    _check(args)
    library = load_library(args.library, allow_unverified=args.allow_unverified)
    spec = LibrarySpec(str(args.library or default_library()), library.sha256, args.allow_unverified,
                       args.similarity, args.top)
    identifier = Identifier(library, mode=args.similarity, k=args.top)
    resume_count = prepare_resume(args.json) if args.resume else 0
    out = resume_in = None
    if args.json == "-":
        out = sys.stdout
    elif args.json:
        out = open(args.json, "a" if args.resume else "w", encoding="utf-8")
        if resume_count:
            resume_in = open(args.json, encoding="utf-8")
    try:
        summary = replay(args.paths, identifier, spec, out.write if out else (lambda s: None),
                         workers=args.workers, dask=args.dask, chunk_rows=args.chunk, resume_lines=resume_in,
                         resume_count=resume_count, progress=not args.no_progress,
                         flush=out.flush if out else None)
    finally:
        for f in (out, resume_in):
            if f is not None and f is not sys.stdout:
                f.close()
    text = sys.stderr if args.json == "-" else sys.stdout
    print("\n".join(summary.lines()), file=text)
    if args.report:
        from fol.qa.replay import Progress
        from fol.qa.report import plot_count, write_report

        bar = None if args.no_progress else Progress(plot_count(summary), unit="plots")
        write_report(args.report, summary, identifier, inputs=[str(p) for p in args.paths],
                     progress=bar.update if bar else None)
        if bar:
            bar.close()
        print(f"report: {args.report}", file=text)
    summary.regression.close()
    return 0
