"""``fol identify``: acquire or read one spectrum, analyse it, print the verdict."""

from __future__ import annotations

import argparse
import json
import sys

HELP = """\
Identify one spectrum against the reference library.

Sources (exactly one):
  --file PATH       a recording (fol-recording HDF5; --entry/--index pick the spectrum) or a
                    spectrum file in any format the importers read (JCAMP-DX, CSV/TXT, SPC, ...)
  --port URL        an analyzer: /dev/ttyUSB0, a pty path, socket://HOST:PORT, rfc2217://...
  --simulate SPEC   a simulated analyzer on a pty, e.g. "fentanyl:0.2,mannitol:0.8"

Every acquisition sets every analyzer setting: the --integration/--averages/--laser
given, and the documented defaults of the technique for the others (Raman 100 ms x 5
scans at 100 mW, FTIR 50 ms x 16 scans; docs/driver.md), never what an earlier session
left on the device. The settings used are printed with the verdict.

With --record OUT.h5 the target is checked before acquiring (it must be a fol recording
or a new file in a writable directory). The raw spectrum and device metadata are
written first, then the result, before anything is printed: nothing acquired is lost
if analysis fails. If writing fails after acquiring, the verdict is still shown and the
spectrum is saved to a fallback recording named in the error (exit code 1).

On a terminal, stderr shows the acquisition's progress and every retry on a faulty line.
"""


def register(sub) -> None:
    from fol.cli.options import add_library_options, add_similarity_option, add_top_option

    p = sub.add_parser("identify", help="identify one spectrum (file, analyzer port or simulator)",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--file", metavar="PATH", help="read the spectrum from a recording or a spectrum file "
                                                     "(JCAMP-DX, CSV/TXT, vendor formats: docs/formats.md)")
    src.add_argument("--port", metavar="URL", help="acquire from an analyzer on this serial port or URL")
    src.add_argument("--simulate", metavar="SPEC", help="acquire from an in-process simulated analyzer")
    p.add_argument("--entry", help="entry group in the recording (default: the first)")
    p.add_argument("--index", type=int, default=0, help="row within a stacked entry (default 0)")
    p.add_argument("--technique", choices=("raman", "ftir"),
                   help="technique of the simulated analyzer (default raman), or of a --file that does not say "
                        "(a two-column CSV); what a file says is never overridden")
    p.add_argument("--seed", type=int, default=None, help="simulator random seed")
    p.add_argument("--integration", type=float, metavar="MS", help="integration time per scan (ms)")
    p.add_argument("--averages", type=int, metavar="N", help="scans co-added per acquisition")
    p.add_argument("--laser", type=float, metavar="MW", help="laser power (mW, Raman)")
    p.add_argument("--baud", type=int, default=115200, help="serial baud rate (default 115200)")
    p.add_argument("--timeout", type=float, default=5.0, help="read timeout in seconds (default 5)")
    add_library_options(p)
    add_top_option(p, what="library hits to report")
    add_similarity_option(p)
    p.add_argument("--json", action="store_true", help="print the result object (result-format.md) as JSON")
    p.add_argument("--record", metavar="OUT.h5", help="append the spectrum and its result to this recording")
    p.set_defaults(func=run)


#: how long to wait for another process writing the --record file before saving elsewhere
LOCK_WAIT_S = 3.0


class _Progress:
    """Shows driver events on stderr when it is a terminal: a rewritten progress line, retries as lines."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self._open_line = False

    def __call__(self, event) -> None:
        if not self.live:
            return
        phase = getattr(event, "phase", None)
        if phase == "integrating":
            self.stream.write(f"\racquiring: {event.elapsed_s:4.1f} of {event.expected_s:.1f} s \x1b[K")
            self._open_line = True
        elif phase in ("configuring", "reading"):
            self.stream.write(f"\r{event.detail} \x1b[K")
            self._open_line = True
        else:  # a retry, a resync, a re-query on a faulty line: keep it on screen
            self.end()
            self.stream.write(f"fol: {event}\n")
        self.stream.flush()

    def end(self) -> None:
        if self._open_line:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._open_line = False


def _acquire(args, library, progress=None):
    """(spectrum, source, entry name) from the chosen source."""
    if args.file:
        from fol.io.formats import read_spectrum_entry  # recordings and every single-spectrum format

        spectrum, entry = read_spectrum_entry(args.file, args.technique, args.entry, args.index)
        return spectrum, args.file, entry
    from drivers import open_source

    uri = args.port if args.port else f"sim:{args.simulate}"
    options = dict(baudrate=args.baud, timeout=args.timeout, progress=progress)
    if args.simulate:  # the simulated analyzer measures the same library's reference spectra
        from drivers.simulator import ReferenceSet

        options.update(seed=args.seed, refset=ReferenceSet.from_library(library.section(args.technique or "raman")))
    try:
        with open_source(uri, **options) as source:
            spectrum = source.acquire(integration_ms=args.integration, averages=args.averages, laser_mw=args.laser)
    finally:
        if progress is not None:
            progress.end()
    where = args.port or "simulator"
    return spectrum, where, spectrum.metadata.get("acquisition_id") or spectrum.metadata.get("acquired_utc", "acquisition")


def _fallback_path(record: str) -> str:
    """Where to save a spectrum that could not be recorded to ``record``: beside it, or here, or in /tmp."""
    import os
    import tempfile
    from datetime import datetime, timezone

    stem = os.path.splitext(os.path.basename(record))[0] or "recording"
    name = f"{stem}.unsaved-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S%fZ')}.h5"
    for directory in (os.path.dirname(os.path.abspath(record)), os.getcwd(), tempfile.gettempdir()):
        if os.path.isdir(directory) and os.access(directory, os.W_OK):
            return os.path.join(directory, name)
    return os.path.join(tempfile.gettempdir(), name)


class _Recorder:
    """Writes the spectrum, then its result, to --record; on failure, to a fallback file (and remembers why)."""

    def __init__(self, target: str):
        self.target = target
        self.path = target
        self.failure: str | None = None
        self.entry: str | None = None

    def _write(self, fn) -> None:
        from fol.errors import FolError
        from fol.io.recording import RecordingWriter

        try:
            with RecordingWriter(self.path, mode="a", lock_timeout=LOCK_WAIT_S) as writer:
                fn(writer)
            return
        except (FolError, OSError) as e:
            if self.path != self.target:
                raise
            self.failure = str(e)
        self.path = _fallback_path(self.target)
        with RecordingWriter(self.path, mode="w") as writer:
            fn(writer)

    def spectrum(self, spectrum) -> None:
        def add(writer):
            self.entry = writer.add_spectrum(spectrum)
            self._spectrum_in = writer.path

        self._write(add)

    def result(self, spectrum, result, sha256: str) -> None:
        from fol import __version__

        def add(writer):
            if writer.path != getattr(self, "_spectrum_in", None):  # now writing to the fallback: spectrum first
                self.entry = writer.add_spectrum(spectrum)
                self._spectrum_in = writer.path
            writer.set_results(self.entry, [result], {"fol_version": __version__, "library_sha256": sha256})

        self._write(add)


def run(args) -> int:
    from fol.cli.display import format_result
    from fol.cli.options import IDENTIFY_DEFAULTS, identify_rules, input_problem, refuse_inapplicable
    from fol.errors import FormatError
    from fol.identification.pipeline import Identifier
    from fol.io.library import load_library

    refuse_inapplicable(args, identify_rules(), IDENTIFY_DEFAULTS)
    if args.file and input_problem(args.file):
        raise FormatError(input_problem(args.file))
    library = load_library(args.library, allow_unverified=args.allow_unverified)
    if args.record:
        from fol.io.recording_writer import check_target

        check_target(args.record)  # before acquiring: a bad target must not cost the measurement
    progress = _Progress() if not args.file else None
    spectrum, source, entry = _acquire(args, library, progress)
    recorder = None
    if args.record:
        recorder = _Recorder(args.record)
        recorder.spectrum(spectrum)  # raw spectrum + metadata first: nothing is lost
    if spectrum.technique not in library.techniques:  # a usage error of the library, not a verdict
        from fol.errors import LibraryError

        saved = f"; the spectrum was recorded to {recorder.path}#{recorder.entry}" if recorder else ""
        raise LibraryError(f"{library.path}: library {library.name!r} has no {spectrum.technique} spectra "
                           f"(it has: {', '.join(library.techniques) or 'none'}){saved}")
    result = Identifier(library, top=args.top, similarity=args.similarity).analyse_spectrum(
        spectrum, source=source, entry=entry, index=args.index if args.file else 0)
    if recorder:
        recorder.result(spectrum, result, library.sha256)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
    else:
        print(format_result(result, spectrum.metadata if not args.file else None))
        if recorder and not recorder.failure:
            print(f"recorded as {recorder.path}#{recorder.entry}")
    if recorder and recorder.failure:
        print(f"fol: error: could not record to {args.record} ({recorder.failure}); the spectrum and its result "
              f"were saved to {recorder.path}#{recorder.entry}", file=sys.stderr)
        return 1
    return 0
