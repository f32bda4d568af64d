"""The console in headless Chromium against a real uvicorn, Redis and delivery path.

A publisher composes and publishes an incident on two components and watches it get delivered; an
editor's draft waits for a publisher; a failed delivery is retried from the page; HTML and script
typed by a person stay text. Screenshots land in test-artifacts/ for a human to look at.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from notifier.services import delivery
from tests.console_support import TOKENS, Served, make_app, make_settings, start_redis, web_app

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
EVIL = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason=f"{CHROMIUM} is missing: apt-get install chromium"),
]


class Hook(BaseHTTPRequestHandler):
    """A chat-ops webhook receiver that answers 400 until a person 'fixes' it."""

    accept = False
    received: list[bytes] = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if not type(self).accept:
            self.send_response(400)
            self.end_headers()
            self.wfile.write(b"channel #status is archived")
            return
        type(self).received.append(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"id": "m1", "url": "https://chat.example.test/m1"}')

    def log_message(self, *args):
        pass


class ThreadDispatcher:
    """Runs the real delivery service on worker threads, standing in for the Celery worker."""

    def __init__(self) -> None:
        self.app = None
        self.pool = ThreadPoolExecutor(2)

    def deliver(self, notice_id: str, channel: str, countdown: float = 0) -> None:
        self.pool.submit(delivery.deliver, self.app, notice_id)

    def wake_engine(self) -> None:
        pass


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("console-e2e")
    redis_proc, redis_url = start_redis(tmp / "redis")
    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    extra = f"  hook:\n    type: webhook\n    url: http://127.0.0.1:{hook.server_address[1]}/hook\n"
    dispatcher = ThreadDispatcher()
    app = make_app(make_settings(tmp / "outbox.jsonl", extra), redis_url, dispatcher=dispatcher)
    dispatcher.app = app
    try:
        with Served(web_app(app)) as server:
            yield {"app": app, "url": server.url, "outbox": tmp / "outbox.jsonl"}
    finally:
        dispatcher.pool.shutdown(wait=True)
        hook.shutdown()
        redis_proc.terminate()
        redis_proc.wait(10)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


def sign_in(browser, base: str, role: str, **context_args):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, **context_args)
    page = context.new_page()
    page.goto(f"{base}/console/")
    page.get_by_label("Staff token").fill(TOKENS[f"CONSOLE_{role.upper()}"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/console/")
    return page


def wait_for_state(page, selector: str, attempts: int = 100) -> None:
    """Reload until the delivery row shows up (deliveries run on other threads)."""
    for _ in range(attempts):
        if page.locator(selector).count():
            return
        time.sleep(0.1)
        page.reload()
    raise AssertionError(f"{selector} never appeared; page said:\n{page.locator('main').inner_text()}")


def test_publisher_composes_previews_and_publishes(stack, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    Hook.accept = True
    page = sign_in(browser, stack["url"], "publisher")
    page.get_by_role("link", name="New incident").click()
    page.get_by_label("Title").fill(f"Mail delayed {EVIL}")
    page.get_by_label("IMAP").select_option("major_outage")
    page.get_by_label("SMTP").select_option("partial_outage")
    page.get_by_label("Impact").select_option("major")
    page.get_by_label("Message (English)").fill(f"Incoming mail is delayed. {EVIL}")
    page.get_by_label("Message (German)").fill("Eingehende E-Mails verspäten sich.")
    # the live preview follows the typing (JavaScript on): the channel's own text, escaped
    preview = page.locator('#previews .preview[data-channel="outbox"] .post-text')
    preview.filter(has_text="Incoming mail is delayed.").wait_for()
    assert "[Investigating] Mail delayed <script>window.pwned=1</script>" in preview.inner_text()
    assert page.locator('#previews .preview[data-channel="hook"]').count() == 1
    page.screenshot(path=str(ARTIFACTS / "console-composer.png"), full_page=True)

    page.get_by_role("button", name="Publish now").click()
    page.wait_for_url("**/console/incidents/inc1?done=published")
    assert page.get_by_role("heading", level=1).inner_text() == f"Mail delayed {EVIL}"
    page.goto(f"{stack['url']}/console/")
    wait_for_state(page, '[data-incident="inc1"] tr[data-channel="outbox"][data-state="posted"]')
    wait_for_state(page, '[data-incident="inc1"] tr[data-channel="hook"][data-state="posted"]')
    assert page.locator('[data-incident="inc1"] a', has_text="View live post").get_attribute("href") == \
        "https://chat.example.test/m1"
    assert page.locator('[data-component="imap"] .pill').inner_text() == "Major outage"
    assert page.locator('[data-component="smtp"] .pill').inner_text() == "Partial outage"
    assert page.evaluate("typeof window.pwned") == "undefined"
    assert page.locator("main script").count() == 0 and page.locator("main img").count() == 0
    page.screenshot(path=str(ARTIFACTS / "console-dashboard.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(ARTIFACTS / "console-dashboard-phone.png"), full_page=True)
    written = stack["outbox"].read_text()
    assert "#INC1\u00b71" in written and "Incoming mail is delayed." in written
    page.context.close()


def test_editor_draft_waits_for_a_publisher(stack, browser):
    Hook.accept = True
    editor = sign_in(browser, stack["url"], "editor")
    editor.goto(f"{stack['url']}/console/compose?kind=update&incident=inc1")
    assert editor.get_by_role("button", name="Publish now").count() == 0
    editor.get_by_label("Status").select_option("identified")
    editor.get_by_label("Message (English)").fill("A full disk on the mail relay; we are freeing space.")
    editor.get_by_role("button", name="Save draft for approval").click()
    editor.wait_for_url("**/console/incidents/inc1?done=draft")
    assert stack["app"].store.ledger.rows(update_id="inc1.2") == []
    editor.context.close()

    publisher = sign_in(browser, stack["url"], "publisher")
    draft = publisher.locator('li.draft[data-update="inc1.2"]')
    assert "A full disk on the mail relay" in draft.inner_text()
    draft.get_by_role("button", name="Approve and publish").click()
    publisher.wait_for_url("**/console/?done=approved")
    assert publisher.locator("li.draft").count() == 0
    wait_for_state(publisher, '[data-incident="inc1"] tr[data-channel="outbox"][data-state="posted"]')
    assert "#INC1\u00b72" in stack["outbox"].read_text()
    publisher.context.close()


def test_failed_delivery_is_retried_from_the_page(stack, browser):
    Hook.accept = False
    page = sign_in(browser, stack["url"], "publisher")
    page.goto(f"{stack['url']}/console/compose?kind=broadcast")
    page.get_by_label("Message (English)").fill("Our support line is closed today.")
    page.get_by_label("outbox").uncheck()
    page.get_by_role("button", name="Publish now").click()
    page.wait_for_url("**/console/incidents/brd*")
    row = 'tr[data-channel="hook"][data-state="failed"]'
    wait_for_state(page, row)
    assert "channel #status is archived" in page.locator(row).inner_text()
    Hook.accept = True
    page.locator(row).get_by_role("button", name="Retry hook").click()
    wait_for_state(page, 'tr[data-channel="hook"][data-state="posted"]')
    assert any(b"Our support line is closed today." in body for body in Hook.received)
    page.context.close()


def test_preview_works_without_javascript(stack, browser):
    page = sign_in(browser, stack["url"], "publisher", java_script_enabled=False)
    page.goto(f"{stack['url']}/console/compose?kind=incident")
    page.get_by_label("Title").fill("Webmail slow")
    page.get_by_label("Webmail").select_option("degraded_performance")
    page.get_by_role("button", name="Preview").click()
    text = page.locator('.preview[data-channel="outbox"] .post-text').inner_text()
    assert text.startswith("[Investigating] Webmail slow: We are investigating problems with")
    page.context.close()
