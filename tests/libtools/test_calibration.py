"""Per-library calibration: fitted from the library, stored in it, hashed, used by Identifier."""

import json
import time

import h5py
import numpy as np
import pytest

from builders import lorentz
from fol.cli import main
from fol.identification.confidence import DEFAULT, Calibration, section_calibration
from fol.identification.decide import DecisionPolicy
from fol.errors import LibraryError
from fol.io.library import store_calibrations, with_calibrations
from fol.qa.evaluation import calibrate_section, choose_threshold
from fol.io.library import load_library, make_section, write_library
from fol.identification.pipeline import Identifier
from fol.preprocess.recipe import default_recipe
from fol.spectrum import Spectrum

CAL = {"format": "fol-calibration", "version": 1, "seed": 1234,
       "confidence": {"features": DEFAULT["features"], "coef": [1.0, 0.0, 0.0, 0.0, 0.0, 0.0], "intercept": -0.5},
       "policy": {"min_confidence": 0.55}}


def small_section():
    """A synthetic Raman section: 6 analogues sharing bands, 6 cutting agents, a solvent, each with own bands."""
    rng = np.random.default_rng(3)
    grid = np.arange(200, 2000.1, 2.0)
    family = rng.uniform(300, 1900, 5)
    rows, names, classes = [], [], []
    for i in range(13):
        own = rng.uniform(250, 1950, 5)
        kind = "fentanyl-analogue" if i < 6 else "cutting-agent" if i < 12 else "solvent"
        centres = np.r_[family + rng.normal(0, 4, family.size), own[:3]] if i < 6 else own
        rows.append(lorentz(grid, centres, rng.uniform(0.3, 1.0, centres.size), 10.0))
        names.append(f"{'ana' if i < 6 else 'cut' if i < 12 else 'solv'}{i}")
        classes.append(kind)
    return make_section("raman", grid, np.vstack(rows), names, classes, [c == "fentanyl-analogue" for c in classes],
                        ["computed"] * 13, ["test"] * 13, default_recipe("raman"))


@pytest.fixture
def small_library(tmp_path):
    path = tmp_path / "small.h5"
    write_library(path, {"raman": small_section()}, name="small")
    return path


def test_calibration_round_trips_through_the_file_and_is_covered_by_the_hash(small_library):
    before = load_library(small_library).sha256
    sha = store_calibrations(small_library, {"raman": CAL})
    lib = load_library(small_library)
    assert sha == lib.sha256 != before
    cal, policy = section_calibration(lib.section("raman"))
    assert np.allclose(cal.coef, CAL["confidence"]["coef"]) and cal.intercept == -0.5
    assert policy == {"min_confidence": 0.55}
    with h5py.File(small_library, "r+") as f:  # tamper: a laxer threshold, hash left as it was
        f["raman"].attrs["calibration"] = json.dumps({**CAL, "policy": {"min_confidence": 0.1}})
    with pytest.raises(LibraryError, match="SHA-256"):
        load_library(small_library)


def test_a_file_without_calibration_keeps_its_hash_and_gets_the_defaults(small_library):
    lib = load_library(small_library)
    assert lib.section("raman").calibration_json == ""
    assert section_calibration(lib.section("raman")) is None
    policy, cal = Identifier(lib).settings("raman")
    assert policy == DecisionPolicy() and np.allclose(cal.coef, DEFAULT["coef"])


def test_malformed_calibration_is_refused_with_the_section_named(small_library):
    lib = with_calibrations(load_library(small_library), {"raman": {**CAL, "policy": {"min_confidenz": 0.5}}})
    with pytest.raises(LibraryError, match="raman section: malformed calibration"):
        section_calibration(lib.section("raman"))


def test_identifier_uses_the_sections_calibration_and_threshold(small_library):
    store_calibrations(small_library, {"raman": CAL})
    lib = load_library(small_library)
    ident = Identifier(lib)
    policy, cal = ident.settings("raman")
    assert policy.min_confidence == 0.55 and policy.min_component_score == DecisionPolicy().min_component_score
    sec = lib.section("raman")
    rng = np.random.default_rng(2)
    y = sec.raw[7] / sec.raw[7].max() + 0.2 + 0.002 * rng.standard_normal(sec.grid.size)
    r = ident.analyse_spectrum(Spectrum(sec.grid, y, "raman"), source="t", entry="e")
    c = r["components"][0]
    assert c["name"] == "cut7"
    # the stored model (probability = logistic(score - 0.5)) gives the confidence, not DEFAULT
    assert c["confidence"] == pytest.approx(float(Calibration.from_dict(CAL["confidence"]).probability(
        np.array([c["score"], 0, 0, 0, 0, 0]))[0]), abs=1e-3)
    # explicit arguments still win over the stored ones
    assert Identifier(lib, policy=DecisionPolicy()).settings("raman")[0].min_confidence == 0.7


def test_threshold_choice_meets_the_false_alarm_limit_and_maximises_sensitivity():
    t = np.array([0.5, 0.6, 0.7, 0.8, 0.9])
    fa = np.array([0.05, 0.02, 0.01, 0.0, 0.0])
    sens = np.array([1.0, 0.9, 0.8, 0.8, 0.5])
    assert t[choose_threshold(fa, sens)] == 0.8  # 0.7 and 0.8 tie on sensitivity: fewer false alarms
    assert t[choose_threshold(fa, sens, np.array([1.0, 1.0, 0.9, 0.8, 0.5]))] == 0.7  # unless 0.7 does better at 10 %
    assert t[choose_threshold(np.array([0.2, 0.1, 0.05, 0.05, 0.04]), sens)] == 0.9  # none meets it: fewest


def test_small_library_calibrates_in_seconds_and_the_cli_stores_it(small_library, tmp_path):
    lib = load_library(small_library)
    t0 = time.perf_counter()
    stages = []
    rec = calibrate_section(lib, "raman", tmp_path, n=1, n_spectra=60, progress=lambda d, n: stages.append((d, n)))
    assert stages[0] == (0, 5) and stages[-1] == (5, 5) and len(stages) == 6  # progress for the CLI (issue 14.15)
    assert time.perf_counter() - t0 < 30
    json.dumps(rec, allow_nan=False)  # plain JSON numbers
    dev = rec["development"]
    assert 0.3 <= rec["policy"]["min_confidence"] <= 0.99
    assert dev["false_alarm"][1] > 0 and dev["sensitivity_5pct"][1] > 0
    with pytest.raises(ValueError, match="evaluation seed"):
        calibrate_section(lib, "raman", tmp_path, seed=2026)
    out = tmp_path / "calibrated.h5"
    assert main(["library", "calibrate", str(small_library), "--n", "1", "--spectra", "60", "--out", str(out)]) == 0
    assert load_library(small_library).section("raman").calibration_json == ""  # source untouched
    stored = json.loads(load_library(out).section("raman").calibration_json)
    assert stored["seed"] == 1234 and set(stored["policy"]) == {"min_confidence"}
    assert stored["development"]["calibration_spectra"] == 60 and stored["development"]["max_false_alarm"] == 0.01


def test_re_deciding_ungated_evidence_equals_analysing_at_that_threshold(small_library):
    """What calibrate_section relies on: one ungated pass + decide_row == analyse at each threshold."""
    from dataclasses import replace

    from fol.spectrum import SpectrumBatch

    lib = load_library(small_library)
    sec = lib.section("raman")
    full = sec.raw / sec.raw.max(axis=1, keepdims=True)
    reduced = replace(lib, sha256="small-without-ana2", sections={"raman": sec.subset(np.arange(13) != 2)})
    rng = np.random.default_rng(9)
    rows = [f * full[a] + (1 - f) * full[c] + 0.2 + 0.003 * rng.standard_normal(sec.grid.size)
            for a, c, f in [(2, 7, 0.3), (1, 8, 0.05), (3, 9, 0.02), (0, 10, 0.5), (4, 11, 0.1), (1, 7, 0.01)]]
    rows.append(full[12] + 0.2 + 0.003 * rng.standard_normal(sec.grid.size))
    batch = SpectrumBatch(sec.grid, np.vstack(rows), "raman")
    evidence = Identifier(reduced).evidence(batch, source="t", entry="e", gate=None)
    seen = set()
    for t in (0.3, 0.9, 0.95):
        pol = DecisionPolicy(min_confidence=t)
        direct = Identifier(reduced, policy=pol).analyse(batch, source="t", entry="e")
        redecided = [Identifier(reduced, policy=pol).decide_row(ev) for ev in evidence]
        assert redecided == direct
        seen.add(tuple((r["verdict"], tuple(c["name"] for c in r["components"])) for r in direct))
    assert len(seen) > 1, "the thresholds must change some decision for this test to mean anything"
