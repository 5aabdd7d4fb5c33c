"""``fol simulate``: a simulated analyzer on a pty or TCP port, and simulated recordings."""

from __future__ import annotations

import argparse
import sys
import time

HELP = """\
serve   run a simulated analyzer that speaks the analyzer protocol (../shared/docs/analyzer-protocol.md; docs/simulator.md)
        on a pseudo-terminal (--link, default /tmp/fol-analyzer: open it like a serial port)
        or on a loopback TCP port (--tcp 127.0.0.1:5025: open it as socket://127.0.0.1:5025).
record  write a recording of N simulated spectra of one sample, with ground truth
        (sample/expected) filled in, for QA and accuracy evaluation.

Sample specs: "fentanyl:0.05,mannitol:0.95" (mass fractions), "blank", or one name.
Fault specs: "drop=0.02,corrupt=0.02,delay=0.05,delay_s=0.4,junk=0.02,disconnect=0.001,
interlock=0.1,warm=0.1" (see docs/simulator.md).
"""

DEFAULT_LINK = "/tmp/fol-analyzer"
CHUNK_ROWS = 2048


def _common(p) -> None:
    p.add_argument("--technique", choices=("raman", "ftir"), default="raman", help="default raman")
    p.add_argument("--seed", type=int, default=None, help="random seed (same seed, same spectra)")
    p.add_argument("--library", metavar="LIB.h5", help="references (default: the shipped library, or $FOL_LIBRARY)")


def register(sub) -> None:
    p = sub.add_parser("simulate", help="simulated analyzer (serve) and simulated recordings (record)",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    modes = p.add_subparsers(dest="mode", metavar="MODE", required=True)

    s = modes.add_parser("serve", help="serve a simulated analyzer on a pty or loopback TCP port")
    where = s.add_mutually_exclusive_group()
    where.add_argument("--link", metavar="PATH", help=f"symlink to the pty (default {DEFAULT_LINK})")
    where.add_argument("--tcp", metavar="HOST:PORT", help="listen on a loopback TCP address (port 0: any free port)")
    s.add_argument("--sample", default="blank", metavar="SPEC", help="what the analyzer measures (default blank)")
    s.add_argument("--faults", default="", metavar="SPEC", help="fault injection (default none)")
    s.add_argument("--time-scale", type=float, default=1.0, metavar="X",
                   help="acquisition time multiplier (default 1; 0.01 for fast tests)")
    s.add_argument("--timeout", type=float, default=None, metavar="S", help="stop after S seconds (default: Ctrl-C)")
    _common(s)
    s.set_defaults(func=run_serve)

    r = modes.add_parser("record", help="write a recording of simulated spectra with ground truth")
    r.add_argument("--sample", required=True, metavar="SPEC", help="what is measured")
    r.add_argument("--n", type=int, required=True, metavar="N", help="number of spectra")
    r.add_argument("--out", required=True, metavar="REC.h5", help="recording to write (appended if it exists)")
    r.add_argument("--stack", action="store_true", help="one stacked entry instead of one entry per spectrum")
    r.add_argument("--snr", type=float, default=None, help="signal-to-noise ratio of the strongest band")
    r.add_argument("--integration", type=float, default=None, metavar="MS", help="integration time per scan")
    r.add_argument("--averages", type=int, default=None, metavar="N", help="scans co-added")
    r.add_argument("--laser", type=float, default=None, metavar="MW", help="laser power (Raman)")
    _common(r)
    r.set_defaults(func=run_record)


def _references(args):
    from drivers.simulator import ReferenceSet
    from fol.io.library import load_library

    return ReferenceSet.from_library(load_library(args.library).section(args.technique))


def _tcp_address(text: str) -> tuple[str, int]:
    from fol.errors import UsageError

    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise UsageError(f"--tcp wants HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def run_serve(args) -> int:
    from drivers.simulator import AnalyzerServer, FaultSpec, SimulatedAnalyzer
    from drivers.simulator.server import loopback_address
    from fol.errors import DeviceError

    faults = FaultSpec.parse(args.faults)
    where = {"tcp": loopback_address(*_tcp_address(args.tcp))} if args.tcp else {"link": args.link or DEFAULT_LINK}
    device = SimulatedAnalyzer(_references(args), sample=args.sample, seed=args.seed, faults=faults,
                               time_scale=args.time_scale)
    server = AnalyzerServer(device, seed=args.seed, **where)
    server.start()
    try:
        ins = device.instrument
        print(f"fol simulate: {ins.technique} analyzer {ins.maker},{ins.model},{ins.serial} serving on {server.url} "
              f"(sample: {device.sample}; faults: {faults}); Ctrl-C to stop", flush=True)
        deadline = None if args.timeout is None else time.monotonic() + args.timeout
        while server.running and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.1)
        if server.failure is not None:
            raise DeviceError(f"simulator on {server.url} stopped: {server.failure}")
    finally:
        server.stop()
    print(f"fol simulate: stopped after {server.stats['frames']} responses", flush=True)
    return 0


def run_record(args) -> int:
    import numpy as np

    from drivers.simulator import make_instrument
    from drivers.simulator.record import record_simulated
    from fol.errors import UsageError
    from fol.io.recording import RecordingWriter

    if args.n < 1:
        raise UsageError(f"--n must be at least 1, got {args.n}")
    refset = _references(args)
    instrument = make_instrument(args.technique, args.seed or 0)
    rng = np.random.default_rng(args.seed)
    with RecordingWriter(args.out, mode="a", durable=False) as writer:  # kill-safe; fsync is for evidence
        entries = record_simulated(writer, refset, args.sample, args.n, rng, stack=args.stack, chunk_rows=CHUNK_ROWS,
                                   instrument=instrument, integration_ms=args.integration, averages=args.averages,
                                   laser_mw=args.laser, snr=args.snr)
    print(f"wrote {args.n} simulated {args.technique} spectra of {args.sample!r} to {args.out} "
          f"({'stack ' + entries[0] if args.stack else f'{len(entries)} entries'})", file=sys.stdout)
    return 0
