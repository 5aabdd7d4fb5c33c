"""The ``fol`` command line: a thin layer over the library modules.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds
its parser and sets ``func`` to a callable ``(args) -> int``. Subcommand modules import
heavy dependencies inside ``func``, not at module level, so ``fol --help`` and
``fol identify`` stay fast.

Exit codes: 0 success, 1 error (bad file, device, library ...), 2 usage error.
Errors derived from ``fol.errors.FolError`` and OS errors are printed as one line on
stderr (``fol: error: ...``), never as a traceback; ``FOL_DEBUG=1`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from fol import __version__

SUBCOMMANDS = ("identify", "replay", "simulate", "library", "devices", "station", "cases")

EPILOG = """\
exit codes: 0 ok, 1 error (file, device, library), 2 usage
environment: FOL_LIBRARY (default library), FOL_CATALOGUE, FOL_DEBUG=1 (tracebacks)
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fol",
        description="Identify unknown substances from Raman/FTIR spectra against a reference library.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"fol {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f".{name}", __name__).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from fol.errors import FolError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except FolError as e:
        if os.environ.get("FOL_DEBUG"):
            raise
        print(f"fol: error: {e}", file=sys.stderr)
        return e.exit_code
    except (OSError, ValueError, KeyError) as e:  # last line of defence: a clear line, not a traceback
        if os.environ.get("FOL_DEBUG"):
            raise
        msg = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        where = getattr(e, "filename", None)
        print(f"fol: error: {where + ': ' if where else ''}{msg}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fol: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
