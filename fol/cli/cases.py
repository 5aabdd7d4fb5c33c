"""``fol cases``: list, show, export and verify the station's case database."""

from __future__ import annotations

import argparse
import json
import sys

HELP = """\
list     search measurements (newest first): --case, --item, --from, --to, --substance, --alarm/--no-alarm
show ID  one measurement: case fields, verdict, components, hashes, audit rows
export   a case bundle (zip): reports, evidence recordings, JSON results, manifest with hashes
verify   check the audit chain, every row hash and the evidence files; exit 1 if anything is wrong
"""

DEFAULT_DB = "fol-station.sqlite"


def register(sub) -> None:
    p = sub.add_parser("cases", help="the station's case database: list, show, export, verify",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    modes = p.add_subparsers(dest="mode", metavar="MODE", required=True)

    def common(q):
        q.add_argument("--db", default=DEFAULT_DB, metavar="PATH", help=f"case database (default {DEFAULT_DB})")
        q.add_argument("--evidence", metavar="DIR", help="evidence directory (default: DB name + '-evidence')")

    q = modes.add_parser("list", help="search measurements")
    common(q)
    q.add_argument("--case", default="", help="case number (prefix)")
    q.add_argument("--item", default="", help="item number (exact)")
    q.add_argument("--from", dest="date_from", default="", metavar="YYYY-MM-DD")
    q.add_argument("--to", dest="date_to", default="", metavar="YYYY-MM-DD")
    q.add_argument("--substance", default="", help="component name (prefix)")
    g = q.add_mutually_exclusive_group()
    g.add_argument("--alarm", dest="alarm", action="store_const", const=True, default=None)
    g.add_argument("--no-alarm", dest="alarm", action="store_const", const=False)
    q.add_argument("--limit", type=int, default=50)
    q.add_argument("--json", action="store_true", help="JSON Lines")
    q.set_defaults(func=run_list)

    q = modes.add_parser("show", help="one measurement")
    common(q)
    q.add_argument("id", type=int)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=run_show)

    q = modes.add_parser("export", help="a case bundle (zip)")
    common(q)
    q.add_argument("--case", required=True, help="case number (exact)")
    q.add_argument("--out", required=True, metavar="BUNDLE.zip")
    q.add_argument("--library", metavar="LIB.h5", help="library for the reports' plots (default: shipped)")
    q.add_argument("--no-reports", action="store_true", help="recordings, JSON and manifest only")
    q.set_defaults(func=run_export)

    q = modes.add_parser("verify", help="check the audit chain, row hashes and evidence files")
    common(q)
    q.add_argument("--no-evidence", action="store_true", help="do not hash the evidence files")
    q.set_defaults(func=run_verify)


def _store(args, readonly=True):
    from fol.cases.store import CaseStore

    return CaseStore(args.db, evidence_dir=args.evidence, readonly=readonly)


def run_list(args) -> int:
    store = _store(args)
    rows = store.search(case_no=args.case, item_no=args.item, date_from=args.date_from, date_to=args.date_to,
                        substance=args.substance, alarm=args.alarm, limit=args.limit)
    for r in rows:
        if args.json:
            print(json.dumps(r, ensure_ascii=False))
        else:
            verdict = f"ALARM {r['alarm_classes']}" if r["alarm"] else r["verdict"]
            if "saturated" in r["quality_flags"].split(","):
                verdict = "RE-MEASURE (saturated)" + (f" {r['alarm_classes']}" if r["alarm"] else "")
            print(f"{r['id']:>7}  {r['created_utc'][:19]}  case {r['case_no']:<14} item {r['item_no']:<8} "
                  f"{verdict:<28} {r['substances']}")
    if not args.json:
        print(f"{len(rows)} shown of {store.count()} records", file=sys.stderr)
    return 0


def run_show(args) -> int:
    from fol.errors import UsageError

    store = _store(args)
    m = store.get(args.id)
    if m is None:
        raise UsageError(f"{args.db}: no measurement {args.id}")
    m["audit"] = store.audit_rows(args.id)
    if args.json:
        print(json.dumps(m, indent=2, ensure_ascii=False))
        return 0
    r = m["result"]
    print(f"measurement {m['id']}  {m['created_utc']}" + (f"  (corrects {m['corrects']}: {m['correction_reason']})"
                                                         if m["corrects"] else "")
          + (f"  [corrected by {m['corrected_by']}]" if m["corrected_by"] else ""))
    for k in ("case_no", "item_no", "operator", "description", "notes"):
        print(f"  {k:<12} {m[k]}")
    print(f"  verdict      {r['verdict']}{'  ALARM ' + ', '.join(r['alarm_classes']) if r['alarm'] else ''}")
    for c in r.get("components", []):
        frac = "" if c.get("fraction") is None else f" {c['fraction']:.0%} of signal"
        print(f"    {c['name']} ({c['class']}){frac}, confidence {c.get('confidence', 0):.0%}")
    print(f"  quality      {', '.join(r['quality'].get('flags') or []) or 'no flags'}")
    s, ins = m["settings"], m["instrument"]
    print(f"  settings     {s.get('integration_ms')} ms x {s.get('averages')} at {s.get('laser_mw')} mW")
    print(f"  instrument   {ins.get('maker', '')} {ins.get('model', '')} serial {ins.get('serial', '')}")
    print(f"  library      {m['library_name']} {m['library_sha256']}")
    print(f"  spectrum     sha256 {m['spectrum_sha256']}")
    print(f"  recording    {m['recording']}#{m['entry']} sha256 {m['recording_sha256']}")
    for a in m["audit"]:
        print(f"  audit {a['seq']:>5} {a['at_utc']} {a['action']} by {a['actor']}  {a['sha256'][:16]}")
    return 0


def run_export(args) -> int:
    from fol.errors import UsageError

    try:
        from fol.station.bundle import case_bundle
    except ImportError as e:
        raise UsageError(f"the case bundle needs the station extra (pip install 'fol[station]'): {e}") from None
    store = _store(args, readonly=False)
    station = None
    if not args.no_reports:
        try:
            import jinja2  # noqa: F401
            import reportlab  # noqa: F401
        except ImportError as e:
            raise UsageError(f"reports need the station extra (pip install 'fol[station]'), or use --no-reports: {e}") \
                from None
        station = _Reporter(store, args.library)
    data = case_bundle(store, args.case, station=station, actor="fol cases export")
    with open(args.out, "wb") as f:
        f.write(data)
    print(f"wrote {args.out} ({len(data)} bytes)")
    return 0


class _Reporter:
    """What the report needs of a station (store, library, identifier, plot), without an instrument."""

    def __init__(self, store, library_path):
        from fol.identification.pipeline import Identifier
        from fol.io.library import load_library

        self.store = store
        self.library = load_library(library_path)
        self.identifier = Identifier(self.library)

    def plot(self, m, fmt="svg"):
        from fol.cases.evidence import read_evidence
        from fol.station.plot import decomposition, render

        spectrum, _ = read_evidence(self.store.evidence_dir / m["recording"])
        return render(decomposition(self.identifier, spectrum, m["result"]), spectrum, fmt)


def run_verify(args) -> int:
    store = _store(args)
    problems = store.verify(check_evidence=not args.no_evidence)
    if problems:
        for p in problems:
            print(f"fol cases verify: {p}", file=sys.stderr)
        print(f"{args.db}: {len(problems)} problem(s): NOT intact", file=sys.stderr)
        return 1
    n_audit = len(store.audit_rows())
    print(f"{args.db}: intact ({store.count()} measurements, {n_audit} audit rows, schema v{store.schema_version()})")
    return 0
