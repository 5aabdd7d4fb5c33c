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
    from fol.qa.replay import Progress, Summary
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
    bar = Progress(plot_count(summary), stream=tty, unit="plots")
    render_report(summary, identifier, [str(data.stack)], progress=bar.update)
    bar.close()
    assert f"{plot_count(summary)}/{plot_count(summary)}" in tty.getvalue() and "plots/s" in tty.getvalue()


def test_matplotlib_is_imported_only_for_a_report(data, tmp_path):
    code = ("import sys; from fol.cli import main; "
            f"rc = main(['replay', {str(data.stack)!r}, '--library', {str(data.library)!r}, '--json', "
            f"{str(tmp_path / 'o.jsonl')!r}]); print(rc, 'matplotlib' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.split()[-2:] == ["0", "False"], r.stderr
    np.testing.assert_equal(len((tmp_path / "o.jsonl").read_text().splitlines()), data.n)
