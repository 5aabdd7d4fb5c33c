"""The case bundle: one zip holding, per current measurement of a case, the report (HTML and
PDF), the evidence recording and the result JSON, plus the case's audit rows and a
``manifest.json`` listing every file with its SHA-256 (and the database's verification
at export time). The export itself is written to the audit log.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import datetime, timezone

from fol import __version__
from fol.cases.store import StoreError


def case_bundle(store, case_no: str, *, station=None, env=None, actor: str = "fol") -> bytes:
    """The zip bytes of case ``case_no`` (exact case number). ``station`` (for plots and
    reports) may be None: then a ``Station``-like renderer is built from the stored library
    if reports can be made, else the bundle holds recordings and JSON only."""
    rows = store.case_measurements(case_no)
    if not rows:
        raise StoreError(f"no measurements for case {case_no!r}")
    files: dict[str, bytes] = {}
    for m in rows:
        base = f"item-{_safe(m['item_no'])}/measurement-{m['id']}"
        files[f"{base}/result.json"] = json.dumps(m["result"], indent=2, ensure_ascii=False).encode()
        record = {k: v for k, v in m.items() if k != "result"}
        files[f"{base}/record.json"] = json.dumps(record, indent=2, ensure_ascii=False).encode()
        files[f"{base}/{m['recording'].rsplit('/', 1)[-1]}"] = (store.evidence_dir / m["recording"]).read_bytes()
        if station is not None:
            from fol.station.report import report_html, report_pdf

            files[f"{base}/report.html"] = report_html(station, m, env).encode()
            files[f"{base}/report.pdf"] = report_pdf(station, m)
    ids = {m["id"] for m in rows}
    audit = [a for a in store.audit_rows() if a["measurement_id"] in ids]
    files["audit.json"] = json.dumps(audit, indent=2).encode()
    problems = store.verify()
    manifest = {
        "format": "fol-case-bundle", "format_version": 1, "case_no": case_no, "fol_version": __version__,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "measurements": [{"id": m["id"], "item_no": m["item_no"], "verdict": m["verdict"], "alarm": bool(m["alarm"]),
                          "spectrum_sha256": m["spectrum_sha256"], "recording_sha256": m["recording_sha256"],
                          "row_sha256": m["row_sha256"]} for m in rows],
        "database_verification": problems or "ok",
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in sorted(files.items()):
            z.writestr(name, data)
        z.writestr("manifest.json", json.dumps(manifest, indent=2))
    store.audit(actor, "export", {"case_no": case_no, "measurements": sorted(ids),
                                  "manifest_sha256": hashlib.sha256(json.dumps(manifest, indent=2).encode()).hexdigest()})
    return buf.getvalue()


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(text))[:60] or "_"
