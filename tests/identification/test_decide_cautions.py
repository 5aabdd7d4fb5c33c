"""Issue 14 item 1 (a poor measurement never gets a clean no-alarm call, with advice per flag) and
issue 12 item 3 (a CAUTION names the suspected substances with class, fraction and confidence)."""

import pytest

from fol.cli.display import format_result
from fol.identification.decide import ADVICE, DecisionPolicy, base_result, decide

WHERE = dict(source="s.h5", entry="scan_0000", index=0, technique="raman", library_ref={"name": "t", "sha256": "0"})
GOOD = {"snr": 80.0, "saturated": False, "fluorescence": 0.1, "flags": []}


def quality(*flags, snr=80.0):
    return {"snr": snr, "saturated": "saturated" in flags, "fluorescence": 0.95 if "high_fluorescence" in flags else 0.1,
            "flags": list(flags)}


def comp(name, cls, alarm, fraction, confidence, score=0.9):
    return {"name": name, "class": cls, "alarm": alarm, "score": score, "provenance": "measured",
            "fraction": fraction, "confidence": confidence}


CAFF = comp("caffeine", "cutting-agent", False, 0.9, 0.99)
FENT_WEAK = comp("fentanyl", "fentanyl-analogue", True, 0.1, 0.5, score=0.4)
FENT_OK = comp("fentanyl", "fentanyl-analogue", True, 0.1, 0.95, score=0.6)
HITS = [{"name": "caffeine", "class": "cutting-agent", "score": 0.86, "alarm": False, "provenance": "measured"}]


@pytest.mark.parametrize("flag", ["saturated", "low_snr", "high_fluorescence"])
def test_a_poor_spectrum_with_a_benign_match_is_inconclusive_with_advice(flag):
    """The issue's case: 'identified caffeine, score 0.863 ... flags: saturated' with no alarm and no caution."""
    r = decide(base_result(**WHERE), HITS, 0.3, None, quality(flag), components=[CAFF])
    assert r["verdict"] == "inconclusive" and r["alarm"] is False and r["components"] == []
    assert r["tentative_components"][0]["name"] == "caffeine"
    assert r["advice"] == [ADVICE[flag]] and "poor_signal" in r["flags"]


def test_saturation_advice_says_what_to_lower():
    assert "laser power" in ADVICE["saturated"] and "integration" in ADVICE["saturated"]


def test_an_alarm_in_a_poor_spectrum_stands_and_asks_for_a_new_measurement():
    r = decide(base_result(**WHERE), HITS, 0.3, None, quality("saturated"), components=[CAFF, FENT_OK])
    assert r["alarm"] and r["alarm_classes"] == ["fentanyl-analogue"] and r["verdict"] == "mixture"
    assert r["advice"] == [ADVICE["saturated"]]


def test_a_poor_spectrum_without_a_match_is_inconclusive_not_no_match():
    low = [{**HITS[0], "score": 0.3}]
    r = decide(base_result(**WHERE), low, 0.1, None, quality("high_fluorescence"), DecisionPolicy(min_score=0.8))
    assert r["verdict"] == "inconclusive" and r["advice"]


def test_a_good_spectrum_gets_no_advice():
    r = decide(base_result(**WHERE), HITS, 0.3, None, GOOD, components=[CAFF])
    assert r["verdict"] == "identified" and "advice" not in r and "tentative_components" not in r


def test_a_caution_names_the_suspected_substance_with_fraction_and_confidence():
    r = decide(base_result(**WHERE), HITS, 0.3, None, GOOD, components=[CAFF, FENT_WEAK])
    assert r["alarm"] is False and r["possible_alarm_classes"] == ["fentanyl-analogue"]
    assert r["possible_components"] == [{"name": "fentanyl", "class": "fentanyl-analogue", "fraction": 0.1,
                                         "confidence": 0.5}]
    text = format_result(r)
    assert "CAUTION" in text and "possibly fentanyl (fentanyl-analogue), ~10% of signal, confidence 0.50" in text


def test_a_candidate_below_the_caution_confidence_is_neither_reported_nor_cautioned():
    faint = {**FENT_WEAK, "confidence": 0.05}
    r = decide(base_result(**WHERE), HITS, 0.3, None, GOOD, DecisionPolicy(caution_confidence=0.2),
               components=[CAFF, faint])
    assert r["verdict"] == "identified" and not r["alarm"]
    assert "possible_components" not in r and "possible_alarm_classes" not in r


def test_close_call_caution_names_the_rival():
    fent = {"name": "fentanyl", "class": "fentanyl-analogue", "score": 0.85, "alarm": True, "provenance": "measured"}
    r = decide(base_result(**WHERE), [HITS[0], fent], 0.005, fent, GOOD)
    assert r["verdict"] == "inconclusive" and r["possible_components"][0]["name"] == "fentanyl"
    assert "advice" not in r
