"""Hits and components per substance (several measurements of one substance), and the suspected-class caution."""

from __future__ import annotations

import numpy as np

from fol.io.library import make_section
from fol.preprocess.recipe import default_recipe
from fol.search import substances


def _section(peak_library_rows):
    grid, names, raw = peak_library_rows
    names = ["A", "A", "B", "C"]
    meta = [{"enfsi_id": 1, "validated": True, "form": "HCl"}, {"enfsi_id": 2, "validated": False, "form": "base"},
            {"file": "b.csv"}, {"file": "c.csv", "suspected_class": "fentanyl-analogue", "suspected_probability": 0.91}]
    return make_section("raman", grid, raw[:4], names, ["x", "x", "y", "unknown"], [True, True, False, False],
                        ["imported:a"] * 4, ["s"] * 4, default_recipe("raman"), meta=meta)


def test_hits_one_per_substance_best_measurement_named(peak_library_rows):
    s = _section(peak_library_rows)
    hits = [{"name": "A", "score": 0.99}, {"name": "A", "score": 0.97}, {"name": "B", "score": 0.5}]
    out = substances.per_substance(s, hits, [1, 0, 2])
    assert [h["name"] for h in out] == ["A", "B"]
    assert out[0]["score"] == 0.99 and out[0]["measurements"] == 2 and out[0]["entry"] == "ENFSI #2n, base (row 1)"


def test_components_of_one_substance_merge(peak_library_rows):
    s = _section(peak_library_rows)
    comps = [{"name": "A", "score": 0.9, "fraction": 0.3, "confidence": 0.8},
             {"name": "B", "score": 0.95, "fraction": 0.5, "confidence": 0.9},
             {"name": "A", "score": 0.92, "fraction": 0.2, "confidence": 0.6}]
    _, out = substances.apply(s, [], [], comps, [0, 2, 1])
    a = next(c for c in out if c["name"] == "A")
    assert len(out) == 2 and a["fraction"] == 0.5 and a["score"] == 0.92 and a["confidence"] == 0.8
    assert substances.apply(s, [], [], None, [])[1] is None


def test_suspected_entry_cautions(peak_library_rows):
    s = _section(peak_library_rows)
    (c,) = substances.per_substance(s, [{"name": "C", "score": 0.99, "alarm": False, "class": "unknown"}], [3])
    r = substances.caution({"verdict": "identified", "components": [c], "hits": [c], "flags": []})
    assert r["possible_alarm_classes"] == ["fentanyl-analogue"] and "suspected_class" in r["flags"]
    assert "C is not classified" in r["caution"] and "0.91" in r["caution"]
    plain = {"verdict": "identified", "components": [{"name": "B", "alarm": False}], "hits": [], "flags": []}
    assert "caution" not in substances.caution(plain)


def test_library_meta_round_trip_and_hash(tmp_path, peak_library_rows):
    from fol.io.library import load_library, write_library

    s = _section(peak_library_rows)
    sha = write_library(tmp_path / "l.h5", {"raman": s}, name="t")
    back = load_library(tmp_path / "l.h5").section("raman")
    assert back.meta == s.meta and back.entry_meta(3)["suspected_class"] == "fentanyl-analogue"
    s.meta[0]["form"] = "sulphate"
    assert write_library(tmp_path / "m.h5", {"raman": s}, name="t") != sha  # meta is covered by the hash
    assert np.array_equal(back.subset([0, 3]).entry_meta(1)["suspected_class"] == "fentanyl-analogue", True)
