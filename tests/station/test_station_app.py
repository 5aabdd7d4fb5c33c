"""The station's web app in process (Starlette's test client) against an in-process simulated analyzer."""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
import zipfile

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")
pytest.importorskip("reportlab")

from starlette.testclient import TestClient  # noqa: E402

from fol.station.app import create_app  # noqa: E402
from fol.station.service import Station, StationConfig  # noqa: E402

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'
CASE = {"case_no": "2026-0412", "item_no": "7", "operator": "J. Smit", "description": "white powder, bag 2", "notes": ""}


@pytest.fixture
def station(tmp_path, library, identifier):
    st = Station(StationConfig(simulate="fentanyl:0.2,mannitol:0.8", db=str(tmp_path / "c.sqlite"), seed=2,
                               time_scale=0.0), library=library, identifier=identifier)
    yield st
    st.close()


@pytest.fixture
def client(station):
    with TestClient(create_app(station), base_url="http://127.0.0.1:8470") as c:
        yield c


def csrf(client, path="/"):
    page = client.get(path)
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def measure(client, **fields):
    data = {"csrf": csrf(client), **CASE, "integration_ms": "200", "averages": "2", "laser_mw": "100", **fields}
    r = client.post("/measure", data=data, headers={"Accept": "application/json"})
    assert r.status_code == 200, r.text
    job = r.json()["job"]
    for _ in range(600):
        j = client.get(f"/api/job/{job}").json()
        if j["phase"] in ("done", "failed"):
            return j
        time.sleep(0.02)
    raise AssertionError("measurement did not finish")


def test_acquire_page_states_the_instrument_and_the_settings(client, station):
    station.refresh_instrument()
    page = client.get("/").text
    assert "SIM-RAMAN-785" in page and "serial <b>SIM00002</b>" in page
    d = station.defaults
    assert f'value="{d["integration_ms"]}"' in page and f'value="{d["averages"]}"' in page
    assert f'value="{d["laser_mw"]}"' in page and "nothing is left over from an earlier run" in page
    assert "https://" not in page and "http://" not in page  # no CDN: every asset from the package
    assert client.get("/static/station.js").status_code == 200 and client.get("/static/station.css").status_code == 200


def test_measurement_alarm_component_plot_report_and_history(client, station):
    j = measure(client)
    assert j["phase"] == "done", j
    mid = j["measurement_id"]
    page = client.get(f"/m/{mid}").text
    assert 'class="banner alarm"' in page and ">ALARM<" in page and "fentanyl" in page
    assert "screening only" in page  # the shipped references are computed
    m = station.store.get(mid)
    assert m["settings"]["integration_ms"] == 200 and m["settings"]["averages"] == 2 and m["settings"]["laser_mw"] == 100
    # the raw spectrum is in the evidence recording, with the hash the page shows
    from fol.cases.evidence import read_evidence
    from fol.cases.store import spectrum_sha256

    spectrum, _ = read_evidence(station.store.evidence_dir / m["recording"])
    assert spectrum_sha256(spectrum.wavenumber, spectrum.intensity) == m["spectrum_sha256"]
    assert m["spectrum_sha256"] in page
    svg = client.get(f"/m/{mid}/plot.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml") and b"fentanyl" in svg.content
    assert b"own scale" in svg.content and b"residual" in svg.content  # minor component on its own axis
    report = client.get(f"/m/{mid}/report.html").text
    for text in ("Chain of custody", "2026-0412", "J. Smit", "white powder, bag 2", "SIM00002", m["library_sha256"],
                 m["spectrum_sha256"], "200.0 ms", "screening only", "<svg"):
        assert text in report, text
    pdf = client.get(f"/m/{mid}/report.pdf")
    assert pdf.content.startswith(b"%PDF-") and pdf.headers["content-type"] == "application/pdf"
    hist = client.get("/history", params={"case": "2026-04", "substance": "fent", "alarm": "yes"}).text
    assert f'href="/m/{mid}"' in hist and 'href="/bundle?case=2026-0412"' in hist  # the exact case, not the prefix
    assert f'href="/m/{mid}"' not in client.get("/history", params={"alarm": "no"}).text
    assert station.store.verify() == []


def test_required_case_fields_refuse_the_acquisition(client, station):
    r = client.post("/measure", data={"csrf": csrf(client), **CASE, "operator": " "})
    assert r.status_code == 400 and "required case field(s) missing: Operator" in r.text
    r = client.post("/measure", data={"csrf": csrf(client), **CASE, "case_no": ""}, headers={"Accept": "application/json"})
    assert r.status_code == 400 and "Case number" in r.json()["error"]
    assert station.store.count() == 0 and not list(station.store.evidence_dir.rglob("*.h5"))


def test_settings_out_of_range_are_refused(client, station):
    r = client.post("/measure", data={"csrf": csrf(client), **CASE, "laser_mw": "900"})
    assert r.status_code == 400 and "Laser power (mW): 900 is outside 0..500" in r.text
    assert station.store.count() == 0


def test_forms_need_the_csrf_token_and_the_same_origin(client, station):
    assert client.post("/measure", data=CASE).status_code == 403
    assert client.post("/measure", data={**CASE, "csrf": "forged" * 7 + "x"}).status_code == 403
    token = csrf(client)
    r = client.post("/measure", data={**CASE, "csrf": token}, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403
    assert station.store.count() == 0


def test_script_injection_in_case_fields_renders_as_text(client, station):
    j = measure(client, case_no=XSS, item_no=XSS, operator=XSS, description=XSS, notes=XSS)
    mid = j["measurement_id"]
    assert station.store.get(mid)["case_no"] == XSS  # stored as typed
    for path in (f"/m/{mid}", f"/m/{mid}/report.html", "/history", f"/history?case={XSS}"):
        text = client.get(path).text
        assert "<script>alert" not in text and "<img src=x" not in text, path
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in text, path
    pdf = client.get(f"/m/{mid}/report.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
    csp = client.get(f"/m/{mid}").headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]


def test_saturated_measurement_shows_the_remeasure_advice(client, station):
    j = measure(client, integration_ms="1000", averages="1", laser_mw="500")
    page = client.get(f"/m/{j['measurement_id']}").text
    assert "saturated" in page and "lower the laser power or the integration time" in page
    assert 'id="remeasure"' in page
    form = re.search(r'<form method="get" action="/" id="remeasure-form">(.*?)</form>', page, re.S).group(1)
    settings = dict(re.findall(r'name="(integration_ms|averages|laser_mw)" value="([^"]+)"', form))
    assert float(settings["integration_ms"]) < 1000 and float(settings["laser_mw"]) < 500
    assert 'class="banner alarm"' not in page and ">RE-MEASURE<" in page  # a saturated spectrum is no result
    again = client.get("/", params=dict(re.findall(r'name="(\w+)" value="([^"]*)"', form))).text
    assert f'value="{settings["integration_ms"]}"' in again and "Re-measurement of measurement" in again


def test_correction_is_a_new_record(client, station):
    mid = measure(client)["measurement_id"]
    r = client.post(f"/m/{mid}/correct", data={"csrf": csrf(client), **CASE, "item_no": "8", "reason": "label misread"},
                    follow_redirects=False)
    assert r.status_code == 303
    new = int(r.headers["location"].rsplit("/", 1)[1])
    assert station.store.get(new)["item_no"] == "8" and station.store.get(mid)["item_no"] == "7"
    assert "This record was corrected" in client.get(f"/m/{mid}").text
    assert station.store.verify() == []


def test_case_bundle_holds_reports_recordings_and_a_manifest_of_hashes(client, station):
    measure(client)
    measure(client, item_no="8")
    r = client.get("/bundle", params={"case": CASE["case_no"]})
    assert r.headers["content-type"] == "application/zip"
    z = zipfile.ZipFile(io.BytesIO(r.content))
    manifest = json.loads(z.read("manifest.json"))
    assert manifest["case_no"] == CASE["case_no"] and manifest["database_verification"] == "ok"
    assert len(manifest["measurements"]) == 2
    for name, digest in manifest["files"].items():
        assert hashlib.sha256(z.read(name)).hexdigest() == digest, name
    names = z.namelist()
    assert sum(n.endswith("report.pdf") for n in names) == 2 and sum(n.endswith(".h5") for n in names) == 2
    assert sum(n.endswith("result.json") for n in names) == 2 and "audit.json" in names
    assert station.store.audit_rows()[-1]["action"] == "export"
    assert client.get("/bundle", params={"case": "no-such-case"}).status_code == 404


def test_regression_view_lists_changes_with_another_library(client, station):
    measure(client)
    r = client.post("/regression", data={"csrf": csrf(client, "/regression")})
    assert r.status_code == 200 and 'id="regression-summary"' in r.text
    # the same library: nothing changed and nothing listed
    assert station.regression() == []


def test_large_bodies_are_refused(client):
    r = client.post("/measure", content=b"x" * 100_000, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413


def test_a_token_protects_the_station(station):
    app = create_app(station, token="lab-secret-123456")
    with TestClient(app, base_url="http://10.0.0.5:8470") as c:
        assert c.get("/", headers={"Accept": "text/html"}, follow_redirects=False).headers["location"] == "/login"
        assert c.get("/history").status_code == 401
        assert c.get("/", headers={"Authorization": "Bearer lab-secret-123456"}).status_code == 200
        token = csrf(c, "/login")
        assert c.post("/login", data={"csrf": token, "token": "wrong"}).status_code == 403
        r = c.post("/login", data={"csrf": token, "token": "lab-secret-123456"}, follow_redirects=False)
        assert r.status_code == 303 and "lab-secret" not in r.headers.get("set-cookie", "")
        assert c.get("/history").status_code == 200


def test_the_cli_refuses_a_network_address_without_a_token(tmp_path, capsys):
    from fol.cli import main

    assert main(["station", "--simulate", "blank", "--listen", "0.0.0.0:8470", "--db", str(tmp_path / "x.sqlite")]) == 2
    assert "needs an access token" in capsys.readouterr().err
    assert main(["station", "--simulate", "blank", "--listen", "0.0.0.0:8470", "--token", "short"]) == 2


def test_banner_refuses_a_saturated_result_but_names_an_indicated_alarm_class():
    from fol.station.app import banner

    sat = {"verdict": "mixture", "alarm": True, "alarm_classes": ["fentanyl-analogue"],
           "components": [{"name": "fentanyl", "alarm": True}], "quality": {"flags": ["saturated"]}}
    b = banner(sat)
    assert b["level"] == "caution" and b["headline"] == "RE-MEASURE" and "fentanyl-analogue" in b["detail"]
    assert "dangerous" in b["detail"]
    ok = {**sat, "quality": {"flags": []}}
    assert banner(ok) == {"level": "alarm", "headline": "ALARM", "detail": "fentanyl-analogue: fentanyl"}
    nomatch = {"verdict": "no-match", "alarm": False, "components": [], "quality": {"flags": []}}
    assert banner(nomatch)["level"] == "caution"  # an unknown substance is never shown as clear
    caution = {"verdict": "inconclusive", "alarm": False, "possible_alarm_classes": ["fentanyl-analogue"],
               "components": [], "quality": {"flags": ["ambiguous"]}}
    assert banner(caution)["headline"] == "CAUTION" and "fentanyl-analogue" in banner(caution)["detail"]


def test_settings_left_on_the_instrument_are_never_used(client, station):
    station.refresh_instrument()
    station._source._source.analyzer.configure(integration_ms=37.0, averages=9, laser_mw=222.0)  # an earlier run
    data = {"csrf": csrf(client), **CASE, "integration_ms": "", "averages": "", "laser_mw": ""}  # form left blank
    job = client.post("/measure", data=data, headers={"Accept": "application/json"}).json()["job"]
    for _ in range(600):
        j = client.get(f"/api/job/{job}").json()
        if j["phase"] in ("done", "failed"):
            break
        time.sleep(0.02)
    m = station.store.get(j["measurement_id"])
    d = station.defaults
    assert (m["settings"]["integration_ms"], m["settings"]["averages"], m["settings"]["laser_mw"]) == \
        (d["integration_ms"], d["averages"], d["laser_mw"])


def test_an_absent_instrument_fails_the_job_with_its_port_and_records_nothing(tmp_path, library, identifier):
    st = Station(StationConfig(port=str(tmp_path / "no-such-tty"), db=str(tmp_path / "c.sqlite"), timeout=0.5),
                 library=library, identifier=identifier)
    try:
        with TestClient(create_app(st), base_url="http://127.0.0.1:8470") as c:
            j = measure(c)
            assert j["phase"] == "failed" and "no-such-tty" in j["error"]
            page = c.get(f"/job/{j['id']}").text
            assert "Measurement failed" in page and "no-such-tty" in page
            assert "Not connected" in c.get("/").text
        assert st.store.count() == 0 and not list(st.store.evidence_dir.rglob("*.h5"))
    finally:
        st.close()


def test_library_check_lists_what_a_new_library_changes(client, station, library):
    from dataclasses import replace

    import numpy as np

    from fol.identification.pipeline import Identifier

    mid = measure(client)["measurement_id"]
    sec = library.section("raman")
    keep = np.array([n != "fentanyl" for n in sec.names])
    new_lib = replace(library, sections={"raman": sec.subset(keep)}, sha256="f" * 64, verified=False)
    rows = station.regression(Identifier(new_lib))
    assert [r["m"]["id"] for r in rows] == [mid] and rows[0]["changed"]
    assert "fentanyl" in [c["name"] for c in rows[0]["old"]["components"]]
    assert "fentanyl" not in [c["name"] for c in rows[0]["new"]["components"]]


def test_history_marks_a_saturated_record_for_re_measurement(client, station):
    mid = measure(client, integration_ms="1000", averages="1", laser_mw="500")["measurement_id"]
    assert "saturated" in station.store.get(mid)["quality_flags"]
    row = re.search(rf'<tr[^>]*>(?:(?!</tr>).)*href="/m/{mid}"', client.get("/history").text, re.S).group(0)
    assert "RE-MEASURE" in row and "ALARM" not in row


def test_a_failed_analysis_keeps_the_recording_and_the_next_start_indexes_it(client, station, library, identifier,
                                                                             monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("simulated analysis failure")

    monkeypatch.setattr(station.identifier, "analyse_spectrum", broken)
    j = measure(client)
    assert j["phase"] == "failed" and "was recorded" in j["error"] and "simulated analysis failure" in j["error"]
    assert station.store.count() == 0 and len(list(station.store.evidence_dir.rglob("*.h5"))) == 1
    monkeypatch.undo()
    again = Station(StationConfig(simulate="blank", db=station.config.db), library=library, identifier=identifier)
    try:
        assert len(again.recovered) == 1 and again.store.get(again.recovered[0])["item_no"] == CASE["item_no"]
        assert again.store.verify() == []
    finally:
        again.close()


def test_a_bare_post_gets_a_page_not_a_server_error(client, station):
    r = client.post("/measure", data={"csrf": csrf(client), "case_no": "1"})
    assert r.status_code == 400 and "required case field(s) missing" in r.text
    assert client.get("/m/999").status_code == 404 and client.get("/job/nope").status_code == 404
    assert client.get("/history", params={"from": "yesterday"}).status_code == 400


def test_a_row_edited_outside_fol_is_an_error_page_not_a_server_error(client, station, tmp_path):
    import sqlite3

    con = sqlite3.connect(tmp_path / "c.sqlite")
    cols = [r[1] for r in con.execute("PRAGMA table_info(measurements)")]
    values = {c: "''" for c in cols} | {"id": "7", "alarm": "0", "corrects": "NULL", "correction_reason": "NULL",
                                         "case_no": "X'00ff'"}
    con.execute(f"INSERT INTO measurements ({','.join(cols)}) VALUES ({','.join(values[c] for c in cols)})")
    con.commit()
    con.close()
    for path in ("/m/7", "/history"):
        r = client.get(path)
        assert r.status_code in (400, 500) and "column case_no holds a blob value" in r.text, (path, r.text[:500])
        assert "Traceback" not in r.text
