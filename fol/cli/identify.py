"""``fol identify``: acquire or read one spectrum, analyse it, print the verdict."""

from __future__ import annotations

import argparse
import json
import sys

HELP = """\
Identify one spectrum against the reference library.

Sources (exactly one):
  --file REC.h5     a recording (fol-recording HDF5); --entry/--index pick the spectrum
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
    p = sub.add_parser("identify", help="identify one spectrum (file, analyzer port or simulator)",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--file", metavar="REC.h5", help="read the spectrum from a recording")
    src.add_argument("--port", metavar="URL", help="acquire from an analyzer on this serial port or URL")
    src.add_argument("--simulate", metavar="SPEC", help="acquire from an in-process simulated analyzer")
    p.add_argument("--entry", help="entry group in the recording (default: the first)")
    p.add_argument("--index", type=int, default=0, help="row within a stacked entry (default 0)")
    p.add_argument("--technique", choices=("raman", "ftir"), default="raman",
                   help="technique of the simulated analyzer (default raman)")
    p.add_argument("--seed", type=int, default=None, help="simulator random seed")
    p.add_argument("--integration", type=float, metavar="MS", help="integration time per scan (ms)")
    p.add_argument("--averages", type=int, metavar="N", help="scans co-added per acquisition")
    p.add_argument("--laser", type=float, metavar="MW", help="laser power (mW, Raman)")
    p.add_argument("--baud", type=int, default=115200, help="serial baud rate (default 115200)")
    p.add_argument("--timeout", type=float, default=5.0, help="read timeout in seconds (default 5)")
    p.add_argument("--library", metavar="LIB.h5", help="reference library (default: the shipped library, or $FOL_LIBRARY)")
    p.add_argument("--allow-unverified", action="store_true", help="use a library whose content hash does not match")
    p.add_argument("--top", type=int, default=10, help="number of library hits to report (default 10)")
    p.add_argument("--similarity", choices=("pearson", "derivative"), default="pearson",
                   help="similarity of the search (default pearson)")
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

        options.update(seed=args.seed, refset=ReferenceSet.from_library(library.section(args.technique)))
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
    from fol.io.library import load_library
    from fol.identification.pipeline import Identifier

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
    result = Identifier(library, k=args.top, mode=args.similarity).analyse_spectrum(
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


def settings_line(md: dict) -> str | None:
    """``Settings: integration 100 ms x 5 averages, laser 100 mW`` from a spectrum's metadata (None if absent)."""
    if md.get("integration_time_ms") is None or md.get("averages") is None:
        return None
    text = f"Settings: integration {md['integration_time_ms']:g} ms x {md['averages']} averages"
    if md.get("technique", "raman") == "raman" and md.get("laser_power_mw") is not None:
        text += f", laser {md['laser_power_mw']:g} mW"
    if md.get("detector_temperature_c") is not None:
        text += f"; detector {md['detector_temperature_c']:g} C"
    return text


def format_result(r: dict, acquisition: dict | None = None) -> str:
    """A short human verdict: alarm banner, substance, class, score, top hits, quality, settings used."""
    lines = []
    if r["alarm"]:
        lines += ["*" * 64, f"*  ALARM: {', '.join(r['alarm_classes']).upper():<53} *", "*" * 64]
    elif r.get("possible_alarm_classes"):
        lines += [f"!  CAUTION: cannot rule out {', '.join(r['possible_alarm_classes'])}: confirm in the lab"]
    comps = r["components"]
    if r["verdict"] in ("identified", "mixture"):
        lines.append(f"Verdict: {r['verdict']}")
        for c in comps:
            frac = f", {c['fraction']:.0%} of signal" if c.get("fraction") is not None and len(comps) > 1 else ""
            lines.append(f"  {c['name']} ({c['class']}), score {c['score']:.3f}{frac}")
    else:
        lines.append(f"Verdict: {r['verdict']}" + (f" ({r['error']})" if r.get("error") else ""))
    if "computed_reference" in r.get("flags", ()):
        lines.append("  Note: matched a COMPUTED reference spectrum: screening only, not evidence; confirm with a measured reference.")
    if r["hits"]:
        lines.append("Top hits:")
        for i, h in enumerate(r["hits"][:5], 1):
            lines.append(f"  {i}. {h['name']:<34} {h['class']:<20} {h['score']:.3f}  [{h.get('provenance', '')}]")
    q = r["quality"]
    snr = f"{q['snr']:.0f}" if isinstance(q.get("snr"), (int, float)) else "n/a"
    lines.append(f"Quality: SNR {snr}; flags: {', '.join(q.get('flags') or []) or 'none'}")
    if acquisition is not None and (line := settings_line(acquisition)):
        lines.append(line)
    lines.append(f"Library: {r['library']['name']} ({r['library']['sha256'][:12]})  source: {r['source']}#{r['entry']}")
    return "\n".join(lines)
