"""The HTML report of a replay: one self-contained file (no external CSS, scripts or images).

Sections: run summary, QA metrics with confusion matrices (when ground truth was
recorded), regression diff (when earlier results were recorded), and an overlay plot
for each flagged or changed spectrum kept by ``fol.qa.replay.Summary`` (the first
``KEEP_PER_KIND`` of each kind, in input order): the processed query, the top
components (library rows scaled by a non-negative least-squares fit to the query),
their sum, and the residual, on the library grid. Plots are drawn with matplotlib's
Agg renderer (no display needed) and embedded as base64 PNG. matplotlib is imported
only here, so only ``--report`` needs it.
"""

from __future__ import annotations

import base64
import html
import io
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from fol import __version__
from fol.qa.metrics import ConfusionMatrix

#: rows of the regression table in the report (all changes are in the text summary)
MAX_CHANGE_ROWS = 2000
#: components (or hits, when there are none) drawn per plot
MAX_CURVES = 3

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}
th{background:#f2f2f2}td.n{text-align:right}td.ok{background:#d9f2d9}td.bad{background:#f8d4d4}
.alarm{color:#b00;font-weight:bold}.small{color:#666;font-size:12px}figure{margin:0 0 2em}
"""


def _e(x) -> str:
    return html.escape(str(x))


def _table(head: list[str], rows: list[list], classes: list[list[str]] | None = None) -> str:
    out = ["<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>"]
    for i, row in enumerate(rows):
        cells = []
        for j, v in enumerate(row):
            cls = classes[i][j] if classes else ("n" if isinstance(v, (int, float)) else "")
            cells.append(f'<td class="{cls}">{_e(v)}</td>')
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "\n".join(out) + "</table>"


def _matrix_html(matrix: ConfusionMatrix) -> str:
    rows, cols, cells = matrix.table()
    classes = [["" ] + ["n " + ("ok" if matrix.correct(r, c) and v else "bad" if v else "") for c, v in zip(cols, line)]
               for r, line in zip(rows, cells)]
    body = [[r] + [v or "" for v in line] for r, line in zip(rows, cells)]
    return _table(["expected \\ reported"] + cols, body, classes)


def _rate(rate) -> str:
    return _e(str(rate))


# ----------------------------------------------------------------------------- plots


class _Overlay:
    """Query, scaled top components, fit and residual of one result, on the library grid."""

    def __init__(self, identifier):
        self.identifier = identifier
        self._rows_by_name: dict[str, dict[str, list[int]]] = {}

    def _rows(self, section) -> dict[str, list[int]]:
        if section.technique not in self._rows_by_name:
            table: dict[str, list[int]] = {}
            for i, name in enumerate(section.names):
                table.setdefault(name, []).append(i)
            self._rows_by_name[section.technique] = table
        return self._rows_by_name[section.technique]

    def data(self, result: dict) -> dict:
        """Arrays to plot; raises FolError/KeyError when the spectrum or library rows cannot be had."""
        from scipy.optimize import nnls

        from fol.io.recording import read_spectrum

        spectrum, _ = read_spectrum(result["source"], result["entry"], int(result["index"]))
        section = self.identifier.library.section(spectrum.technique)
        query = section.recipe.apply_spectrum(spectrum, section.grid).data[0].astype(np.float64)
        named = [c for c in result.get("components") or [] if not c.get("class_only")] or (result.get("hits") or [])
        rows_by_name = self._rows(section)
        names, rows = [], []
        for item in named[:MAX_CURVES]:
            candidates = rows_by_name.get(item["name"], [])
            if candidates:  # the replicate of that substance closest to the query
                best = candidates[int(np.argmax(section.processed[candidates] @ query.astype(np.float32)))]
                names.append(item["name"])
                rows.append(section.processed[best].astype(np.float64))
        if rows:
            basis = np.stack(rows, axis=1)
            coef, _ = nnls(basis, query)
            curves = [c * r for c, r in zip(coef, rows)]
            fit = basis @ coef
        else:
            curves, fit = [], np.zeros_like(query)
        return {"grid": section.grid, "query": query, "names": names, "curves": curves, "fit": fit,
                "residual": query - fit}

    @staticmethod
    def png(d: dict, title: str) -> str:
        """The overlay as a base64 PNG (Agg renderer, no pyplot state)."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(9, 4.2), dpi=80, layout="constrained")
        top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
        top.plot(d["grid"], d["query"], color="black", lw=1.0, label="query (processed)")
        for name, curve in zip(d["names"], d["curves"]):
            top.plot(d["grid"], curve, lw=0.9, label=name)
        if len(d["curves"]) > 1:
            top.plot(d["grid"], d["fit"], color="grey", lw=0.8, ls="--", label="sum of components")
        top.legend(fontsize=8, loc="upper right")
        top.set_title(title, fontsize=9)
        bottom.plot(d["grid"], d["residual"], color="#b00", lw=0.8)
        bottom.axhline(0, color="#999", lw=0.5)
        bottom.set_ylabel("residual", fontsize=8)
        bottom.set_xlabel("wavenumber / cm$^{-1}$", fontsize=8)
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return base64.b64encode(buf.getvalue()).decode("ascii")


def _flagged_html(summary, identifier, progress=None) -> str:
    overlay = _Overlay(identifier)
    out = []
    titles = {"problem": "Disagreements with the ground truth", "changed": "Changed since the earlier results",
              "alarm": "Alarms and cautions"}
    for kind in summary.KINDS:
        items = summary.flagged[kind]
        if not items:
            continue
        total = summary.flagged_total[kind]
        out.append(f"<h3>{_e(titles[kind])} ({total}{f', first {len(items)} shown' if total > len(items) else ''})</h3>")
        for item in items:
            r = item["result"]
            where = f"{r['source']}#{r['entry']}[{r['index']}]"
            comps = ", ".join(f"{c['name']} ({c['score']:.3f})" for c in r.get("components") or []) or "none"
            lines = [f"<b>{_e(where)}</b>: {_e(r['verdict'])}"
                     + (' <span class="alarm">ALARM ' + _e(", ".join(r["alarm_classes"])) + "</span>"
                        if r["alarm"] else ""),
                     f"reasons: {_e('; '.join(item['reasons']))}", f"components: {_e(comps)}"]
            if item["expected"] is not None:
                lines.append(f"expected: {_e(item['expected'] or '{} (nothing from the library)')}")
            if item["previous"] is not None:
                p = item["previous"]
                top = (p.get("components") or [{}])[0].get("name", "-")
                lines.append(f"earlier: {_e(p.get('verdict'))}, alarm {_e(p.get('alarm'))}, top {_e(top)}")
            try:
                img = f'<img alt="overlay" src="data:image/png;base64,{overlay.png(overlay.data(r), where)}">'
            except Exception as e:  # a spectrum that cannot be re-read must not lose the report
                img = f'<p class="small">no plot: {_e(e)}</p>'
            out.append("<figure>" + "<br>".join(lines) + "<br>" + img + "</figure>")
            if progress is not None:
                progress(1)
    return "\n".join(out)


# ----------------------------------------------------------------------------- the page


def plot_count(summary) -> int:
    """How many overlay plots the report of ``summary`` draws (for a progress bar)."""
    return sum(len(items) for items in summary.flagged.values())


def render_report(summary, identifier, inputs: list[str], progress=None) -> str:
    """The report as one HTML string; ``progress(1)`` is called after each overlay plot."""
    lib = summary.library_ref
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    shown_inputs = inputs[:20] + ([f"... and {len(inputs) - 20} more"] if len(inputs) > 20 else [])
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>fol replay report</title>"
             f"<style>{_CSS}</style></head><body>",
             "<h1>fol replay report</h1>",
             f"<p class='small'>{_e(now)} &middot; fol {_e(__version__)} &middot; library {_e(lib.get('name'))} "
             f"<code>{_e(lib.get('sha256'))}</code></p>",
             "<p>inputs: " + ", ".join(f"<code>{_e(p)}</code>" for p in shown_inputs) + "</p>",
             "<h2>Summary</h2>",
             _table(["spectra", *sorted(summary.verdicts), "alarms", "cautions", "errors"],
                    [[summary.n, *(summary.verdicts[v] for v in sorted(summary.verdicts)), summary.alarms,
                      summary.cautions, summary.errors]])]
    m = summary.metrics
    if m.labelled:
        parts += ["<h2>QA metrics (ground truth)</h2>",
                  _table(["measure", "value (95% Wilson interval)"],
                         [["labelled spectra", m.labelled], ["not analysable (left out)", m.errors],
                          ["alarm sensitivity", _rate(m.sensitivity())], ["alarm specificity", _rate(m.specificity())],
                          ["top-1 accuracy (first component)", _rate(m.top1_accuracy())],
                          ["hit-1 accuracy (first search hit)", _rate(m.hit1_accuracy())]])]
        for title, matrix in (("substance", m.substances), ("class", m.classes)):
            if len(matrix):
                parts += [f"<h3>Confusion matrix per {title}</h3>",
                          "<p class='small'>single-substance and blank samples; rows expected, columns reported"
                          " (first component, or the verdict when there is none)</p>", _matrix_html(matrix)]
        for title, ovr in (("substance", m.substance_ovr), ("class", m.class_ovr)):
            rows = ovr.rows()
            if rows:
                parts += [f"<h3>Per {title}, all labelled samples (mixtures included)</h3>",
                          _table([title, "TP", "FN", "FP", "recall", "precision"],
                                 [[r["label"], r["tp"], r["fn"], r["fp"],
                                   "" if r["recall"] is None else f"{r['recall']:.1%}",
                                   "" if r["precision"] is None else f"{r['precision']:.1%}"] for r in rows])]
    reg = summary.regression
    if reg.compared:
        parts += ["<h2>Regression against earlier results</h2>",
                  _table(["compared", "changed", "verdict", "alarm", "top component", "earlier libraries", "now"],
                         [[reg.compared, reg.changed, reg.by_field["verdict"], reg.by_field["alarm"],
                           reg.by_field["top"], ", ".join(f"{h[:12]} ({n})" for h, n in reg.libraries.items()),
                           reg.current_library[:12]]])]
        rows = []
        for i, c in enumerate(reg.changes()):
            if i == MAX_CHANGE_ROWS:
                rows.append([f"... {reg.changed - MAX_CHANGE_ROWS} more in the text summary", "", "", "", ""])
                break
            b, a = c["before"], c["after"]
            rows.append([f"{c['source']}#{c['entry']}[{c['index']}]", ", ".join(c["changed"]),
                         f"{b['verdict']} / {'alarm' if b['alarm'] else 'no alarm'} / {b['top'] or '-'}",
                         f"{a['verdict']} / {'alarm' if a['alarm'] else 'no alarm'} / {a['top'] or '-'}",
                         f"{b['library'][:12]} -> {a['library'][:12]}"])
        if rows:
            parts.append(_table(["spectrum", "changed", "before", "after", "library"], rows))
    if any(summary.flagged.values()):
        parts += ["<h2>Flagged and changed spectra</h2>",
                  "<p class='small'>processed query (black), top components scaled by a non-negative "
                  "least-squares fit, their sum (dashed) and the residual, on the library grid</p>",
                  _flagged_html(summary, identifier, progress)]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(path: str | Path, summary, identifier, inputs: list[str], progress=None) -> Path:
    path = Path(path)
    path.write_text(render_report(summary, identifier, inputs, progress), encoding="utf-8")
    return path
