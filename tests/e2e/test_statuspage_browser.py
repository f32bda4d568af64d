"""What a visitor sees, in headless Chromium (Debian's chromium driven by Playwright) over real HTTP."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from notifier.statuspage.generator import render_site
from notifier.statuspage.publish import DirectoryTarget
from notifier.statuspage.serve import serve_in_thread
from tests.fakes.statuspage_model import EVIL, NOW, sample_snapshot

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing: apt-get install chromium"
    ),
]


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("browser") / "site"
    # built "now" so the freshness check stays quiet; the evil text exercises escaping in a real DOM
    from datetime import UTC, datetime

    now = datetime.now(UTC).replace(microsecond=0)
    snap = sample_snapshot(now=now, evil=True)
    DirectoryTarget(root).publish(render_site(snap, now), now)
    server = serve_in_thread(root)
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            yield b
        finally:
            b.close()


def test_visitor_sees_components_incident_maintenance_and_bars(browser: Any, base_url: str) -> None:
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    try:
        page.goto(base_url + "index.html")
        assert page.locator("#h-status").inner_text().endswith("Major System Outage")
        imap = page.locator("#c-imap")
        assert "IMAP" in imap.inner_text() and "Major outage" in imap.inner_text()
        assert "Under maintenance" in page.locator("#c-webmail").inner_text()
        incidents = page.locator("section[aria-labelledby=h-incidents] article")
        assert incidents.count() == 1 and "A storage node failed." in incidents.first.inner_text()
        maint = page.locator("section[aria-labelledby=h-maint] article")
        assert maint.count() == 2
        assert (
            "Webmail upgrade" in maint.nth(0).inner_text() and "SMTP relay move" in maint.nth(1).inner_text()
        )
        # bars: 90 days per component, today's red day with its minutes in the tooltip
        widths = page.eval_on_selector_all(
            "#c-imap .bars i", "els => els.map(e => e.getBoundingClientRect().width)"
        )
        assert all(w > 0 for w in widths)
        # one day is 1/90 of the bar as the browser lays it out under the page's CSP (a style=flex:N
        # attribute is dropped by style-src 'self': every merged run was one day wide)
        assert widths[-1] == pytest.approx(sum(widths) / 90, rel=0.05)
        today = page.locator("#c-imap .bars i").last
        assert today.get_attribute("class") == "x" and "Major outage 60 min" in (
            today.get_attribute("title") or ""
        )
        colour = today.evaluate("e => getComputedStyle(e).backgroundColor")
        assert colour == "rgb(198, 40, 40)"
        assert page.locator("#stale").is_hidden()  # fresh: no warning
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "statuspage-index.png"), full_page=True)
        page.set_viewport_size({"width": 390, "height": 844})  # a phone
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        # long unbroken user text wraps inside its card instead of running out of it
        assert page.eval_on_selector_all(".card, .comp", "els => els.every(e => e.scrollWidth <= e.clientWidth + 1)")
        page.screenshot(path=str(ARTIFACTS / "statuspage-phone.png"), full_page=False)
    finally:
        page.close()


def test_incident_html_is_shown_as_text_and_never_executed(browser: Any, base_url: str) -> None:
    page = browser.new_page()
    try:
        for path in ("index.html", "incidents/inc2.html", "de/index.html", "history.html"):
            page.goto(base_url + path)
            page.wait_for_load_state("load")
            assert page.evaluate("typeof window.pwned") == "undefined", path
            assert page.locator("img[src=x]").count() == 0 and page.locator("main b").count() == 0
        page.goto(base_url + "incidents/inc2.html")
        assert f"IMAP outage {EVIL}" == page.locator("h1").inner_text()
        assert EVIL in page.locator(".timeline").inner_text()
    finally:
        page.close()


def test_stale_warning_appears_when_the_page_is_old_and_works_without_javascript(
    browser: Any, tmp_path: Path
) -> None:
    root = tmp_path / "site"
    old = NOW - timedelta(days=3)
    DirectoryTarget(root).publish(render_site(sample_snapshot(now=old), old), old)
    server = serve_in_thread(root)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/index.html"
        page = browser.new_page()
        page.goto(url)
        assert page.locator("#stale").is_visible()
        page.close()
        context = browser.new_context(java_script_enabled=False)
        quiet = context.new_page()
        quiet.goto(url)
        assert quiet.locator("#stale").is_hidden()
        assert "2026-11-21 12:00 UTC" in quiet.locator("#updated").inner_text()  # the time needs no script
        assert "IMAP" in quiet.locator("#c-imap").inner_text()
        context.close()
    finally:
        server.shutdown()
