"""``fol library import``: class decisions, lab catalogue, name map, class model, refusals, dedupe, export round trip."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from builders import REAL

from fol.catalogue import (
    Catalogue,
    class_from_category,
    class_from_name,
    load_catalogue,
    merge,
)
from fol.cli import main
from fol.io.library import load_library
from fol.libtools.importing import import_library, read_name_map

needs_real = pytest.mark.skipif(not (REAL / "enfsi_ir").is_dir(), reason="real ENFSI records absent")


def _enfsi(*stems):
    return [str(REAL / "enfsi_ir" / f"{s}.json") for s in stems]


def test_name_rules_and_categories():
    assert class_from_name("N-Methylcarfentanyl")[:2] == ("fentanyl-analogue", True)
    assert class_from_name("Isofentanyl (cis)")[:2] == ("fentanyl-analogue", True)
    assert class_from_name("Brorphine-fentanil")[:2] == ("fentanyl-analogue", True)
    for n in ("F-Etonitazepyne", "Etonitazepipne", "Isotonitazen", "N-desethyl isotonitazene"):
        assert class_from_name(n)[:2] == ("nitazene", True), n
    assert class_from_name("Lactose") is None and class_from_name("Fentanol") is None
    assert class_from_category("opioids")[:2] == ("opioid", True)
    assert class_from_category("cutting-agents")[:2] == ("cutting-agent", False) and class_from_category("other") is None


def test_lab_catalogue_merges_and_reports_conflicts(tmp_path):
    lab = tmp_path / "lab.csv"
    lab.write_text("name,class,alarm,synonyms\n"
                   "Brorphine,opioid,true,bromorphine\n"
                   "fentanyl,fentanyl-analogue,false,\n"          # alarm downgrade: refused
                   "caffeine,stimulant,false,guaranine;lactose\n")  # class change; synonym of another substance
    base = load_catalogue()
    merged, conflicts = merge(base, Catalogue.load(lab, ("name", "class", "alarm")))
    assert merged.resolve("bromorphine") == "Brorphine" and merged["Brorphine"].alarm
    assert merged["fentanyl"].alarm is True
    assert merged["caffeine"].cls == "stimulant" and merged.resolve("guaranine") == "caffeine"
    assert merged.resolve("lactose") == base.resolve("lactose")
    text = "\n".join(conflicts)
    assert "switch off the alarm of 'fentanyl'" in text and "gives class 'stimulant'" in text
    assert "'lactose' of 'caffeine' already names" in text
    assert len(merged) == len(base) + 1


@needs_real
def test_plain_enfsi_import_classifies_and_tables_the_rest(tmp_path):
    rep = import_library(sorted(str(p) for p in (REAL / "enfsi_ir").glob("*.json")), tmp_path / "e.h5")
    by = {d["name"]: d for d in rep.decisions}
    assert by["N-Methylcarfentanyl"]["class"] == "fentanyl-analogue" and by["N-Methylcarfentanyl"]["alarm"]
    assert by["N-Methylcarfentanyl"]["class_source"].startswith("name rule")
    assert by["F-Etonitazepyne"]["class"] == "nitazene"
    assert by["6-acetyl-codeine -H2O"]["class"] == "opioid" and "source category" in by["6-acetyl-codeine -H2O"]["class_source"]
    assert by["fentanyl"]["class_source"] == "catalogue"
    unknown = {d["name"] for d in rep.unknown()}
    assert unknown == {"Hydrocarbonate", "Fenylacetonitril (benzylcyanide, benzylnitril)"}
    assert all(d["class_model_probability"] is not None for d in rep.unknown())
    s = load_library(tmp_path / "e.h5").section("ftir")
    j = s.names.index("N-Methylcarfentanyl")
    assert s.entry_meta(j)["class_source"].startswith("name rule") and s.entry_meta(j)["enfsi_id"] == 2708


@needs_real
def test_name_map_with_classes_and_lab_catalogue(tmp_path):
    nm = tmp_path / "map.csv"
    nm.write_text("name,class,alarm\nHydrocarbonate,cutting-agent,false\n")
    lab = tmp_path / "lab.csv"
    lab.write_text('name,class,alarm,synonyms\nbenzyl cyanide,precursor-other,false,'
                   '"Fenylacetonitril (benzylcyanide, benzylnitril)"\n')
    mapping = read_name_map(nm)
    assert mapping.to_class["hydrocarbonate"][:2] == ("cutting-agent", False)
    rep = import_library(_enfsi("hydrocarbonate", "fenylacetonitril_benzylcyanide_benzylnitril", "fentanyl",
                                "acetylfentanyl", "d_lactose"), tmp_path / "m.h5", name_map=nm, catalogues=[lab])
    by = {d["file"]: d for d in rep.decisions}
    assert by["hydrocarbonate.json"]["class"] == "cutting-agent" and by["hydrocarbonate.json"]["class_source"].startswith("name map")
    d = by["fenylacetonitril_benzylcyanide_benzylnitril.json"]
    assert d["name"] == "benzyl cyanide" and d["class"] == "precursor-other" and d["class_source"] == "catalogue"
    assert rep.unknown() == []


@needs_real
def test_class_model_flags_an_unclassified_fentanyl_analogue_and_results_caution(tmp_path):
    """An analogue whose name carries no rule (renamed in a lab file) is scored at import; a match cautions."""
    import json

    from drivers import open_source
    from drivers.simulator import ReferenceSet
    from fol.identification.pipeline import Identifier

    src = tmp_path / "renamed.json"
    record = json.loads((REAL / "enfsi_ir/cyclopropylfentanyl.json").read_text())
    record.update(name="Compound X-17", id="x17", aliases=[], category="other", iupac="")
    src.write_text(json.dumps(record))
    files = [str(p) for p in sorted((REAL / "enfsi_ir").glob("*.json")) if p.stem != "cyclopropylfentanyl"]
    rep = import_library([*files, str(src)], tmp_path / "x.h5")
    d = next(d for d in rep.decisions if d["name"] == "Compound X-17")
    assert d["class"] == "unknown" and d["suspected_class"] == "fentanyl-analogue" and d["class_model_probability"] >= 0.8
    lib = load_library(tmp_path / "x.h5")
    section = lib.section("ftir")
    with open_source("sim:Compound X-17", seed=5, refset=ReferenceSet.from_library(section)) as s:
        spectrum = s.acquire()
    r = Identifier(lib).analyse_spectrum(spectrum, source="sim", entry="x")
    assert r["components"][0]["name"] == "Compound X-17"
    assert "fentanyl-analogue" in r["possible_alarm_classes"] and "suspected_class" in r["flags"]
    assert "Compound X-17" in r["caution"]


@needs_real
def test_refused_files_fail_the_batch_unless_skip_bad(tmp_path, capsys):
    bad = REAL / "vendor_formats/spectrochempy/galacticdata/HOLMIUM.SPC"
    args = ["library", "import", *_enfsi("fentanyl", "d_lactose"), str(bad), "--out", str(tmp_path / "b.h5")]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "HOLMIUM.SPC" in err and "nothing written" in err and not (tmp_path / "b.h5").exists()
    assert main([*args, "--skip-bad"]) == 0
    out = capsys.readouterr()
    assert "1 refused" in out.out and len(load_library(tmp_path / "b.h5").section("ftir")) == 2


@needs_real
def test_dedupe_and_duplicate_names(tmp_path):
    a = tmp_path / "a"
    a.mkdir()
    for i in range(2):
        shutil.copy(REAL / "enfsi_ir/fentanyl.json", a / f"fentanyl_{i}.json")
    files = [*map(str, sorted(a.glob("*.json"))), *_enfsi("d_lactose", "acetylfentanyl")]
    rep = import_library(files, tmp_path / "d.h5", dedupe=True)
    assert rep.counts["ftir"] == 3 and any(d.startswith("duplicate: fentanyl_1.json") for d in rep.duplicates)
    rep = import_library(files, tmp_path / "n.h5")
    assert rep.counts["ftir"] == 4
    pe = sorted(str(p) for p in (REAL / "vendor_formats/perkinelmer_ir_jcamp").glob("*.DX"))
    rep = import_library(pe, tmp_path / "pe.h5")
    assert len({d["name"] for d in rep.decisions}) == 15  # file names, not operators


@needs_real
def test_export_reimports_without_options_and_cli_tools(tmp_path, capsys):
    lib_path = tmp_path / "e.h5"
    files = [*_enfsi("fentanyl", "d_lactose", "n_methylcarfentanyl", "heroin")]
    wasatch = REAL / "raman_wasatch_enlighten/set1_WP-01990_WP-785XS_2026-04-06"
    files += [str(wasatch / "acetaminophen.csv"), str(wasatch / "caffeine.csv")]
    assert main(["library", "import", *files, "--out", str(lib_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "N-Methylcarfentanyl" in out and "name rule" in out
    for fmt in ("csv", "jcamp"):
        d = tmp_path / fmt
        assert main(["library", "export", str(lib_path), "--format", fmt, "--out", str(d)]) == 0
        back = tmp_path / f"back_{fmt}.h5"
        assert main(["library", "import", *map(str, sorted(d.iterdir())), "--out", str(back), "--no-progress"]) == 0
        b, a = load_library(back), load_library(lib_path)
        for t in ("raman", "ftir"):
            assert sorted(b.section(t).names) == sorted(a.section(t).names)
            j = b.section(t).names.index(a.section(t).names[0])
            np.testing.assert_allclose(b.section(t).raw[j], a.section(t).raw[0], rtol=1e-4, atol=1e-4 * a.section(t).raw[0].max())
        nm = b.section("ftir").names.index("N-Methylcarfentanyl")
        assert b.section("ftir").classes[nm] == "fentanyl-analogue"
    capsys.readouterr()
    assert main(["library", "list", str(lib_path), "--search", "phenylethyl"]) == 0  # a catalogue synonym of fentanyl
    out = capsys.readouterr().out
    assert "fentanyl" in out and "lactose" not in out
    assert main(["library", "list", str(lib_path), "--search", "nothing-like-this"]) == 1
    assert main(["library", "export", str(lib_path), "--name", "diamorphine", "--out", str(tmp_path / "one")]) == 0
    assert [p.name for p in (tmp_path / "one").iterdir()] == ["heroin_ftir.csv"]
    capsys.readouterr()
    assert main(["library", "info", str(lib_path)]) == 0
    assert "4 entries of 4 substances" in capsys.readouterr().out


@needs_real
def test_zip_import_several_measurements_per_substance(tmp_path, capsys):
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "io"))
    from enfsi_zip_fixture import build_enfsi_zip

    z = build_enfsi_zip(REAL / "enfsi_ir", tmp_path / "enfsi.zip", copies=2)
    assert main(["library", "import", str(z), "--out", str(tmp_path / "z.h5"), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["library", "info", str(tmp_path / "z.h5"), "--json"]) == 0
    import json

    info = json.loads(capsys.readouterr().out)
    subs = info["sections"]["ftir"]["substances"]
    assert info["sections"]["ftir"]["entries"] == 134 and len(subs) == 67 and subs["fentanyl"] == 2


@needs_real
def test_progress_callback_files_and_zip_members(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "io"))
    from enfsi_zip_fixture import build_enfsi_zip

    seen = []
    import_library(_enfsi("fentanyl", "d_lactose", "heroin"), tmp_path / "p.h5", progress=lambda d, n: seen.append((d, n)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    z = build_enfsi_zip(REAL / "enfsi_ir", tmp_path / "z.zip", copies=4)
    seen.clear()
    import_library([z], tmp_path / "z.h5", progress=lambda d, n: seen.append((d, n)), jobs=1)
    assert seen[-1] == (268, 268) and len(seen) > 1 and all(n == 268 for _, n in seen)


@needs_real
def test_technique_option_applies_only_to_files_that_do_not_say(tmp_path):
    bare = tmp_path / "bare.txt"
    bare.write_text((REAL / "raman_paracetamol/paracetamol_renishaw.txt").read_text())
    rep = import_library([*_enfsi("fentanyl", "acetylfentanyl", "d_lactose"), str(bare)], tmp_path / "t.h5",
                         technique="raman")
    assert rep.counts == {"ftir": 3, "raman": 1}
    lib = load_library(tmp_path / "t.h5")
    assert lib.section("raman").entry_meta(0)["technique_from"] == "given"
    assert lib.section("ftir").entry_meta(0)["technique_from"] == "file"
