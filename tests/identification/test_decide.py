"""Decision rules: verdicts, alarms and the close-call safety rule."""

import pytest

from fol.identification.decide import DecisionPolicy, base_result, decide, error_result

WHERE = dict(source="s.h5", entry="scan_0000", index=0, technique="raman", library_ref={"name": "t", "sha256": "0"})
GOOD = {"snr": 80.0, "saturated": False, "fluorescence": 0.1, "flags": []}
POOR = {"snr": 3.0, "saturated": False, "fluorescence": 0.1, "flags": ["low_snr"]}


def hit(name, cls, score, alarm, prov="measured"):
    return {"name": name, "class": cls, "score": score, "alarm": alarm, "provenance": prov}


FENT = hit("fentanyl", "fentanyl-analogue", 0.95, True)
MANN = hit("mannitol", "cutting-agent", 0.94, False)
SORB = hit("sorbitol", "cutting-agent", 0.60, False)


def test_identified_with_alarm():
    r = decide(base_result(**WHERE), [FENT, SORB], 0.35, SORB, GOOD)
    assert r["verdict"] == "identified" and r["alarm"] is True
    assert r["alarm_classes"] == ["fentanyl-analogue"]
    assert r["components"][0]["name"] == "fentanyl" and r["components"][0]["fraction"] == 1.0


def test_benign_identified_without_alarm():
    r = decide(base_result(**WHERE), [MANN, SORB], 0.34, SORB, GOOD)
    assert r["verdict"] == "identified" and r["alarm"] is False and r["alarm_classes"] == []


def test_close_call_across_alarm_status_is_inconclusive_and_names_the_risk():
    r = decide(base_result(**WHERE), [MANN, FENT], 0.005, FENT, GOOD)
    assert r["verdict"] == "inconclusive" and r["components"] == []
    assert r["possible_alarm_classes"] == ["fentanyl-analogue"]
    assert "ambiguous" in r["flags"]


def test_close_call_within_alarm_status_is_identified_and_flagged():
    iso = hit("para-fluorofentanyl", "fentanyl-analogue", 0.945, True)
    r = decide(base_result(**WHERE), [FENT, iso], 0.005, iso, GOOD)
    assert r["verdict"] == "identified" and r["alarm"] and "ambiguous" in r["flags"]


@pytest.mark.parametrize("quality,verdict", [(GOOD, "no-match"), (POOR, "inconclusive")])
def test_weak_match(quality, verdict):
    low = hit("mannitol", "cutting-agent", 0.4, False)
    r = decide(base_result(**WHERE), [low], 0.2, None, quality, DecisionPolicy(min_score=0.8))
    assert r["verdict"] == verdict and r["alarm"] is False and r["components"] == []


def test_mixture_components_raise_alarm_from_any_component():
    comps = [{**MANN, "fraction": 0.9}, {**FENT, "fraction": 0.1}]
    r = decide(base_result(**WHERE), [MANN, FENT], 0.01, FENT, GOOD, components=comps)
    assert r["verdict"] == "mixture" and r["alarm"] and r["alarm_classes"] == ["fentanyl-analogue"]


def test_computed_reference_is_flagged():
    r = decide(base_result(**WHERE), [hit("fentanyl", "fentanyl-analogue", 0.9, True, "computed")], 0.3, None, GOOD)
    assert "computed_reference" in r["flags"]


def test_error_result_has_required_keys():
    r = error_result("bad file", **WHERE)
    for key in ("format_version", "source", "entry", "index", "technique", "verdict", "alarm", "alarm_classes",
                "components", "hits", "quality", "library", "fol_version"):
        assert key in r
    assert r["verdict"] == "inconclusive" and r["error"] == "bad file" and r["hits"] == []
