"""``fol replay``: analyse every spectrum of one or more recordings, in order."""

from __future__ import annotations

import argparse
import json
import sys

HELP = """\
Replay recordings (fol-recording HDF5, single and stacked entries) through the pipeline.
Writes one result object per spectrum (JSON Lines, in input order) and prints a summary:
counts per verdict and alarms; where recordings carry ground truth (sample/expected),
alarm sensitivity/specificity and top-1 accuracy. A corrupt entry is reported and skipped.
"""


def register(sub) -> None:
    p = sub.add_parser("replay", help="replay recordings through the pipeline (QA)", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", metavar="REC.h5")
    p.add_argument("--library", metavar="LIB.h5", help="reference library (default: the shipped library)")
    p.add_argument("--allow-unverified", action="store_true")
    p.add_argument("--json", metavar="OUT.jsonl", help="write results as JSON Lines ('-' for stdout)")
    p.add_argument("--chunk", type=int, default=2048, help="spectra analysed per batch (default 2048)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..library import load_library
    from ..pipeline import Identifier
    from ..replay import replay

    identifier = Identifier(load_library(args.library, allow_unverified=args.allow_unverified))
    out = None
    if args.json == "-":
        out = sys.stdout
    elif args.json:
        out = open(args.json, "w", encoding="utf-8")
    write = (lambda r: out.write(json.dumps(r) + "\n")) if out else (lambda r: None)
    try:
        summary = replay(args.paths, identifier, write, chunk_rows=args.chunk)
    finally:
        if out and out is not sys.stdout:
            out.close()
    print("\n".join(summary.lines()), file=sys.stderr if args.json == "-" else sys.stdout)
    return 0
