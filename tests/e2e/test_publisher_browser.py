"""The public page in real headless Chromium (Debian's, driven by Playwright): the map and a ranking row for a
unit that just received a rating arrive live, the English switch works, axe-core finds no WCAG 2.1 AA
violation, the page is usable from the keyboard and on a phone, and screenshots are kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.infra import ROOT, Backend, ServiceProcess, service_env, wait_until
from tests.support.publisher_events import produce, score, unit

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
CHROMIUM = "/usr/bin/chromium"
AXE = ROOT / "services" / "publisher" / "web" / "node_modules" / "axe-core" / "axe.min.js"
LAUNCH_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def _accessibility_violations(page: Any) -> list[dict[str, Any]]:
    # Evaluated through the DevTools protocol: the page's own CSP (no inline scripts) stays in force.
    page.evaluate(AXE.read_text(encoding="utf-8") + "\n;void 0")
    result = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG_21_AA)
    return [{"id": v["id"], "help": v["help"], "nodes": [n["target"] for n in v["nodes"]][:5]} for v in result["violations"]]


def test_the_public_page_shows_a_just_rated_unit_live_in_vietnamese_and_english(
    kafka_broker, topic_prefix: str, backend: Backend, tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: `make chromium` installs it"
    assert AXE.exists(), "axe-core is missing: `make web` installs the publisher's npm packages"
    env = service_env(backend, kafka_broker.bootstrap, topic_prefix)
    publisher = ServiceProcess("publisher", env, tmp_path / "logs")
    registry = [
        unit("79", "province", None, "Thành phố Hồ Chí Minh"),
        unit("79.SNV", name="Sở Nội vụ Thành phố Hồ Chí Minh", lat=10.7798, lon=106.6990),
        unit("79.STP", name="Sở Tư pháp Thành phố Hồ Chí Minh", lat=10.7797, lon=106.6953),
        unit("79.SXD", name="Sở Xây dựng Thành phố Hồ Chí Minh", lat=10.7846, lon=106.6958),
    ]
    try:
        produce(kafka_broker.bootstrap, topic_prefix, [*registry, score("79.STP", 1, 76.5, ratings=14),
                                                       score("79.SXD", 1, 95.0, ratings=3)])
        publisher.start()
        wait_until(lambda: publisher.get("/v1/public/rankings").status_code == 200, timeout=60, what="the first results")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
            try:
                context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="vi-VN")
                page = context.new_page()
                page.goto(publisher.url + "/")
                assert page.locator("html").get_attribute("lang") == "vi"
                assert page.locator("svg#vn-map #vn-outline").is_visible()
                assert page.locator('circle.dot[data-unit="79.STP"]').count() == 1
                assert page.locator('tr[data-unit="79.SXD"]').inner_text().count("Chưa đủ dữ liệu") == 1

                # A rating for 79.SNV was just scored: its row and its dot arrive without a reload.
                produce(kafka_broker.bootstrap, topic_prefix, [score("79.SNV", 1, 91.25, ratings=22, period="2026-10"),
                                                               score("79.SNV", 2, 93.75, ratings=24)])
                row = page.locator('tr[data-unit="79.SNV"]')
                row.wait_for(timeout=60_000)
                assert "Sở Nội vụ" in row.inner_text() and "93,75" in row.inner_text() and row.inner_text().startswith("1")
                assert page.locator('circle.dot[data-unit="79.SNV"]').count() == 1
                wait_until(lambda: "Sở Nội vụ" in page.locator("#live-status").inner_text(), timeout=10, what="the announcement")
                desktop = tmp_path / "public-page-vi.png"
                page.screenshot(path=str(desktop), full_page=True)
                assert _accessibility_violations(page) == []

                page.keyboard.press("Tab")
                assert page.evaluate("document.activeElement.className") == "skip"

                page.get_by_role("link", name="Switch to English").click()
                page.wait_for_selector('html[lang="en"]')
                assert "Satisfaction with public administrative services" in page.locator("h1").inner_text()
                assert "Satisfied" in page.locator('tr[data-unit="79.SNV"]').inner_text()
                assert "93.75" in page.locator('tr[data-unit="79.SNV"]').inner_text()
                assert _accessibility_violations(page) == []
                english = tmp_path / "public-page-en.png"
                page.screenshot(path=str(english), full_page=True)

                page.locator('tr[data-unit="79.SNV"] a').click()
                page.wait_for_selector("h1")
                assert "Satisfaction survey" in page.locator("h1").inner_text()
                assert page.locator("svg.trend polyline").count() == 1  # October and November
                assert _accessibility_violations(page) == []

                phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
                mobile = phone.new_page()
                mobile.goto(publisher.url + "/")
                assert mobile.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), "sideways scrolling on a phone"
                assert mobile.locator('tr[data-unit="79.SNV"]').is_visible()
                phone_shot = tmp_path / "public-page-phone.png"
                mobile.screenshot(path=str(phone_shot), full_page=True)
            finally:
                browser.close()
        print(f"\nscreenshots: {desktop}\n             {english}\n             {phone_shot}")
        assert desktop.stat().st_size > 10_000 and phone_shot.stat().st_size > 10_000
    finally:
        publisher.stop()
