"""The station in a real browser: Playwright driving the system Chromium against ``fol station``
on a simulated analyzer on a real pty (both as subprocesses, as an officer would run them).

Skipped without Playwright or without a ``chromium`` executable; CI installs both
(``.ci/run``). ``FOL_STATION_SCREENSHOTS=DIR`` saves the screenshots of the main pages
(docs/ keeps a set).
"""

from __future__ import annotations

import os
import re

import pytest

sync_api = pytest.importorskip("playwright.sync_api")

from builders import chromium_path  # noqa: E402

pytestmark = [pytest.mark.timeout(180),
              pytest.mark.skipif(chromium_path() is None, reason="no chromium executable (apt-get install chromium)")]

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
XSS = '<script>window.__pwned = 1; alert("x")</script><img src=x onerror="window.__pwned=2">'


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=ARGS)
        yield b
        b.close()


def shot(page, name):
    where = os.environ.get("FOL_STATION_SCREENSHOTS")
    if where:
        page.screenshot(path=os.path.join(where, f"station-{name}.png"), full_page=False)


def fill_case(page, case_no, item_no, operator="J. Smit", description="white powder"):
    page.fill("#case_no", case_no)
    page.fill("#item_no", item_no)
    page.fill("#operator", operator)
    page.fill("#description", description)


def test_officer_workflow_in_the_browser(browser, running_station):
    st = running_station("fentanyl:0.2,mannitol:0.8", time_scale=0.05, extra=("--integration", "300", "--averages", "2"))
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    requests = []
    page.on("request", lambda r: requests.append(r.url))

    # required case fields: a blank operator passes the browser's check, the station refuses
    page.goto(st.url + "/")
    fill_case(page, "2026-0412", "3", operator="   ")
    page.click("#measure")
    page.wait_for_selector("#form-error")
    assert "Operator" in page.inner_text("#form-error") and page.url.rstrip("/") == st.url

    # the acquire page: instrument identity and the explicit settings
    page.goto(st.url + "/")
    assert "SIM-RAMAN-785" in page.inner_text("#instrument")
    assert page.input_value("#integration_ms") and page.input_value("#averages") and page.input_value("#laser_mw")
    fill_case(page, "2026-0412", "3")
    shot(page, "acquire")
    page.click("#measure")
    page.wait_for_url(re.compile(r".*/m/\d+$"), timeout=30_000)
    banner = page.inner_text("#verdict")
    assert "ALARM" in banner and "fentanyl" in banner
    assert "fentanyl" in page.inner_text("#components") and "mannitol" in page.inner_text("#components")
    page.wait_for_function("document.getElementById('plot').complete && document.getElementById('plot').naturalWidth > 0")
    shot(page, "result-alarm")
    result_url = page.url

    # the report
    page.click("#report-link")
    page.wait_for_load_state()
    body = page.inner_text("body")
    assert "Chain of custody" in body and "2026-0412" in body and "Raw spectrum SHA-256" in body
    shot(page, "report")

    # History finds it
    page.goto(st.url + "/history")
    page.fill("input[name=case]", "2026-04")
    page.fill("input[name=substance]", "fentanyl")
    page.click("#search button[type=submit]")
    page.wait_for_load_state()
    rows = page.locator("#history tbody tr")
    assert rows.count() == 1 and "ALARM" in rows.first.inner_text()
    shot(page, "history")
    rows.first.locator("a").click()
    page.wait_for_load_state()
    assert page.url == result_url

    # a saturated measurement: the advice and the Re-measure button with lower settings
    page.goto(st.url + "/")
    fill_case(page, "2026-0412", "4")
    page.fill("#integration_ms", "1000")
    page.fill("#averages", "1")
    page.fill("#laser_mw", "500")
    page.click("#measure")
    page.wait_for_url(re.compile(r".*/m/\d+$"), timeout=30_000)
    advice = page.inner_text("#advice")
    assert "saturated" in advice and "lower the laser power or the integration time" in advice
    assert "RE-MEASURE" in page.inner_text("#verdict") and "ALARM" not in page.inner_text("#verdict")
    shot(page, "result-saturated")
    page.click("#remeasure")
    page.wait_for_url(re.compile(r".*/\?.*remeasure=\d+.*"))
    assert float(page.input_value("#integration_ms")) < 1000 and float(page.input_value("#laser_mw")) < 500
    assert page.input_value("#item_no") == "4"

    # a script in a case field is shown as text, never run
    page.goto(st.url + "/")
    fill_case(page, XSS, XSS, operator=XSS, description=XSS)
    page.click("#measure")
    page.wait_for_url(re.compile(r".*/m/\d+$"), timeout=30_000)
    assert XSS in page.inner_text("#case-line")
    for path in ("/history", page.url.replace(st.url, "") + "/report.html"):
        page.goto(st.url + path)
        assert XSS in page.inner_text("body")
    assert dialogs == [] and page.evaluate("window.__pwned === undefined")
    # nothing was fetched from anywhere but the station (no CDN)
    assert requests and all(u.startswith(st.url) for u in requests), [u for u in requests if not u.startswith(st.url)]
    page.close()
