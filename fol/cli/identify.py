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

With --record OUT.h5 the raw spectrum and device metadata are written first, then the
result, before anything is printed: nothing acquired is lost if analysis fails.
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


def _acquire(args, library):
    """(spectrum, source, entry name) from the chosen source."""
    if args.file:
        from fol.io.recording import read_spectrum

        spectrum, info = read_spectrum(args.file, args.entry, args.index)
        return spectrum, args.file, info.name
    from drivers import open_source

    uri = args.port if args.port else f"sim:{args.simulate}"
    options = dict(baudrate=args.baud, timeout=args.timeout)
    if args.simulate:  # the simulated analyzer measures the same library's reference spectra
        from drivers.simulator import ReferenceSet

        options.update(seed=args.seed, refset=ReferenceSet.from_library(library.section(args.technique)))
    with open_source(uri, **options) as source:
        spectrum = source.acquire(integration_ms=args.integration, averages=args.averages, laser_mw=args.laser)
    where = args.port or "simulator"
    return spectrum, where, spectrum.metadata.get("acquisition_id") or spectrum.metadata.get("acquired_utc", "acquisition")


def run(args) -> int:
    from fol.io.library import load_library
    from fol.identification.pipeline import Identifier

    library = load_library(args.library, allow_unverified=args.allow_unverified)
    spectrum, source, entry = _acquire(args, library)
    writer = entry_name = None
    if args.record:
        from fol.io.recording import RecordingWriter

        writer = RecordingWriter(args.record, mode="a")
        entry_name = writer.add_spectrum(spectrum)  # raw spectrum + metadata first: nothing is lost
    try:
        result = Identifier(library, k=args.top, mode=args.similarity).analyse_spectrum(
            spectrum, source=source, entry=entry, index=args.index if args.file else 0)
        if writer:
            from fol import __version__

            writer.set_results(entry_name, [result], {"fol_version": __version__, "library_sha256": library.sha256})
    finally:
        if writer:
            writer.close()
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
    else:
        print(format_result(result))
        if args.record:
            print(f"recorded as {args.record}#{entry_name}")
    return 0


def format_result(r: dict) -> str:
    """A short human verdict: alarm banner, substance, class, score, top hits, quality."""
    lines = []
    if r["alarm"]:
        lines += ["*" * 64, f"*  ALARM: {', '.join(r['alarm_classes']).upper():<53} *", "*" * 64]
    elif r.get("possible_alarm_classes"):
        lines += [f"!  CAUTION: cannot rule out {', '.join(r['possible_alarm_classes'])}: confirm in the lab"]
        for c in r.get("possible_components") or ():
            frac = f", ~{c['fraction']:.0%} of signal" if c.get("fraction") is not None else ""
            conf = f", confidence {c['confidence']:.2f}" if c.get("confidence") is not None else ""
            lines.append(f"!    possibly {c['name']} ({c['class']}){frac}{conf}")
    for advice in r.get("advice") or ():
        lines.append(f"!  Measure again: {advice}")
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
    lines.append(f"Library: {r['library']['name']} ({r['library']['sha256'][:12]})  source: {r['source']}#{r['entry']}")
    return "\n".join(lines)
