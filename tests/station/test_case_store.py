"""The case store: schema and migrations, append-only rows, hash-chained audit, corrections, search, evidence."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from fol.cases.evidence import read_evidence, write_evidence
from fol.cases.store import SCHEMA_VERSION, CaseStore, StoreError, spectrum_sha256

CASE = {"case_no": "2026-0412", "item_no": "3", "operator": "J. Smit", "description": "white powder", "notes": ""}


def _result(verdict="mixture", alarm=True, comps=(("mannitol", "cutting-agent", 0.8), ("fentanyl", "fentanyl-analogue", 0.2))):
    return {"format_version": 1, "verdict": verdict, "alarm": alarm, "technique": "raman",
            "alarm_classes": ["fentanyl-analogue"] if alarm else [],
            "components": [{"name": n, "class": c, "score": 0.9, "fraction": f, "confidence": 0.99} for n, c, f in comps],
            "hits": [], "quality": {"snr": 50.0, "saturated": False, "fluorescence": 0.3, "flags": []},
            "library": {"name": "fol-reference", "sha256": "ab" * 32}, "fol_version": "test"}


def _add(store, case=CASE, result=None, **kw):
    return store.add_measurement(case=case, recording=kw.get("recording", "r.h5"), entry="scan_0000",
                                 spectrum_sha256="11" * 32, recording_sha256="22" * 32,
                                 instrument={"serial": "SIM1"}, settings={"integration_ms": 100.0},
                                 result=result or _result(), created_utc=kw.get("created_utc"))


def _tamper(path, sql, args=()):
    """What a person with the file and the sqlite3 shell can do: drop the guard triggers and edit."""
    con = sqlite3.connect(path)
    for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type='trigger'").fetchall():
        con.execute(f"DROP TRIGGER {name}")
    con.execute(sql, args)
    con.commit()
    con.close()


def test_new_store_has_schema_wal_and_a_verified_empty_log(tmp_path):
    db = tmp_path / "c.sqlite"
    store = CaseStore(db)
    assert store.schema_version() == SCHEMA_VERSION
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert [r[0] for r in con.execute("SELECT version FROM schema_migrations")] == [1]
    assert store.verify() == []
    assert [a["action"] for a in store.audit_rows()] == ["store-created"]
    store.close()
    assert CaseStore(db).schema_version() == SCHEMA_VERSION  # reopening applies nothing twice
    assert [r[0] for r in sqlite3.connect(db).execute("SELECT version FROM schema_migrations")] == [1]


def test_a_newer_schema_is_refused_and_garbage_is_reported(tmp_path):
    db = tmp_path / "c.sqlite"
    CaseStore(db).close()
    con = sqlite3.connect(db)
    con.execute("INSERT INTO schema_migrations VALUES (99, 'future', 'x')")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="schema version 99 is newer"):
        CaseStore(db)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="junk.sqlite"):
        CaseStore(junk)


def test_rows_are_append_only(tmp_path):
    store = CaseStore(tmp_path / "c.sqlite")
    mid = _add(store)
    con = store._con()
    for sql in ("UPDATE measurements SET verdict='no-match'", "DELETE FROM measurements",
                "UPDATE audit SET actor='x'", "DELETE FROM audit", "DELETE FROM components"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            con.execute(sql)
    assert store.get(mid)["verdict"] == "mixture" and store.verify(check_evidence=False) == []


@pytest.mark.parametrize("attack, expected", [
    ("UPDATE measurements SET verdict='no-match', alarm=0 WHERE id=1", "measurement 1: row or components altered"),
    ("UPDATE components SET name='lactose' WHERE measurement_id=1 AND position=1", "measurement 1: row or components"),
    ("DELETE FROM measurements WHERE id=1", "measurement 1: recorded in the audit log but deleted"),
    ("UPDATE audit SET actor='someone else' WHERE seq=2", "audit log: row 2 was altered"),
    ("DELETE FROM audit WHERE seq=2", "audit log: row 2 missing"),
])
def test_verify_detects_an_edited_or_deleted_row(tmp_path, attack, expected):
    db = tmp_path / "c.sqlite"
    store = CaseStore(db)
    _add(store)
    _add(store, case={**CASE, "item_no": "4"})
    store.close()
    assert CaseStore(db).verify(check_evidence=False) == []
    _tamper(db, attack)
    problems = CaseStore(db).verify(check_evidence=False)
    assert any(expected in p for p in problems), problems


def test_a_row_inserted_behind_the_logs_back_and_a_rehashed_row_are_detected(tmp_path):
    db = tmp_path / "c.sqlite"
    store = CaseStore(db)
    _add(store)
    row = dict(store._con().execute("SELECT * FROM measurements WHERE id=1").fetchone())
    store.close()
    # a forger who recomputes the row hash after editing: the audit log still holds the old one
    from fol.cases.store import ROW_COLUMNS, row_hash

    row["verdict"], row["alarm"] = "identified", 0
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    comps = [dict(r) for r in con.execute("SELECT name, class, fraction, confidence FROM components "
                                          "WHERE measurement_id=1 ORDER BY position")]
    con.close()
    _tamper(db, "UPDATE measurements SET verdict=?, alarm=?, row_sha256=? WHERE id=1",
            ("identified", 0, row_hash({k: row[k] for k in ROW_COLUMNS}, comps)))
    assert any("differs from what the audit log recorded" in p for p in CaseStore(db).verify(check_evidence=False))
    row["id"] = 2
    cols = (*ROW_COLUMNS, "row_sha256")
    row["row_sha256"] = row_hash({k: row[k] for k in ROW_COLUMNS}, [])
    _tamper(db, f"INSERT INTO measurements ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
            [row[c] for c in cols])
    assert any("measurement 2: not in the audit log" in p for p in CaseStore(db).verify(check_evidence=False))


def test_corrections_are_new_rows_pointing_at_the_old_one(tmp_path):
    store = CaseStore(tmp_path / "c.sqlite")
    mid = _add(store)
    with pytest.raises(StoreError, match="reason"):
        store.correct(mid, {"item_no": "33"}, reason=" ", actor="J. Smit")
    new = store.correct(mid, {"item_no": "33"}, reason="item label misread", actor="J. Smit")
    old, cur = store.get(mid), store.get(new)
    assert old["item_no"] == "3" and old["corrected_by"] == new
    assert cur["item_no"] == "33" and cur["corrects"] == mid and cur["result"] == old["result"]
    assert [r["id"] for r in store.search()] == [new]  # only the current record is listed
    assert [r["id"] for r in store.history(mid)] == [mid, new] == [r["id"] for r in store.history(new)]
    with pytest.raises(StoreError, match="already corrected"):
        store.correct(mid, {"item_no": "34"}, reason="again", actor="x")
    assert [a["action"] for a in store.audit_rows()] == ["store-created", "measurement", "correction"]
    assert store.verify(check_evidence=False) == []


def test_search_by_case_item_date_substance_and_alarm(tmp_path):
    store = CaseStore(tmp_path / "c.sqlite")
    a = _add(store, created_utc="2026-03-01T10:00:00.000Z")
    b = _add(store, case={**CASE, "case_no": "2026-0500", "item_no": "1"}, created_utc="2026-03-05T10:00:00.000Z",
             result=_result("identified", False, (("lactose", "cutting-agent", 1.0),)))
    c = _add(store, case={**CASE, "case_no": "2026-0500", "item_no": "2"}, created_utc="2026-03-07T23:59:59.000Z",
             result=_result("mixture", True, (("cocaine", "stimulant", 0.5), ("carfentanil", "fentanyl-analogue", 0.5))))
    ids = lambda **kw: [r["id"] for r in store.search(**kw)]  # noqa: E731
    assert ids() == [c, b, a]
    assert ids(case_no="2026-05") == [c, b] and ids(case_no="2026-0412") == [a]
    assert ids(item_no="2") == [c]
    assert ids(date_from="2026-03-05", date_to="2026-03-07") == [c, b]
    assert ids(date_to="2026-03-04") == [a]
    assert ids(substance="FENT") == [a] and ids(substance="carf") == [c] and ids(substance="lact") == [b]
    assert ids(alarm=True) == [c, a] and ids(alarm=False) == [b]
    assert ids(case_no="2026-0500", alarm=True) == [c]
    assert ids(case_no="%") == [] and ids(substance="_") == []  # wildcards are literal
    with pytest.raises(StoreError, match="YYYY-MM-DD"):
        store.search(date_from="March")


def test_history_search_uses_the_indexes(tmp_path):
    store = CaseStore(tmp_path / "c.sqlite")
    con = store._con()
    plan = lambda sql, *a: " ".join(r[-1] for r in con.execute("EXPLAIN QUERY PLAN " + sql, a))  # noqa: E731
    assert "m_case" in plan("SELECT id FROM measurements m WHERE case_no LIKE ? ORDER BY created_utc", "2026%")
    assert "m_item (item_no=? AND case_no>? AND case_no<?)" in plan(
        "SELECT id FROM measurements m WHERE case_no LIKE ? AND item_no = ? ORDER BY created_utc", "2026%", "3")
    assert "c_name" in plan("SELECT measurement_id FROM components WHERE name LIKE ?", "fent%")
    assert "m_corrects" in plan("SELECT 1 FROM measurements c WHERE c.corrects = ?", 1)


def test_evidence_file_is_complete_hashed_and_verified(tmp_path, measure):
    spectrum = measure("fentanyl:0.2,mannitol:0.8")
    store = CaseStore(tmp_path / "c.sqlite")
    ev = write_evidence(store.evidence_dir, spectrum, CASE)
    assert not list(store.evidence_dir.rglob("*.tmp"))
    back, info = read_evidence(ev["path"])
    np.testing.assert_array_equal(back.intensity, spectrum.intensity)
    assert ev["spectrum_sha256"] == spectrum_sha256(back.wavenumber, back.intensity)
    assert info.sample["case_id"] == CASE["case_no"] and info.sample["item_no"] == "3"
    assert info.instrument["serial"] == spectrum.metadata["serial"]
    # not yet in the database: verify names it
    assert any("is not in the database" in p for p in store.verify())
    store.add_measurement(case=CASE, recording=ev["recording"], entry=ev["entry"], spectrum_sha256=ev["spectrum_sha256"],
                          recording_sha256=ev["recording_sha256"], instrument={}, settings={}, result=_result())
    assert store.verify() == []
    with open(ev["path"], "r+b") as f:  # one byte of the evidence changed
        f.seek(-100, 2)
        byte = f.read(1)
        f.seek(-100, 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert any("was altered" in p for p in store.verify())


def test_station_indexes_evidence_left_by_a_killed_process(tmp_path, measure, library, identifier):
    from fol.station.service import Station, StationConfig

    db = tmp_path / "c.sqlite"
    store = CaseStore(db)
    spectrum = measure("fentanyl:0.2,mannitol:0.8")
    ev = write_evidence(store.evidence_dir, spectrum, CASE)  # recorded, then the process died before indexing
    (store.evidence_dir / ev["recording"]).parent.joinpath(".half.h5.tmp").write_bytes(b"partial")
    store.close()
    station = Station(StationConfig(simulate="blank", db=str(db)), library=library, identifier=identifier)
    try:
        assert len(station.recovered) == 1
        m = station.store.get(station.recovered[0])
        assert m["case_no"] == CASE["case_no"] and m["item_no"] == "3" and m["operator"] == "J. Smit"
        assert m["result"]["alarm"] and "fentanyl" in m["substances"]
        assert m["settings"]["integration_ms"] == 200 and m["instrument"]["serial"] == spectrum.metadata["serial"]
        assert station.store.audit_rows(m["id"])[0]["action"] == "recovered"
        assert station.store.verify() == [] and not list(station.store.evidence_dir.rglob("*.tmp"))
    finally:
        station.close()
    again = Station(StationConfig(simulate="blank", db=str(db)), library=library, identifier=identifier)
    assert again.recovered == [] and again.store.count() == 1
    again.close()


def test_readonly_open_of_a_missing_database_names_it(tmp_path):
    with pytest.raises(StoreError, match="nope.sqlite: no such case database"):
        CaseStore(tmp_path / "nope.sqlite", readonly=True)


def test_canonical_row_json_is_stable(tmp_path):
    store = CaseStore(tmp_path / "c.sqlite")
    mid = _add(store, case={**CASE, "notes": "naïve <b>é</b>"})
    m = store.get(mid)
    assert m["notes"] == "naïve <b>é</b>" and json.loads(json.dumps(m["result"])) == m["result"]
    assert store.verify(check_evidence=False) == []
