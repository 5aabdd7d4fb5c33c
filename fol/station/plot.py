"""The result plot: the query, each fitted component on its own axis, and the residual.

``decomposition`` refits the query with the identifier's own mixture model, started from
the same three search hits the pipeline starts from (the fit is deterministic, so it
reproduces the pipeline's components), and returns what to draw on the library grid:
the query less the fitted baseline, each component's fitted contribution (as scaled
in the fit, not renormalised), and the residual. ``render`` draws it with matplotlib
(SVG for the page, PNG for the PDF): one panel for the query with the sum of the
components over it, one panel per component with its own y-axis so that a minor
component (a 5 % fentanyl under mannitol) is visible rather than a flat line, its
share of the query's scale written beside it, and the residual on its own axis.
"""

from __future__ import annotations

import io

import numpy as np

#: a component drawn larger than this share of the query's range shares the query's scale
OWN_AXIS_BELOW = 1.0
COLOURS = ("#1f5fa8", "#c0392b", "#2e8b57", "#8e44ad", "#d35400", "#16a085")


def decomposition(identifier, spectrum, result: dict) -> dict | None:
    """What to plot for ``result`` of ``spectrum`` (None when no mixture model applies)."""
    from fol.identification.mixture import MixtureModel
    from fol.identification.pipeline import START_HITS

    technique = spectrum.technique
    try:
        section = identifier.library.section(technique)
    except Exception:  # a spectrum of a technique the library lacks: just the query
        return None
    prepared = getattr(identifier, "_prepared", {}).get(technique)
    model = prepared[3] if prepared and prepared[3] is not None else None
    if model is None:
        model = MixtureModel(section)
    raw, mask = model.prepare(spectrum.as_batch())
    y = raw[0]
    starts = []
    for h in (result.get("hits") or [])[:START_HITS]:
        try:
            starts.append(section.index_of(h["name"]))
        except KeyError:
            pass
    grid = np.asarray(section.grid)
    fit = model.fit(y, mask, starts) if np.isfinite(y[mask]).all() and mask.any() else None
    reported = {c["name"] for c in result.get("components") or []}
    if fit is None or fit.corrected is None:
        return {"grid": grid, "mask": mask, "query": np.where(mask, y, np.nan), "components": [], "residual": None}
    contrib = np.asarray(fit.contributions) if fit.contributions is not None and len(fit.contributions) else \
        np.zeros((0, grid.size))
    left = fit.corrected - contrib.sum(axis=0)
    basis = model.basis
    w = np.linalg.lstsq(basis[mask], left[mask], rcond=None)[0]
    base = basis @ w
    query = np.where(mask, fit.corrected - base, np.nan)
    comps = []
    for c, line in zip(fit.components, contrib):
        name = section.names[c.row]
        comps.append({"name": name, "class": section.classes[c.row], "fraction": float(c.fraction),
                      "reported": name in reported, "alarm": bool(section.alarm[c.row]),
                      "line": np.where(mask, line, np.nan)})
    residual = np.where(mask, left - base, np.nan)
    return {"grid": grid, "mask": mask, "query": query, "components": comps, "residual": residual}


def render(dec: dict | None, spectrum=None, fmt: str = "svg", width_in: float = 9.0) -> bytes:
    """The figure as SVG or PNG bytes (matplotlib's Agg/SVG backends; no display needed)."""
    from matplotlib.figure import Figure

    if dec is None:
        comps, n_panels = [], 1
    else:
        comps = dec["components"]
        n_panels = 1 + len(comps) + (dec["residual"] is not None)
    ratios = [2.2] + [1.0] * (n_panels - 1)
    fig = Figure(figsize=(width_in, 2.0 + 1.25 * (n_panels - 1)), dpi=110)
    axes = fig.subplots(n_panels, 1, sharex=True, gridspec_kw={"height_ratios": ratios, "hspace": 0.12})
    axes = np.atleast_1d(axes)
    if dec is None:
        x, q = np.asarray(spectrum.wavenumber), np.asarray(spectrum.intensity)
        axes[0].plot(x, q, color="black", lw=0.8, label="measured spectrum")
    else:
        x, q = dec["grid"], dec["query"]
        axes[0].plot(x, q, color="black", lw=0.9, label="measured (baseline removed)")
        if comps:
            total = np.nansum([c["line"] for c in comps], axis=0)
            axes[0].plot(x, np.where(dec["mask"], total, np.nan), color="#e67e22", lw=0.8, ls="--",
                         label="sum of fitted components")
    axes[0].legend(loc="upper right", fontsize=7, frameon=False)
    axes[0].set_ylabel("intensity", fontsize=8)
    q_range = float(np.nanmax(q) - np.nanmin(q)) if np.isfinite(q).any() else 1.0
    for i, c in enumerate(comps, start=1):
        ax = axes[i]
        colour = "#c0392b" if c["alarm"] else COLOURS[(i - 1) % len(COLOURS)]
        ax.plot(x, c["line"], color=colour, lw=0.9)
        c_range = float(np.nanmax(c["line"]) - np.nanmin(c["line"])) if np.isfinite(c["line"]).any() else 0.0
        scale = c_range / q_range if q_range > 0 else 0.0
        label = f"{c['name']}  {c['fraction']:.0%} of signal" + ("" if c["reported"] else "  (not reported: low confidence)")
        ax.text(0.005, 0.93, label, transform=ax.transAxes, fontsize=8, va="top", color=colour,
                fontweight="bold" if c["alarm"] else "normal")
        ax.text(0.995, 0.93, f"own scale: ×{1 / scale:.1f} vs query" if 0 < scale < 0.5 else "query scale",
                transform=ax.transAxes, fontsize=7, va="top", ha="right", color="#555")
        ax.set_ylabel("fit", fontsize=8)
    if dec is not None and dec["residual"] is not None:
        ax = axes[-1]
        ax.plot(x, dec["residual"], color="#7f8c8d", lw=0.7)
        ax.axhline(0, color="#bbb", lw=0.5)
        ax.text(0.005, 0.93, "residual (measured − fit)", transform=ax.transAxes, fontsize=8, va="top", color="#555")
        ax.set_ylabel("resid.", fontsize=8)
    for ax in axes:
        ax.tick_params(labelsize=7)
        ax.margins(x=0)
    axes[-1].set_xlabel("Raman shift / wavenumber (cm⁻¹)", fontsize=8)
    fig.subplots_adjust(left=0.08, right=0.99, top=0.98, bottom=0.08 if n_panels > 2 else 0.18)
    buf = io.BytesIO()
    if fmt == "svg":
        import matplotlib

        with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "fol"}):
            fig.savefig(buf, format="svg")
    else:
        fig.savefig(buf, format="png", dpi=130)
    return buf.getvalue()
