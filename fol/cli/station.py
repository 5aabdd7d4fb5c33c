"""``fol station``: the officer's station, a local web app beside the instrument."""

from __future__ import annotations

import argparse
import os
import sys

HELP = """\
Start the station: a web app (open the printed address in a browser) to enter the case,
measure, see the verdict, print the report, and search past results.

Instrument (one of): --port URL (an analyzer: /dev/ttyUSB0, a pty, socket://HOST:PORT)
                     --simulate SPEC (an in-process simulated analyzer measuring SPEC)
The database (--db) indexes the evidence recordings written beside it (--evidence).
Listening on an address other than loopback requires an access token (--token or
$FOL_STATION_TOKEN, at least 12 characters).
"""

DEFAULT_LISTEN = "127.0.0.1:8470"


def register(sub) -> None:
    p = sub.add_parser("station", help="the officer's station: a local web app with a case database",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--port", metavar="URL", help="the analyzer's serial port or URL")
    src.add_argument("--simulate", metavar="SPEC", help='a simulated analyzer measuring SPEC, e.g. "fentanyl:0.2,mannitol:0.8"')
    p.add_argument("--library", metavar="LIB.h5", help="reference library (default: shipped, or $FOL_LIBRARY)")
    p.add_argument("--db", default="fol-station.sqlite", metavar="PATH", help="case database (default fol-station.sqlite)")
    p.add_argument("--evidence", metavar="DIR", help="evidence recordings directory (default: DB name + '-evidence')")
    p.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT", help=f"address to serve on (default {DEFAULT_LISTEN})")
    p.add_argument("--token", help="access token required from browsers (default $FOL_STATION_TOKEN)")
    p.add_argument("--require", default="case_no,item_no,operator", metavar="FIELDS",
                   help="case fields required before measuring (comma list of case_no,item_no,operator,"
                        "description,notes; '' for none; default case_no,item_no,operator)")
    p.add_argument("--technique", choices=("raman", "ftir"), default="raman", help="simulated analyzer's technique")
    p.add_argument("--seed", type=int, default=None, help="simulator random seed")
    p.add_argument("--time-scale", type=float, default=1.0, metavar="X", help="simulator acquisition-time multiplier")
    p.add_argument("--integration", type=float, metavar="MS", help="default integration time (ms) shown on the form")
    p.add_argument("--averages", type=int, metavar="N", help="default number of averages")
    p.add_argument("--laser", type=float, metavar="MW", help="default laser power (mW)")
    p.add_argument("--timeout", type=float, default=5.0, help="serial read timeout (s)")
    p.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate (with --tls-key)")
    p.add_argument("--tls-key", metavar="PEM", help="private key of --tls-cert")
    p.set_defaults(func=run)


def parse_listen(text: str) -> tuple[str, int]:
    from fol.errors import UsageError

    host, sep, port = str(text).rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise UsageError(f"--listen wants HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def run(args) -> int:
    from fol.errors import UsageError

    try:
        import uvicorn

        from fol.station.app import create_app
    except ImportError as e:
        raise UsageError(f"the station needs its extra: pip install 'fol[station]' ({e})") from None
    from fol.station.security import MIN_TOKEN, is_loopback
    from fol.station.service import Station, StationConfig
    from fol.cases.store import CASE_FIELDS

    host, port = parse_listen(args.listen)
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("--tls-cert and --tls-key go together")
    token = args.token or os.environ.get("FOL_STATION_TOKEN") or None
    if not is_loopback(host) and not token:
        raise UsageError(f"listening on {host} (not loopback) needs an access token: --token or $FOL_STATION_TOKEN")
    if token is not None and len(token) < MIN_TOKEN:
        raise UsageError(f"the access token must have at least {MIN_TOKEN} characters")
    required = tuple(f.strip() for f in args.require.split(",") if f.strip())
    bad = [f for f in required if f not in CASE_FIELDS]
    if bad:
        raise UsageError(f"--require: unknown field(s) {', '.join(bad)} (known: {', '.join(CASE_FIELDS)})")
    defaults = {k: v for k, v in (("integration_ms", args.integration), ("averages", args.averages),
                                  ("laser_mw", args.laser)) if v is not None}
    config = StationConfig(port=args.port, simulate=args.simulate, library=args.library, db=args.db,
                           evidence_dir=args.evidence, required=required, technique=args.technique, seed=args.seed,
                           time_scale=args.time_scale, timeout=args.timeout, defaults=defaults)
    station = Station(config)
    station.check_settings({})  # the stated defaults must be valid settings
    if station.recovered:
        print(f"fol station: indexed {len(station.recovered)} evidence recording(s) left by an interrupted run",
              file=sys.stderr)
    station.warm()
    station.refresh_instrument()
    if station.instrument_error:
        print(f"fol station: instrument not connected yet: {station.instrument_error}", file=sys.stderr)
    app = create_app(station, token=token)
    scheme = "https" if args.tls_cert else "http"
    print(f"fol station: serving on {scheme}://{host}:{port}/  (instrument: {station.port_label}; "
          f"database: {args.db}); Ctrl-C to stop", flush=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False,
                    ssl_certfile=args.tls_cert, ssl_keyfile=args.tls_key)
    finally:
        station.close()
    return 0
