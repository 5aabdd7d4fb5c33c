"""``fol cases list|show|export|verify`` on a real database made by the station's measurement path."""

from __future__ import annotations

import io
import json
import sqlite3
import zipfile

import pytest

from fol.cli import main


@pytest.fixture
def db(tmp_path, measure, library, identifier):
    """A database with two measurements of case 2026-0412 (one fentanyl mixture, one lactose)."""
    from fol.station.service import Station, StationConfig

    path = tmp_path / "cases.sqlite"
    st = Station(StationConfig(simulate="blank", db=str(path)), library=library, identifier=identifier)
    from fol.cases.evidence import write_evidence

    for item, sample in (("1", "fentanyl:0.2,mannitol:0.8"), ("2", "lactose")):
        case = {"case_no": "2026-0412", "item_no": item, "operator": "J. Smit", "description": "powder", "notes": ""}
        spectrum = measure(sample)
        st._index(spectrum, write_evidence(st.store.evidence_dir, spectrum, case), case, actor="J. Smit")
    st.close()
    return path


def test_list_and_show(db, capsys):
    assert main(["cases", "list", "--db", str(db)]) == 0
    out = capsys.readouterr()
    assert out.out.count("2026-0412") == 2 and "ALARM fentanyl-analogue" in out.out and "2 shown of 2" in out.err
    assert main(["cases", "list", "--db", str(db), "--alarm", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["item_no"] for r in rows] == ["1"] and "fentanyl" in rows[0]["substances"]
    assert main(["cases", "list", "--db", str(db), "--substance", "lact"]) == 0
    assert "lactose" in capsys.readouterr().out
    assert main(["cases", "show", "--db", str(db), str(rows[0]["id"])]) == 0
    out = capsys.readouterr().out
    assert "ALARM" in out and "fentanyl" in out and "spectrum     sha256" in out and "measurement by J. Smit" in out
    assert main(["cases", "show", "--db", str(db), "99"]) == 2
    assert "no measurement 99" in capsys.readouterr().err


def test_verify_detects_an_edited_or_deleted_row(db, capsys):
    assert main(["cases", "verify", "--db", str(db)]) == 0
    assert "intact (2 measurements" in capsys.readouterr().out
    con = sqlite3.connect(db)
    con.execute("DROP TRIGGER m_no_update")
    con.execute("UPDATE measurements SET alarm = 0, verdict = 'identified' WHERE item_no = '1'")
    con.commit()
    assert main(["cases", "verify", "--db", str(db)]) == 1
    err = capsys.readouterr().err
    assert "row or components altered" in err and "NOT intact" in err
    con.execute("DROP TRIGGER m_no_delete")
    con.execute("DROP TRIGGER c_no_delete")
    con.execute("DELETE FROM components WHERE measurement_id = 2")
    con.execute("DELETE FROM measurements WHERE id = 2")
    con.commit()
    con.close()
    assert main(["cases", "verify", "--db", str(db), "--no-evidence"]) == 1
    assert "measurement 2: recorded in the audit log but deleted" in capsys.readouterr().err


def test_verify_of_a_missing_database_is_one_line(tmp_path, capsys):
    assert main(["cases", "verify", "--db", str(tmp_path / "none.sqlite")]) == 1
    err = capsys.readouterr().err
    assert "none.sqlite: no such case database" in err and "Traceback" not in err


def test_export_writes_the_case_bundle(db, tmp_path, capsys):
    pytest.importorskip("reportlab")
    pytest.importorskip("jinja2")
    out = tmp_path / "bundle.zip"
    assert main(["cases", "export", "--db", str(db), "--case", "2026-0412", "--out", str(out)]) == 0
    z = zipfile.ZipFile(io.BytesIO(out.read_bytes()))
    manifest = json.loads(z.read("manifest.json"))
    assert manifest["database_verification"] == "ok" and len(manifest["measurements"]) == 2
    assert sum(n.endswith("report.pdf") for n in z.namelist()) == 2
    assert main(["cases", "export", "--db", str(db), "--case", "nope", "--out", str(out), "--no-reports"]) == 1
    assert "no measurements for case 'nope'" in capsys.readouterr().err
