"""The HTML report of a replay: one self-contained file (no external CSS, scripts or images).

Sections: run summary with a per-file breakdown, QA metrics with confusion matrices
(when ground truth was recorded), the spectra that disagree with it, regression diff
(when earlier results were recorded), and the evidence for flagged or changed spectra
chosen by ``fol.qa.replay.Summary.examples`` (across files, then verdicts and
substances, not the first ones). Each example is a stack of panels on one wavenumber
axis: the processed query with the fitted sum; each component (its library row scaled
by a non-negative least-squares fit) on its *own* y axis, so that a 5 % component is as
visible as the matrix, with its strongest bands marked; and the residual on its own
axis. Plots are drawn with matplotlib's Agg renderer (no display needed) and embedded
as palette PNG (a few tens of kB each). matplotlib is imported only here, so only
``--report`` needs it.
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

#: rows of the regression table and of each list of disagreeing spectra in the report
#: (``fol replay --show-all`` lists every one in the text summary)
MAX_CHANGE_ROWS = 2000
#: components (or hits, when there are none) drawn per plot
MAX_CURVES = 3
#: strongest bands marked per component
MAX_BANDS = 4
#: colours of the PNG palette (lines on white compress well in a small palette)
PNG_COLOURS = 32

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}
th{background:#f2f2f2}td.n{text-align:right}td.ok{background:#d9f2d9}td.bad{background:#f8d4d4}
td.inc{background:#e3e3f3}.alarm{color:#b00;font-weight:bold}.caution{color:#b60;font-weight:bold}
.inconclusive{color:#446;font-weight:bold;background:#e3e3f3;padding:0 3px}
.small{color:#666;font-size:12px}figure{margin:0 0 2em}
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
    def cls(r, c, v):
        if not v:
            return "n"
        if matrix.correct(r, c):
            return "n ok"
        return "n inc" if c == "(inconclusive)" else "n bad"  # no verdict is not a wrong one

    classes = [[""] + [cls(r, c, v) for c, v in zip(cols, line)] for r, line in zip(rows, cells)]
    body = [[r] + [v or "" for v in line] for r, line in zip(rows, cells)]
    return _table(["expected \\ reported"] + cols, body, classes)


def _rate(rate) -> str:
    return _e(str(rate))


# ----------------------------------------------------------------------------- plots


class _Overlay:
    """Query, scaled top components, fit and residual of one result, on the library grid."""

    def __init__(self, identifier, located: dict[str, str] | None = None):
        self.identifier = identifier
        #: where a result's ``source`` is read from when it is not a recording itself (a converted spectrum file)
        self.located = located or {}
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

        spectrum, _ = read_spectrum(self.located.get(result["source"], result["source"]), result["entry"],
                                     int(result["index"]))
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
                "residual": query - fit, "bands": [strongest_bands(section.grid, r) for r in rows],
                "alarm": [_is_alarm(named, n) for n in names]}

    @classmethod
    def png(cls, d: dict, title: str) -> str:
        """The evidence (``figure``) as a base64 palette PNG."""
        buf = io.BytesIO()
        cls.figure(d, title).savefig(buf, format="png")
        return base64.b64encode(_palette_png(buf.getvalue())).decode("ascii")

    @staticmethod
    def figure(d: dict, title: str):
        """The evidence as a matplotlib Figure (Agg, no pyplot state): query and fit, each component
        on its own axis with its strongest bands marked, the residual on its own axis."""
        from matplotlib.figure import Figure

        n = len(d["curves"])
        fig = Figure(figsize=(8, 1.7 + 1.1 * (n + 1)), dpi=72, layout="constrained")
        axes = fig.subplots(n + 2, 1, sharex=True, height_ratios=[2.2] + [1] * n + [1])
        axes = list(np.atleast_1d(axes))
        top = axes[0]
        top.plot(d["grid"], d["query"], color="black", lw=0.9, label="query (processed)")
        if n:
            top.plot(d["grid"], d["fit"], color="#1f77b4", lw=0.8, ls="--", label="fit: sum of components")
        top.legend(fontsize=7, loc="upper right", frameon=False)
        top.set_title(title, fontsize=9)
        for ax, name, curve, bands, alarm in zip(axes[1:], d["names"], d["curves"], d["bands"], d["alarm"]):
            colour = "#c00" if alarm else "#2a7"
            ax.plot(d["grid"], curve, color=colour, lw=0.9)
            peak = float(np.max(np.abs(curve))) if curve.size else 0.0
            share = peak / (float(np.max(np.abs(d["query"]))) or 1.0)
            ax.set_ylabel(f"{name}\n(x{1 / share:.0f})" if 0 < share < 0.5 else name, fontsize=7)
            for x in bands:  # the evidence: where this component's strongest bands are
                ax.axvline(x, color=colour, lw=0.5, ls=":", alpha=0.8)
                ax.annotate(f"{x:.0f}", (x, 1.0), xycoords=("data", "axes fraction"), fontsize=6,
                            ha="center", va="bottom", color=colour)
        bottom = axes[-1]
        bottom.plot(d["grid"], d["residual"], color="#777", lw=0.7)
        bottom.axhline(0, color="#bbb", lw=0.5)
        bottom.set_ylabel("residual", fontsize=7)
        bottom.set_xlabel("wavenumber / cm$^{-1}$", fontsize=8)
        for ax in axes:
            ax.tick_params(labelsize=6)
        return fig


def _palette_png(data: bytes) -> bytes:
    """An RGBA PNG reduced to a small palette (Pillow, which matplotlib depends on); as it was
    if Pillow is not there."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - matplotlib requires Pillow
        return data
    img = Image.open(io.BytesIO(data)).convert("RGB").quantize(PNG_COLOURS)
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _is_alarm(named: list[dict], name: str) -> bool:
    return any(item.get("name") == name and item.get("alarm") for item in named)


def strongest_bands(grid: np.ndarray, row: np.ndarray, n: int = MAX_BANDS) -> list[float]:
    """Wavenumbers of the ``n`` most prominent bands of a (processed) reference row."""
    from scipy.signal import find_peaks

    row = np.asarray(row, float)
    if row.size < 3 or not np.all(np.isfinite(row)):
        return []
    span = float(row.max() - row.min())
    peaks, props = find_peaks(row, prominence=0.05 * span if span > 0 else None)
    if not len(peaks):
        return []
    order = np.argsort(props["prominences"])[::-1][:n]
    return sorted(float(grid[i]) for i in peaks[order])


def _verdict_html(r: dict) -> str:
    """The verdict, coloured by what it asks of the officer: alarm red, caution amber,
    inconclusive (no verdict: re-measure) blue-grey, unlike an alarm."""
    text = _e(r.get("verdict"))
    if r.get("verdict") == "inconclusive":
        text = f'<span class="inconclusive">{text}</span>'
    if r.get("alarm"):
        text += ' <span class="alarm">ALARM ' + _e(", ".join(r.get("alarm_classes") or [])) + "</span>"
    elif r.get("possible_alarm_classes"):
        text += ' <span class="caution">CAUTION ' + _e(", ".join(r["possible_alarm_classes"])) + "</span>"
    return text


def _flagged_html(summary, identifier, progress=None, located=None) -> str:
    from fol.qa.regression import describe, side

    overlay = _Overlay(identifier, located)
    out = []
    titles = {"problem": "Disagreements with the ground truth", "changed": "Changed since the earlier results",
              "alarm": "Alarms and cautions"}
    for kind in summary.KINDS:
        items = summary.examples(kind)
        if not items:
            continue
        total = summary.flagged_total[kind]
        shown = f", {len(items)} shown, chosen across files, verdicts and substances" if total > len(items) else ""
        out.append(f"<h3>{_e(titles[kind])} ({total}{shown})</h3>")
        for item in items:
            r = item["result"]
            where = f"{r['source']}#{r['entry']}[{r['index']}]"
            comps = ", ".join(f"{c['name']} ({c['score']:.3f})" for c in r.get("components") or []) or "none"
            lines = [f"<b>{_e(where)}</b>: {_verdict_html(r)}",
                     f"reasons: {_e('; '.join(item['reasons']))}", f"components: {_e(comps)}"]
            if item["expected"] is not None:
                lines.append(f"expected: {_e(item['expected'] or '{} (nothing from the library)')}")
            if item["previous"] is not None:
                lines.append(f"earlier: {_e(describe(side(item['previous'])))}")
            try:
                img = f'<img alt="evidence" src="data:image/png;base64,{overlay.png(overlay.data(r), where)}">'
            except Exception as e:  # a spectrum that cannot be re-read must not lose the report
                img = f'<p class="small">no plot: {_e(e)}</p>'
            out.append("<figure>" + "<br>".join(lines) + "<br>" + img + "</figure>")
            if progress is not None:
                progress(1)
    return "\n".join(out)


# ----------------------------------------------------------------------------- the page


def plot_count(summary) -> int:
    """How many overlay plots the report of ``summary`` draws (for a progress bar)."""
    return sum(len(summary.examples(kind)) for kind in summary.KINDS)


def render_report(summary, identifier, inputs: list[str], progress=None, located: dict[str, str] | None = None) -> str:
    """The report as one HTML string; ``progress(1)`` is called after each overlay plot.

    ``located``: the recording to read a result's spectrum from, by its ``source``, where the
    source is not a recording (a spectrum file replay converted).
    """
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
    if len(summary.files) + len(summary.unreadable) > 1 or summary.unreadable:
        cols = list(summary.FILE_COLUMNS)
        rows = [[name, *(row[c] for c in cols)] for name, row in summary.files.items()]
        rows += [[path, f"unreadable: {message}", *[""] * (len(cols) - 1)] for path, message in summary.unreadable]
        parts += ["<h3>Per file</h3>", _table(["file", *cols], rows)]
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
    from fol.qa.replay import CATEGORIES

    named_titles = {"missed alarm": "Missed alarms", "false alarm": "False alarms",
                    "components differ": "Spectra whose components differ from the ground truth "
                                         "(missed, extra, wrong member of the right class)"}
    for c in CATEGORIES:
        total = summary.named_total[c]
        if total:
            named = summary.named(c, MAX_CHANGE_ROWS)
            more = (f" (first {len(named)} here; every one with --show-all in the text summary)"
                    if total > len(named) else "")
            parts += [f"<h3>{_e(named_titles[c])}: {total}{_e(more)}</h3>",
                      "<ul class='small'>" + "".join(f"<li>{_e(line)}</li>" for line in named) + "</ul>"]
    reg = summary.regression
    if reg.compared:
        from fol.qa.regression import FIELD_WORDS, describe

        parts += ["<h2>Regression against earlier results</h2>",
                  _table(["compared", "changed", "verdict", "alarm", "top component", "earlier libraries", "now"],
                         [[reg.compared, reg.changed, reg.by_field["verdict"], reg.by_field["alarm"],
                           reg.by_field["top"], ", ".join(f"{h[:12]} ({n})" for h, n in reg.libraries.items()),
                           reg.current_library[:12]]])]
        rows = []
        for i, c in enumerate(reg.changes()):
            if i == MAX_CHANGE_ROWS:
                rows.append([f"... {reg.changed - MAX_CHANGE_ROWS} more: fol replay --show-all lists every one",
                             "", "", "", ""])
                break
            b, a = c["before"], c["after"]
            rows.append([f"{c['source']}#{c['entry']}[{c['index']}]",
                         ", ".join(FIELD_WORDS.get(f, f) for f in c["changed"]), describe(b), describe(a),
                         f"{b['library'][:12]} -> {a['library'][:12]}"])
        if rows:
            parts.append(_table(["spectrum", "changed", "before", "after", "library"], rows))
    if any(summary.flagged.values()):
        parts += ["<h2>Flagged and changed spectra</h2>",
                  "<p class='small'>top: processed query (black) and the fitted sum of components (dashed); "
                  "then each component (its library spectrum scaled by a non-negative least-squares fit) "
                  "on its own axis (xN: N times smaller than the query), strongest bands marked; bottom: "
                  "the residual, on its own axis</p>",
                  _flagged_html(summary, identifier, progress, located)]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(path: str | Path, summary, identifier, inputs: list[str], progress=None,
                 located: dict[str, str] | None = None) -> Path:
    path = Path(path)
    path.write_text(render_report(summary, identifier, inputs, progress, located), encoding="utf-8")
    return path
