"""``fol replay``: analyse every spectrum of one or more recordings, in order, at scale."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HELP = """\
Replay recordings (fol-recording HDF5, single and stacked entries) through the pipeline.

Writes one result object per spectrum (JSON Lines, in input order) and prints a summary:
counts per verdict and alarms; where recordings carry ground truth (sample/expected),
alarm sensitivity and specificity with 95% Wilson intervals, top-1 accuracy and
confusion matrices per substance and per class; where they carry earlier results
(results/result), a regression diff listing every spectrum whose verdict, alarm or top
component changed, with the library hashes involved.

Every spectrum whose components differ from the ground truth (missed, extra, wrong
member of the right class), every missed alarm and false alarm is named (the first 10
of each; --show-all for every one), with a per-file breakdown.

Input files that cannot be read (missing, a directory, not a recording) stop the run
before any work, exit code 1, unless --keep-going: then they are listed as unreadable
files (they have no spectra) and the others are replayed. A corrupt entry or row is
reported on stderr and skipped (its spectra get error results; only the rows that
cannot be read); the run goes on, and ends with exit code 1 unless --keep-going.
The output is identical for any --workers and for --dask.
"""

EPILOG = """\
examples:
  fol replay day1.h5 day2.h5 --json out.jsonl --report qa.html
  fol replay big.h5 --json out.jsonl --workers 2          # processes on this machine
  fol replay big.h5 --json out.jsonl --dask local          # a local Dask cluster
  fol replay big.h5 --json out.jsonl --dask tcp://sched:8786   # paths must be readable on the workers
  fol replay big.h5 --json out.jsonl --resume              # continue an interrupted run

exit codes: 0 every input read and analysed (or --keep-going); 1 an input file, entry or
row could not be read or analysed, or the library cannot be loaded; 2 usage
"""


def register(sub) -> None:
    p = sub.add_parser("replay", help="replay recordings through the pipeline (QA: metrics, regression, report)",
                       description=HELP, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    from fol.cli.options import add_library_options, add_similarity_option, add_top_option, positive_int

    p.add_argument("paths", nargs="+", metavar="REC.h5")
    add_library_options(p)
    p.add_argument("--json", metavar="OUT.jsonl", help="write results as JSON Lines ('-' for stdout)")
    p.add_argument("--report", metavar="OUT.html", help="write a self-contained HTML report (needs matplotlib)")
    p.add_argument("--workers", type=positive_int, default=1, metavar="N",
                   help="worker processes, or workers of --dask local (default 1: in-process)")
    p.add_argument("--dask", metavar="SCHEDULER", help="run on a Dask cluster: scheduler address, or 'local'")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from the --json file")
    p.add_argument("--chunk", type=positive_int, default=None, metavar="N",
                   help="spectra per task (default 256 with mixture analysis, as by default; 2048 without); "
                        "results do not depend on it")
    add_similarity_option(p)
    add_top_option(p)
    p.add_argument("--technique", choices=("raman", "ftir"),
                   help="for spectrum files (CSV, TXT) that do not say which technique they hold; "
                        "recordings and files that say are read as they are")
    p.add_argument("--keep-going", action="store_true",
                   help="replay the readable inputs when some cannot be read, and exit 0 (they are listed)")
    p.add_argument("--show-all", action="store_true",
                   help="name every missed, false-alarm, disagreeing and changed spectrum (default: the first 10)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (it only shows on a terminal anyway)")
    p.set_defaults(func=run)


def _check(args) -> None:
    """Everything that can be refused is refused here, before the library is loaded or any work."""
    from fol.cli.options import check_output_path, refuse_inapplicable
    from fol.errors import UsageError

    refuse_inapplicable(args, {"workers": (lambda a: a.dask in (None, "local"), "in-process pools or --dask local")},
                        {"workers": 1})
    check_output_path(args.json, "--json")
    check_output_path(args.report, "--report")
    if args.json and args.report and args.json != "-" and Path(args.json).resolve() == Path(args.report).resolve():
        raise UsageError(f"--json and --report are the same file: {args.json}")
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

    _check(args)
    with tempfile.TemporaryDirectory(prefix="fol-replay-") as tmp:
        inputs = list(args.paths)
        args.paths, refused, names = _as_recordings(args.paths, Path(tmp), args.technique)
        return _run(args, refused, names, inputs)


def _as_recordings(paths, workdir: Path, technique: str | None = None) -> tuple[list, list, dict]:
    """Recordings as they are; a spectrum file of any other format (CSV, JCAMP-DX, vendor) converted
    to a one-file recording in ``workdir`` named after it. Returns ``(paths, refused, names)``: a file
    that cannot be converted is refused as ``(path, message)`` (replay lists it with the unreadable
    recordings). Anything named like a recording (``.h5``), a directory or a missing path is left to
    replay, which reports it. ``names`` maps each converted recording to the file it came from: results,
    messages and the report name the file the user gave, not its temporary copy."""
    from fol.cli.display import one_line
    from fol.io.formats import is_recording, recordings_for
    from fol.errors import FolError

    out, refused, names = [], [], {}
    for i, p in enumerate(paths):
        path = Path(p)
        if not path.is_file() or path.suffix.lower() in (".h5", ".hdf5", ".hdf") or is_recording(path):
            out.append(p)
            continue
        sub = workdir / f"{i:05d}"
        sub.mkdir()
        try:
            converted = recordings_for([p], sub, technique)
        except FolError as e:
            refused.append((str(p), one_line(e)))
            continue
        target = sub / f"{path.name}.h5"
        Path(converted[0]).rename(target)
        out.append(str(target))
        names[str(target)] = str(p)
    return out, refused, names


def _run(args, refused=(), names=None, inputs=None) -> int:
    from fol.io.library import load_library
    from fol.paths import default_library
    from fol.identification.pipeline import Identifier
    from fol.qa.replay import SHOW, LibrarySpec, prepare_resume, replay

    library = load_library(args.library, allow_unverified=args.allow_unverified)
    spec = LibrarySpec(str(args.library or default_library()), library.sha256, args.allow_unverified,
                       args.similarity, args.top)
    identifier = Identifier(library, similarity=args.similarity, top=args.top)
    resume_count = prepare_resume(args.json) if args.resume else 0
    out = resume_in = None
    if args.json == "-":
        out = sys.stdout
    elif args.json:  # opened at the first line: a run refused before any work leaves an earlier file alone
        out = _LazyFile(args.json, "a" if args.resume else "w")
        if resume_count:
            resume_in = open(args.json, encoding="utf-8")
    ok = False
    from fol.cli.display import progress as progress_line

    bar = None if args.no_progress else progress_line("replay", unit="spectra")
    try:
        summary = replay(args.paths, identifier, spec, out.write if out else (lambda s: None),
                         workers=args.workers, dask=args.dask, chunk_rows=args.chunk, resume_lines=resume_in,
                         resume_count=resume_count, progress=bar,
                         flush=out.flush if out else None, keep_going=args.keep_going,
                         message=lambda text: print(f"fol: error: {text}", file=sys.stderr), refused=refused,
                         names=names)
        ok = True
    finally:
        if bar:
            bar.close()
        if isinstance(out, _LazyFile):
            out.close(create=ok)
        if resume_in is not None:
            resume_in.close()
    try:
        text = sys.stderr if args.json == "-" else sys.stdout
        print("\n".join(summary.lines(None if args.show_all else SHOW)), file=text)
        if args.report:
            from fol.cli.display import progress
            from fol.qa.report import plot_count, write_report

            bar = None if args.no_progress else progress("report plots")
            total = plot_count(summary)
            done = [0]

            def step(n: int) -> None:
                done[0] += n
                if bar:
                    bar(done[0], total)

            write_report(args.report, summary, identifier, inputs=[str(p) for p in (inputs or args.paths)],
                         progress=step, located={orig: conv for conv, orig in (names or {}).items()})
            if bar:
                bar.close()
            print(f"report: {args.report}", file=text)
        failed = summary.errors + len(summary.unreadable)
        if failed and not args.keep_going:
            print(f"fol: error: {summary.errors} spectra and {len(summary.unreadable)} files could not be read or "
                  "analysed (listed above; --keep-going exits 0)", file=sys.stderr)
            return 1
        return 0
    finally:
        summary.close()


class _LazyFile:
    """A text file opened at the first write (``close(create=True)`` makes it if nothing was written)."""

    def __init__(self, path: str, mode: str):
        self.path, self.mode, self.f = path, mode, None

    def write(self, text: str) -> None:
        if self.f is None:
            self.f = open(self.path, self.mode, encoding="utf-8")
        self.f.write(text)

    def flush(self) -> None:
        if self.f is not None:
            self.f.flush()

    def close(self, create: bool = True) -> None:
        if self.f is None and create:
            self.f = open(self.path, self.mode, encoding="utf-8")
        if self.f is not None:
            self.f.close()
