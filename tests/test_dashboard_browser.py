"""The dashboard in a real browser: headless Chromium (Debian's, at fixed paths), driven by
Selenium, against the console served by uvicorn on a loopback port (SQLite in tmp_path;
a gateway runtime without workers, so nothing decides the seeded messages again).

A trainer logs in, opens the dashboard from the navigation, picks a period in the form,
reads the seeded numbers from the tables under the charts, and downloads a section as
CSV. It also shows what the in-process tests cannot: the inline SVG charts render under
the page's Content-Security-Policy without a single violation in the browser's console,
and the CSV link downloads a file with the name the server gave it.

Skipped without Chromium, chromedriver or selenium, as tests/test_console_browser.py is
(failed instead when GARDA_REQUIRE_SERVERS=1).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from stubs import serve  # tests/stubs
from test_admin_console import PASSWORD, World
from test_console_browser import (
    CHROMEDRIVER,
    CHROMIUM,
    WAIT,
    _unavailable,
    evidence_on_failure,
    wait_until,
)
from test_dashboard import NIK_A, Seeder, drop_review_inbox, seed_messages

pytestmark = pytest.mark.browser


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[tuple[Any, Path]]:
    """Headless Chromium that saves downloads in tmp_path/downloads and keeps the page's
    console messages (CSP violations are reported there)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            _unavailable(f"{path} is not installed (Debian: apt-get install chromium "
                         "chromium-driver; scripts/setup.sh does it as root)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed (pip install -c constraints.txt -e '.[dev]')")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1280,1024",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {
        "download.default_directory": str(downloads), "download.prompt_for_download": False,
        "safebrowsing.enabled": False})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=str(CHROMEDRIVER),
                      log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver, downloads
    finally:
        driver.quit()


def test_a_trainer_picks_a_period_reads_the_numbers_and_downloads_the_csv(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, browser: tuple[Any, Path]) -> None:
    from selenium.webdriver.common.by import By

    monkeypatch.delenv("GARDA_TIMEZONE", raising=False)
    world = World(tmp_path)
    world.add_user("tari", "trainer")
    seed_messages(Seeder(world.db))  # 2-4 November 2026, WIB: see tests/test_dashboard.py
    drop_review_inbox(world.db)  # the unanswered list then comes from fallback texts
    driver, downloads = browser

    def css(selector: str) -> Any:
        return driver.find_element(By.CSS_SELECTOR, selector)

    def cell(selector: str) -> str:
        return str(css(selector).text)

    with serve(world.app) as base, evidence_on_failure(driver, tmp_path):
        driver.get(f"{base}/admin/dashboard")
        assert driver.current_url == f"{base}/admin/login"
        css("input[name=name]").send_keys("tari")
        css("input[name=password]").send_keys(PASSWORD)
        css("main form button[type=submit]").click()
        wait_until(lambda: driver.current_url == f"{base}/admin/", "the queue after login")
        driver.find_element(By.LINK_TEXT, "Dasbor").click()
        wait_until(lambda: driver.current_url == f"{base}/admin/dashboard", "the dashboard")
        assert css("h1").text == "Dasbor"

        # Pick the period. A date input's typing order follows the browser's locale, so
        # the test sets the values as a date picker would, then submits the form.
        for name, value in (("from", "2026-11-02"), ("to", "2026-11-04")):
            driver.execute_script(
                "arguments[0].value = arguments[1];"
                "arguments[0].dispatchEvent(new Event('change'));", css(f"#{name}"), value)
        css("#period button[type=submit]").click()
        wait_until(lambda: "from=2026-11-02&to=2026-11-04" in driver.current_url,
                   "the chosen period")
        shown = css("#period-shown")
        assert (shown.get_attribute("data-from"), shown.get_attribute("data-to")) == (
            "2026-11-02", "2026-11-04")
        assert cell("#total-messages") == "15"

        # The numbers seeded, as the tables under the charts show them.
        day = '#messages-table tr[data-day="2026-11-03"]'
        assert cell(f'{day} td[data-channel="telegram"]') == "4"
        assert cell(f'{day} td[data-channel="whatsapp"]') == "1"
        assert cell(f"{day} td[data-total]") == "5"
        routes = {row.get_attribute("data-route"): row.find_elements(By.TAG_NAME, "td")[1:]
                  for row in driver.find_elements(By.CSS_SELECTOR, "#routes-table tbody tr")}
        assert [c.text for c in routes["answer"]] == ["4", "26,7%"]     # 4 of 15
        assert [c.text for c in routes["handoff"]] == ["1", "6,7%"]
        intents = [r.text for r in driver.find_elements(By.CSS_SELECTOR,
                                                        "#intents-table th[scope=row]")]
        assert intents == ["nlu_fallback", "faq_ktp", "faq_kk"]
        unanswered = cell("#unanswered-table tbody tr:first-child")
        assert "Bagaimana cara urus NIK [nik/kk]??" in unanswered and NIK_A not in unanswered
        assert [r.get_attribute("data-hoax") for r in driver.find_elements(
            By.CSS_SELECTOR, "#hoaxes-table tbody tr")] == ["bansos-palsu", "vaksin-chip"]

        # The charts are drawn (bars in the SVG, visible), and nothing was blocked.
        chart = css("svg#chart-messages")
        assert chart.is_displayed() and chart.size["height"] > 100
        assert len(chart.find_elements(By.TAG_NAME, "rect")) >= 6  # 3 days x 2 channels
        assert css("svg#chart-routes").is_displayed()
        problems = [e["message"] for e in driver.get_log("browser")
                    if ("Content Security Policy" in e["message"] or e["level"] == "SEVERE")
                    and "/favicon.ico" not in e["message"]]  # the console has no icon
        assert problems == []

        # Download the CSV of the messages section through its link.
        link = css('#messages a[download]')
        assert link.get_attribute("href") == (
            f"{base}/admin/dashboard.csv?section=messages&from=2026-11-02&to=2026-11-04")
        link.click()
        target = downloads / "garda-messages-2026-11-02-2026-11-04.csv"
        wait_until(target.exists, "the CSV download")
        with target.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle))
        assert rows == [["hari", "kanal", "pesan"],
                        ["2026-11-02", "telegram", "3"], ["2026-11-02", "whatsapp", "3"],
                        ["2026-11-03", "telegram", "4"], ["2026-11-03", "whatsapp", "1"],
                        ["2026-11-04", "telegram", "2"], ["2026-11-04", "whatsapp", "2"]]
        assert driver.current_url.endswith("from=2026-11-02&to=2026-11-04")  # still there
