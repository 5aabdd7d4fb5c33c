"""Options shared by the commands, and the rules that refuse what does not apply.

* ``add_library_options(p)``: ``--library`` and ``--allow-unverified``;
* ``add_similarity_option(p)``: ``--similarity`` (choices: ``fol.search.similarity.MODES``);
* ``add_top_option(p)``: ``--top N`` (a positive integer);
* ``refuse_inapplicable(args, rules)``: an option given where it does nothing is a usage
  error (exit 2), never silently ignored;
* ``check_output_path`` / ``input_problem``: output paths are checked before the work,
  inputs that are not regular files (a directory, a FIFO) are named in one line.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Callable, Mapping

from fol.paths import special_kind


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1 (a usage error otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer (at least 1)")
    return value


def add_library_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--library", metavar="LIB.h5",
                   help="reference library (default: the shipped library, or $FOL_LIBRARY)")
    p.add_argument("--allow-unverified", action="store_true",
                   help="use a library whose content hash does not match (not for casework)")


def add_similarity_option(p: argparse.ArgumentParser) -> None:
    from fol.search.similarity import DEFAULT, MODES

    p.add_argument("--similarity", choices=MODES, default=DEFAULT, help=f"similarity of the search (default {DEFAULT})")


def add_top_option(p: argparse.ArgumentParser, default: int = 10, what: str = "library hits per result") -> None:
    p.add_argument("--top", type=positive_int, default=default, metavar="N",
                   help=f"number of {what} (default {default})")


def given(args: argparse.Namespace, dest: str, default=None) -> bool:
    """Whether option ``dest`` was given: its value differs from ``default`` (None, False or the
    parser default). Options whose parser default is None are told apart exactly."""
    value = getattr(args, dest, None)
    return value is not None and value is not False and value != default


def refuse_inapplicable(args: argparse.Namespace, rules: Mapping[str, tuple[Callable[[argparse.Namespace], bool], str]],
                        defaults: Mapping[str, object] | None = None) -> None:
    """Raise ``UsageError`` (exit 2) naming every option given where it does not apply.

    ``rules`` maps an option's dest to ``(applies(args) -> bool, where it applies)``, e.g.
    ``{"entry": (lambda a: a.file is not None, "--file")}``; ``defaults`` gives the parser
    default of options whose default is not None (an option left at its default is not
    "given"). The message lists each refused option with where it applies.
    """
    from fol.errors import UsageError

    defaults = defaults or {}
    bad = [f"--{dest.replace('_', '-')} (only with {where})" for dest, (applies, where) in rules.items()
           if given(args, dest, defaults.get(dest)) and not applies(args)]
    if bad:
        raise UsageError("option does not apply here: " + "; ".join(bad))


#: parser defaults of the ``fol identify`` options ruled below that are not None (kept equal to
#: fol/cli/identify.py's parser by a test)
IDENTIFY_DEFAULTS = {"index": 0, "baud": 115200, "timeout": 5.0}


def identify_rules() -> dict:
    """The rules of ``fol identify``: which options apply to which source."""
    file = (lambda a: a.file is not None, "--file")
    device = (lambda a: a.port is not None or a.simulate is not None, "--port or --simulate")
    sim = (lambda a: a.simulate is not None, "--simulate")
    port = (lambda a: a.port is not None, "--port")
    file_or_sim = (lambda a: a.file is not None or a.simulate is not None, "--file or --simulate")
    return {"entry": file, "index": file, "technique": file_or_sim, "seed": sim, "integration": device,
            "averages": device, "laser": device, "baud": port, "timeout": device}


def check_output_path(path: str | os.PathLike | None, option: str) -> None:
    """Refuse (``UsageError``, before any work) an output path that cannot be written:
    a directory, a missing or non-directory parent, no write permission."""
    from fol.errors import UsageError

    if path is None or str(path) == "-":
        return
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{option} {p}: is a directory")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.exists():
        raise UsageError(f"{option} {p}: folder {parent} does not exist")
    if not parent.is_dir():
        raise UsageError(f"{option} {p}: {parent} is not a folder")
    if p.exists() and not os.access(p, os.W_OK):
        raise UsageError(f"{option} {p}: not writable")
    if not p.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {p}: folder {parent} is not writable")


def input_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be read as an input file (one line naming it), or None.

    A directory is "is a directory"; a FIFO, socket or device "is not a regular file"
    (reading a FIFO would block forever). Nothing is opened.
    """
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        return f"{p}: no such file"
    except OSError as e:
        return f"{p}: {e.strerror or e}"
    kind = special_kind(st.st_mode)
    if kind == "a directory":
        return f"{p}: is a directory"
    if kind:
        return f"{p}: is not a regular file"
    if not os.access(p, os.R_OK):
        return f"{p}: permission denied"
    return None
