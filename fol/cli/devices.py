"""``fol devices``: list serial ports and, with --probe, which of them answer as analyzers."""

from __future__ import annotations

import argparse

HELP = """\
List the serial ports of this computer (pyserial's list_ports). With --probe, open each
one and ask *IDN? (short timeout): ports with an analyzer show its maker, model, serial
number, firmware and technique. --port adds ports or URLs that are not listed, such as a
simulator's pty (/tmp/fol-analyzer) or socket://127.0.0.1:5025; they are always probed.
"""


def register(sub) -> None:
    p = sub.add_parser("devices", help="list serial ports; --probe asks each for *IDN?", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--probe", action="store_true", help="ask every listed port for *IDN?")
    p.add_argument("--port", action="append", default=[], metavar="URL", help="also probe this port or URL (repeatable)")
    p.add_argument("--timeout", type=float, default=0.5, help="read timeout per answer when probing (default 0.5 s)")
    p.add_argument("--baud", type=int, default=115200, help="baud rate when probing (default 115200)")
    p.set_defaults(func=run)


def probe(url: str, *, baudrate: int, timeout: float) -> str:
    """One line saying what answers on ``url``: the analyzer's identity, or why nothing does."""
    from drivers import DeviceSource
    from fol.errors import DeviceError

    try:
        with DeviceSource(url, baudrate=baudrate, timeout=timeout, retries=1) as source:
            i = source.analyzer.identity
            return f"{i['maker']},{i['model']},{i['serial']},{i['firmware']} ({i['technique']})"
    except DeviceError as e:
        return f"no analyzer: {e}"


def run(args) -> int:
    from serial.tools import list_ports

    ports = sorted(list_ports.comports(), key=lambda p: p.device)
    if not ports and not args.port:
        print("no serial ports found")
    for p in ports:
        line = f"{p.device}\t{p.description}\t{p.hwid}"
        if args.probe:
            line += "\t" + probe(p.device, baudrate=args.baud, timeout=args.timeout)
        print(line, flush=True)
    for url in args.port:
        print(f"{url}\t(given)\t-\t{probe(url, baudrate=args.baud, timeout=args.timeout)}", flush=True)
    return 0
