"""The HTML report: self-contained, with tables, confusion matrices, regression diff and
overlay plots; matplotlib imported only when a report is asked for."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from fol.catalogue import load_catalogue  # noqa: E402
from fol.cli import main  # noqa: E402
from fol.io.recording import RecordingWriter  # noqa: E402
from fol.spectrum import Spectrum  # noqa: E402
from test_replay import AXIS, ReplayData  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return ReplayData(tmp_path_factory.mktemp("report"), n_stack=20)


def test_report_is_self_contained_with_tables_and_plots(data, tmp_path):
    rec = tmp_path / "rec.h5"
    rec.write_bytes(data.stack.read_bytes())
    with RecordingWriter(rec, "a") as w:  # a name that must be escaped, and an earlier result that differs
        w.add_spectrum(Spectrum(AXIS, data.measure({"caffeine": 1.0}), "raman"), name="odd",
                       start_time="2026-03-02T00:00:00Z", expected={"<b>bold</b>": None},
                       result={"verdict": "no-match", "alarm": False, "components": [],
                               "library": {"sha256": "feedface" * 8}})
    out, report = tmp_path / "o.jsonl", tmp_path / "qa.html"
    assert main(["replay", str(rec), "--library", str(data.library), "--json", str(out),
                 "--report", str(report)]) == 0
    page = report.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for section in ("<h2>Summary</h2>", "QA metrics", "Confusion matrix per substance", "Confusion matrix per class",
                    "Regression against earlier results", "Flagged and changed spectra", data.sha):
        assert section in page, section
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page) and "<script" not in page and "<link" not in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold</b>" not in page
    assert "feedface" in page and "odd[0]" in page  # the changed spectrum is listed
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    n_results = len(out.read_text().splitlines())
    flagged = [json.loads(s) for s in out.read_text().splitlines()]
    assert images and len(images) == sum(1 for r in flagged if r["alarm"] or r["entry"] == "odd"
                                         or r.get("possible_alarm_classes")) <= n_results
    assert all(base64.b64decode(img)[:8] == b"\x89PNG\r\n\x1a\n" for img in images)


def test_a_spectrum_that_cannot_be_reread_loses_its_plot_not_the_report(data, tmp_path):
    from fol.io.library import load_library
    from fol.identification.pipeline import Identifier
    from fol.qa.replay import Summary
    from fol.qa.report import render_report

    identifier = Identifier(load_library(data.library))
    summary = Summary(load_catalogue(), identifier.library_ref)
    gone = {"source": str(tmp_path / "gone.h5"), "entry": "e", "index": 0, "verdict": "identified", "alarm": True,
            "alarm_classes": ["fentanyl-analogue"], "components": [{"name": "fentanyl", "score": 0.99}]}
    summary.add(gone, None, None)
    ticks = []
    page = render_report(summary, identifier, ["gone.h5"], progress=ticks.append)
    assert "no plot:" in page and "gone.h5" in page and "<img" not in page
    assert sum(ticks) == 1  # the progress bar counts every flagged spectrum, plotted or not


def test_report_progress_bar_counts_the_plots_on_a_terminal(data, tmp_path):
    from fol.io.library import load_library
    from fol.identification.pipeline import Identifier
    from fol.cli.display import progress
    from fol.qa.replay import Summary
    from fol.qa.report import plot_count, render_report
    from test_replay import _Terminal

    identifier = Identifier(load_library(data.library))
    summary = Summary(load_catalogue(), identifier.library_ref)
    from fol.io.recording import Recording

    with Recording(data.stack) as r:
        batch = r.read("batch").batch
    for out in identifier.analyse(batch, source=str(data.stack), entry="batch"):
        summary.add(out, None, None)
    assert plot_count(summary) == summary.flagged_total["alarm"] > 0
    tty = _Terminal()
    bar = progress("report", stream=tty, unit="plots")
    total, done = plot_count(summary), [0]
    bar(0, total)

    def step(n):
        done[0] += n
        bar(done[0], total)

    render_report(summary, identifier, [str(data.stack)], progress=step)
    bar.close()
    assert f"{plot_count(summary)}/{plot_count(summary)}" in tty.getvalue() and "plots/s" in tty.getvalue()


def test_matplotlib_is_imported_only_for_a_report(data, tmp_path):
    code = ("import sys; from fol.cli import main; "
            f"rc = main(['replay', {str(data.stack)!r}, '--library', {str(data.library)!r}, '--json', "
            f"{str(tmp_path / 'o.jsonl')!r}]); print(rc, 'matplotlib' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.split()[-2:] == ["0", "False"], r.stderr
    np.testing.assert_equal(len((tmp_path / "o.jsonl").read_text().splitlines()), data.n)


def _identifier(data):
    from fol.io.library import load_library
    from fol.identification.pipeline import Identifier

    return Identifier(load_library(data.library))


def test_a_small_component_has_its_own_axis_bands_and_the_residual_its_own(data, tmp_path):
    """Item 14.17: a 5 % fentanyl component must be visible: its own y axis (scaled to it, not to
    the query), its strongest bands marked at the library's band positions; the residual apart."""
    from fol.qa.report import _Overlay, strongest_bands

    rec = tmp_path / "five.h5"
    with RecordingWriter(rec, "w") as w:
        w.add_spectrum(Spectrum(AXIS, data.measure({"fentanyl": 0.05, "lactose": 0.95}), "raman"), name="m")
    identifier = _identifier(data)
    [result] = identifier.analyse(_batch(rec), source=str(rec), entry="m")
    assert "fentanyl" in [c["name"] for c in result["components"]], result["components"]
    overlay = _Overlay(identifier)
    d = overlay.data(result)
    fig = overlay.figure(d, "five")
    axes = fig.axes
    assert len(axes) == len(d["curves"]) + 2  # query+fit, one per component, residual
    i = d["names"].index("fentanyl")
    curve, ax = d["curves"][i], axes[1 + i]
    lo, hi = ax.get_ylim()
    assert np.max(curve) > 0.5 * (hi - lo)  # fills its own axis
    assert np.max(curve) < 0.2 * np.max(d["query"])  # ... although it is small next to the query
    marked = sorted(line.get_xdata()[0] for line in ax.lines[1:])
    assert marked == strongest_bands(d["grid"], identifier.library.section("raman").processed[
        identifier.library.section("raman").names.index("fentanyl")]) and len(marked) == 4
    res_lo, res_hi = axes[-1].get_ylim()
    assert np.max(np.abs(d["residual"])) <= max(abs(res_lo), abs(res_hi))
    assert axes[-1].get_ylabel() == "residual"


def test_strongest_bands_are_the_tallest_peaks():
    from fol.qa.report import strongest_bands

    grid = np.arange(200.0, 2000.0, 2.0)
    centres, heights = [400.0, 800.0, 1000.0, 1200.0, 1600.0, 1800.0], [0.2, 1.0, 0.5, 0.9, 0.1, 0.7]
    row = sum(h * np.exp(-0.5 * ((grid - c) / 6) ** 2) for c, h in zip(centres, heights))
    assert strongest_bands(grid, row) == [800.0, 1000.0, 1200.0, 1800.0]
    assert strongest_bands(grid, np.zeros_like(grid)) == []


def _batch(rec):
    from fol.io.recording import Recording

    with Recording(rec) as r:
        return r.read(r.entries[0].name).batch


def test_examples_are_chosen_across_files_substances_and_verdicts(data):
    """Item 14.17: not the first 50 near-identical alarms of the first file."""
    from fol.qa.replay import Summary

    summary = Summary(load_catalogue(), {}, keep=6)

    def alarm(source, i, name="fentanyl", verdict="identified"):
        return {"source": source, "entry": "e", "index": i, "verdict": verdict, "alarm": True,
                "alarm_classes": ["fentanyl-analogue"], "components": [{"name": name, "class": "x", "score": 0.9}]}

    for i in range(100):
        summary.add(alarm("first.h5", i), None, None)
    summary.add(alarm("first.h5", 100, "carfentanil"), None, None)
    summary.add(alarm("first.h5", 101, "fentanyl", "mixture"), None, None)
    summary.add(alarm("second.h5", 0), None, None)
    summary.add(alarm("third.h5", 0, "xylazine"), None, None)
    chosen = summary.examples("alarm")
    assert summary.flagged_total["alarm"] == 104 and len(chosen) == 6
    where = [(r["result"]["source"], r["result"]["index"]) for r in chosen]
    assert {s for s, _ in where} == {"first.h5", "second.h5", "third.h5"}
    assert ("first.h5", 100) in where and ("first.h5", 101) in where  # the other substance and verdict
    summary.close()


def test_inconclusive_is_not_coloured_like_an_alarm_and_plots_stay_small(data, tmp_path):
    """Item 14.17: inconclusive results and matrix cells have their own colour; a plot is a
    palette PNG of a few tens of kB (it was a 60-70 kB RGBA PNG)."""
    from fol.qa.replay import Summary
    from fol.qa.report import _matrix_html, render_report

    identifier = _identifier(data)
    summary = Summary(load_catalogue(), identifier.library_ref)
    from fol.io.recording import Recording

    with Recording(data.stack) as r:
        batch = r.read("batch").batch
        expected = r.read("batch").expected
    for out, exp in zip(identifier.analyse(batch, source=str(data.stack), entry="batch"), expected):
        summary.add(out, exp, None)
    inconclusive = {"source": str(data.stack), "entry": "batch", "index": 9, "verdict": "inconclusive",
                    "alarm": False, "possible_alarm_classes": ["fentanyl-analogue"], "components": [], "hits": []}
    summary.add(inconclusive, {}, None)
    page = render_report(summary, identifier, [str(data.stack)])
    assert '<span class="inconclusive">inconclusive</span> <span class="caution">CAUTION' in page
    from fol.qa.metrics import ConfusionMatrix

    m = ConfusionMatrix()
    m.add("(none)", "(inconclusive)")
    m.add("(none)", "caffeine")
    m.add("caffeine", "caffeine")
    cells = re.findall(r'<td class="([^"]*)">(\d+)</td>', _matrix_html(m))
    # columns: caffeine, (none), (inconclusive): the inconclusive blank is not red like a wrong call
    assert cells == [("n ok", "1"), ("n bad", "1"), ("n inc", "1")]
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert images
    sizes = [len(base64.b64decode(i)) for i in images]
    assert max(sizes) < 40_000, sizes
    assert all(base64.b64decode(i)[25] == 3 for i in images)  # PNG colour type 3: palette
    summary.close()
