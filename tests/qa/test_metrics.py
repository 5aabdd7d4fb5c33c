"""QA metrics (alarm sensitivity/specificity with Wilson intervals, top-1, confusion matrices)
and the regression diff, on hand-made results whose right answers are known."""

from __future__ import annotations

import math

import pytest

from fol.catalogue import load_catalogue
from fol.qa.metrics import BLANK, Metrics, Rate, component_differences, format_matrix
from fol.qa.regression import Regression, changed_fields


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval, written out (Wilson 1927) as the oracle."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize("k,n", [(45, 50), (0, 12), (12, 12), (1, 3), (500, 1000)])
def test_wilson_interval(k, n):
    lo, hi = Rate(k, n).interval
    assert (lo, hi) == pytest.approx(wilson(k, n), abs=1e-9)
    assert 0 <= lo <= k / n <= hi <= 1


def test_rate_without_samples():
    r = Rate(0, 0)
    assert r.value is None and r.interval is None and "n/a" in str(r)
    assert str(Rate(45, 50)) == "90.0% (45/50), 95% CI 78.6-95.7%"


def result(*components, verdict=None, alarm=None, hits=None, error=None, possible=None):
    """A result object with the given components (name, class, alarm)."""
    cat = load_catalogue()
    comps = [{"name": n, "class": cat[n].cls, "alarm": cat[n].alarm, "score": 0.9} for n in components]
    r = {"verdict": verdict or ("mixture" if len(comps) > 1 else "identified" if comps else "no-match"),
         "alarm": any(c["alarm"] for c in comps) if alarm is None else alarm,
         "components": comps, "hits": [{"name": n} for n in (hits or components)]}
    if error:
        r["error"] = error
    if possible:
        r["possible_alarm_classes"] = possible
    return r


def test_alarm_rates_top1_and_confusion_matrices():
    m = Metrics(load_catalogue())
    assert m.add(result("fentanyl"), {"fentanyl": 1.0}) == []  # TP, correct
    assert m.add(result("caffeine"), {"fentanyl": 1.0}) == ["missed alarm", "missed: fentanyl", "extra: caffeine"]
    assert m.add(result(verdict="inconclusive", possible=["fentanyl-analogue"]),
                 {"carfentanil": 1.0}) == ["missed alarm", "missed: carfentanil"]
    assert m.add(result("mannitol"), {"mannitol": 1.0}) == []  # TN, correct
    assert m.add(result("xylazine"), {"lactose": 1.0}) == ["false alarm", "missed: lactose", "extra: xylazine"]
    assert m.add(result("lactose", hits=["sucrose", "lactose"]), {"lactose": 1.0}) == []  # right, hit 1 wrong
    assert m.add(result(), {}) == []  # blank, no-match: right
    assert m.add(result("caffeine"), {}) == ["extra: caffeine"]  # blank, something reported
    assert m.add(result("heroin", "mannitol"), {"heroin": 0.3, "mannitol": 0.7}) == []  # mixture, TP
    assert m.add(result(error="unreadable"), {"fentanyl": 1.0}) == []  # left out
    assert m.add(result("fentanyl"), None) == []  # unlabelled: not counted

    assert m.labelled == 10 and m.errors == 1
    assert (m.sensitivity().k, m.sensitivity().n) == (2, 4)  # fentanyl, carfentanil x2, heroin mixture
    assert (m.specificity().k, m.specificity().n) == (4, 5)
    assert m.cautioned_misses == 1
    assert (m.top1_accuracy().k, m.top1_accuracy().n) == (3, 6)
    assert (m.hit1_accuracy().k, m.hit1_accuracy().n) == (2, 6)

    rows, cols, cells = m.substances.table()
    assert rows[-1] == BLANK and "(inconclusive)" in cols and "(no-match)" in cols
    cell = lambda r, c: cells[rows.index(r)][cols.index(c)]  # noqa: E731
    assert cell("fentanyl", "fentanyl") == 1 and cell("fentanyl", "caffeine") == 1
    assert cell("carfentanil", "(inconclusive)") == 1 and cell(BLANK, "(no-match)") == 1
    assert cell(BLANK, "caffeine") == 1 and sum(map(sum, cells)) == 8  # mixtures are not in the matrix
    assert m.substances.correct(BLANK, "(no-match)") and not m.substances.correct("fentanyl", "caffeine")
    crow, ccol, ccells = m.classes.table()
    assert ccells[crow.index("fentanyl-analogue")][ccol.index("fentanyl-analogue")] == 1
    assert ccells[crow.index("cutting-agent")][ccol.index("xylazine-class")] == 1

    per = {r["label"]: r for r in m.substance_ovr.rows()}
    assert (per["heroin"]["tp"], per["mannitol"]["tp"]) == (1, 2)  # the mixture counts for both
    assert (per["fentanyl"]["tp"], per["fentanyl"]["fn"]) == (1, 1)
    assert per["caffeine"]["fp"] == 2 and per["caffeine"]["precision"] == 0.0
    text = "\n".join(m.lines())
    assert "alarm sensitivity: 50.0% (2/4), 95% CI" in text and "(1 not analysable, left out)" in text
    assert "missed alarms with a caution" in text and "confusion matrix per class" in text


def test_unknown_expected_names_are_not_alarms():
    m = Metrics(load_catalogue())
    m.add(result(), {"unobtainium": None})
    assert m.specificity().n == 1 and m.sensitivity().n == 0
    assert m.substances.table()[0] == ["unobtainium"]


def test_matrix_text_has_a_legend():
    m = Metrics(load_catalogue())
    m.add(result("caffeine"), {"caffeine": 1.0})
    m.add(result(), {"caffeine": 1.0})
    head, row, legend = format_matrix(m.substances)
    assert row.split() == ["caffeine", "1", "1"] and legend == "columns: 1=caffeine, 2=(no-match)"


def _res(verdict, alarm, top, sha, i=0):
    return {"source": "r.h5", "entry": "e", "index": i, "verdict": verdict, "alarm": alarm,
            "components": [{"name": top}] if top else [], "library": {"sha256": sha}}


def test_changed_fields():
    assert changed_fields(_res("identified", True, "fentanyl", "a"), _res("identified", True, "fentanyl", "b")) == []
    assert changed_fields(_res("identified", True, "fentanyl", "a"),
                          _res("mixture", True, "fentanyl", "b")) == ["verdict"]
    assert changed_fields(_res("identified", False, "mannitol", "a"),
                          _res("no-match", False, None, "b")) == ["verdict", "top"]
    assert changed_fields(_res("identified", True, "fentanyl", "a"),
                          _res("identified", True, "carfentanil", "b")) == ["top"]


def test_regression_lists_every_change_in_order():
    reg = Regression()
    assert reg.add(None, _res("identified", True, "fentanyl", "new")) is None
    reg.add(_res("identified", True, "fentanyl", "old", 0), _res("identified", True, "fentanyl", "new", 0))
    reg.add(_res("identified", False, "mannitol", "old", 1), _res("identified", True, "xylazine", "new", 1))
    reg.add(_res("no-match", False, None, "older", 2), _res("identified", False, "caffeine", "new", 2))
    assert (reg.compared, reg.changed, reg.without_previous) == (3, 2, 1)
    assert reg.by_field == {"alarm": 1, "top": 2, "verdict": 1}
    assert reg.libraries == {"old": 2, "older": 1} and reg.current_library == "new"
    changes = list(reg.changes())
    assert [c["index"] for c in changes] == [1, 2] and changes[0]["changed"] == ["alarm", "top"]
    assert list(reg.changes()) == changes  # can be read again
    lines = reg.lines()
    assert "3 spectra compared" in lines[0] and "old (2)" in lines[0] and "older (1)" in lines[0]
    # in words (item 14.16), not "alarm True"
    assert lines[1] == ("  r.h5#e[1]: was identified, no alarm, top mannitol; now identified, ALARM, top xylazine "
                        "(changed: alarm, top component; library old -> new)")
    assert lines[2].startswith("  r.h5#e[2]: was no-match, no alarm, top none; now identified")
    assert "2 changed (verdict in 1, alarm in 1, top component in 2)" in lines[0]
    assert "True" not in "\n".join(lines) and "False" not in "\n".join(lines)
    short = reg.lines(limit=1)
    assert len(short) == 3 and "1 more (--show-all lists every one)" in short[2]
    reg.close()


def test_regression_names_the_alarm_classes():
    from fol.qa.regression import describe, side

    r = _res("identified", True, "fentanyl", "a")
    r["alarm_classes"] = ["fentanyl-analogue"]
    assert describe(side(r)) == "identified, ALARM (fentanyl-analogue), top fentanyl"


def test_every_component_difference_is_named_missed_extra_and_wrong_member():
    """Item 14.5: a wrong member of the right class, a spurious extra component, a missed one
    are disagreements even when the alarm is right (before, only alarm errors were counted)."""
    cat = load_catalogue()
    m = Metrics(cat)
    # the right class (nitazene: alarm right) but the wrong compound
    assert m.add(result("metonitazene", "caffeine"), {"isotonitazene": 0.1, "caffeine": 0.9}) == [
        f"wrong member: metonitazene reported for isotonitazene ({cat['isotonitazene'].cls})"]
    # a spurious component on a correct alarm
    assert m.add(result("xylazine", "lidocaine", "metodesnitazene"), {"xylazine": 0.5, "lidocaine": 0.5}) == [
        "extra: metodesnitazene"]
    # a component missed although the alarm is raised by the other one
    assert m.add(result("fentanyl"), {"fentanyl": 0.3, "lidocaine": 0.7}) == ["missed: lidocaine"]
    # an unlisted compound of the right class stands for the expected one, but is named
    unlisted = {"name": "unlisted fentanyl-class compound", "class": "fentanyl-analogue", "alarm": True,
                "score": 0.5, "class_only": True}
    r = result("mannitol")
    r["components"].append(unlisted)
    r["alarm"] = True
    assert m.add(r, {"carfentanil": 0.1, "mannitol": 0.9}) == [
        "class only: carfentanil reported only as an unlisted fentanyl-analogue compound"]
    assert m.differing == 4
    assert dict(m.differences) == {"wrong member": 1, "extra": 1, "missed": 1, "class only": 1}
    assert any("components differ from the ground truth in 4 spectra" in line for line in m.lines())
    assert component_differences({"caffeine"}, [], lambda n: cat[n].cls) == [("missed", "caffeine")]
