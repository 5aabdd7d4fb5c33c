"""The per-item report: HTML (Jinja2, self-contained: inline style and SVG plot) and PDF (reportlab).

Both hold the chain-of-custody fields (case, item, operator, description, notes,
acquisition time, instrument and serial, settings, device messages, software version,
library name and content hash with provenance counts, the SHA-256 of the raw spectrum
and of the evidence file, the database row hash and the audit rows), the verdict, the
components and hits with each reference's provenance (computed references marked
"screening only"), the quality flags with their advice, and the plot.
"""

from __future__ import annotations

import io
import re
from datetime import datetime, timezone

from fol.station.service import ADVICE


def _context(station, m: dict) -> dict:
    from fol.station.app import banner

    r = m["result"]
    flags = r.get("quality", {}).get("flags", [])
    refs = [*r.get("components", []), *r.get("hits", [])[:10]]
    computed = sorted({x["name"] for x in refs if x.get("provenance") == "computed"})
    prov = (r.get("library") or {}).get("provenance") or {}
    return {"m": m, "r": r, "banner": banner(r), "advice": [(f, ADVICE[f]) for f in flags if f in ADVICE],
            "computed_refs": computed, "prov": prov, "audit": station.store.audit_rows(m["id"]),
            "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")}


def _inline_svg(svg: bytes) -> str:
    text = svg.decode("utf-8")
    return re.sub(r"^.*?(<svg\b)", r"\1", text, count=1, flags=re.S)


def report_html(station, m: dict, env=None) -> str:
    from fol.station.app import make_env

    env = env or make_env()
    ctx = _context(station, m)
    ctx["svg"] = _inline_svg(station.plot(m, "svg"))
    return env.get_template("report.html").render(**ctx)


def report_pdf(station, m: dict) -> bytes:
    """The report as PDF (reportlab's platypus; the plot as a PNG from matplotlib)."""
    from xml.sax.saxutils import escape

    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    ctx = _context(station, m)
    r, b = ctx["r"], ctx["banner"]
    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("small", fontSize=8, leading=10)
    cell = styles["BodyText"].clone("cell", fontSize=8.5, leading=10.5)
    colour = {"alarm": colors.HexColor("#b00020"), "caution": colors.HexColor("#8a5a00"),
              "clear": colors.HexColor("#1b7a3a")}[b["level"]]
    head = styles["Title"].clone("verdict", textColor=colour, fontSize=24, leading=28, alignment=0)
    P = lambda text, st=cell: Paragraph(escape(str(text)), st)  # noqa: E731  every string escaped
    story = [Paragraph("Substance identification report", styles["Heading1"]),
             P(f"Case {m['case_no']}, item {m['item_no']} · measurement {m['id']} · generated {ctx['generated']}",
               styles["BodyText"]),
             Spacer(1, 4 * mm), P(b["headline"], head), P(b["detail"], styles["Heading3"]),
             P(f"Verdict: {r.get('verdict')}" + (f" — {r['error']}" if r.get("error") else ""), styles["BodyText"])]
    if ctx["computed_refs"]:
        story.append(P("Matched COMPUTED reference spectra (" + ", ".join(ctx["computed_refs"]) +
                       "): screening only, not evidence; confirm with a measured reference.", styles["BodyText"]))

    def table(rows, widths, header=True):
        t = Table([[P(c) for c in row] for row in rows], colWidths=widths, repeatRows=1 if header else 0)
        style = [("GRID", (0, 0), (-1, -1), 0.4, colors.grey), ("VALIGN", (0, 0), (-1, -1), "TOP")]
        if header:
            style.append(("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")))
        t.setStyle(TableStyle(style))
        return t

    found = "Indicated (not a result: saturated spectrum)" if b["headline"] == "RE-MEASURE" else "Found"
    story += [Spacer(1, 3 * mm), Paragraph(found, styles["Heading2"])]
    if r.get("components"):
        story.append(table([["Substance", "Class", "Share of signal", "Confidence", "Score", "Reference"]] +
                           [[c["name"], c["class"], _pct(c.get("fraction")), _pct(c.get("confidence")),
                             f"{c['score']:.3f}", c.get("provenance", "") +
                             (" (screening only)" if c.get("provenance") == "computed" else "")]
                            for c in r["components"]], [45 * mm, 35 * mm, 25 * mm, 22 * mm, 18 * mm, 35 * mm]))
    else:
        story.append(P("No component could be reported."))
    q = r.get("quality", {})
    story += [Paragraph("Signal quality", styles["Heading2"]),
              P(f"SNR {q.get('snr')} · fluorescence {q.get('fluorescence')} · saturated: "
                f"{'yes' if q.get('saturated') else 'no'} · flags: {', '.join(q.get('flags') or []) or 'none'}")]
    for flag, text in ctx["advice"]:
        story.append(P(f"{flag}: {text}"))
    ins, s = m["instrument"], m["settings"]
    custody = [
        ("Case number", m["case_no"]), ("Item number", m["item_no"]), ("Operator", m["operator"]),
        ("Sample description", m["description"]), ("Notes", m["notes"]), ("Acquired (UTC)", m["created_utc"]),
        ("Instrument", f"{ins.get('maker', '')} {ins.get('model', '')}, serial {ins.get('serial', '')}, firmware "
                       f"{ins.get('firmware', '')} ({ins.get('technique', '')}) on {ins.get('source', '')}"),
        ("Settings", f"integration {s.get('integration_ms')} ms × {s.get('averages')} scans, laser "
                     f"{s.get('laser_mw')} mW, detector {ins.get('detector_temperature_c', '')} °C"),
        ("Device messages", "; ".join(f"{c} {t}" for c, t in s.get("device_errors") or []) or "none"),
        ("Software", f"fol {m['fol_version']}"),
        ("Library", f"{m['library_name']}, content SHA-256 {m['library_sha256']}; provenance "
                    + "; ".join(f"{t}: " + ", ".join(f"{n} {k}" for k, n in kinds.items())
                                for t, kinds in ctx["prov"].items())),
        ("Raw spectrum SHA-256", m["spectrum_sha256"]),
        ("Evidence recording", f"{m['recording']} (entry {m['entry']}), file SHA-256 {m['recording_sha256']}"),
        ("Database record", f"measurement {m['id']}, row SHA-256 {m['row_sha256']}"
                            + (f"; corrects {m['corrects']}: {m['correction_reason']}" if m["corrects"] else "")),
        *[(f"Audit {a['seq']}", f"{a['at_utc']} {a['action']} by {a['actor']} · {a['sha256']}") for a in ctx["audit"]],
    ]
    story += [Paragraph("Chain of custody", styles["Heading2"]), table(custody, [45 * mm, 135 * mm], header=False)]
    png = station.plot(m, "png")
    img = Image(io.BytesIO(png))
    ratio = img.imageHeight / img.imageWidth
    img.drawWidth, img.drawHeight = 180 * mm, 180 * mm * ratio
    story += [Paragraph("Spectrum, fitted components and residual", styles["Heading2"]), img,
              Paragraph("Library hits (single-substance search)", styles["Heading2"]),
              table([["#", "Reference", "Class", "Score", "Provenance"]] +
                    [[str(i), h["name"], h["class"], f"{h['score']:.3f}", h.get("provenance", "") +
                      (" (screening only)" if h.get("provenance") == "computed" else "")]
                     for i, h in enumerate(r.get("hits", [])[:10], 1)],
                    [10 * mm, 60 * mm, 45 * mm, 20 * mm, 45 * mm]),
              Spacer(1, 3 * mm),
              P("Component share is the share of the measured signal, not a mass fraction. Confidence is the "
                "calibrated probability that the component is present.", small)]
    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=14 * mm,
                            bottomMargin=14 * mm, title=f"fol report case {m['case_no']} item {m['item_no']}",
                            author="fol station", creator="fol station", invariant=1)
    doc.build(story)
    return buf.getvalue()


def _pct(v) -> str:
    return "–" if v is None else f"{float(v):.0%}"
