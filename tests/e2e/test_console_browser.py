"""The console in headless Chromium against a real uvicorn, Redis and delivery path.

A publisher composes and publishes an incident on two components and watches it get delivered; an
editor's draft waits for a publisher; a failed delivery is retried from the page; HTML and script
typed by a person stay text. Screenshots land in test-artifacts/ for a human to look at.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import redis

from notifier.api.app import create_app
from notifier.bootstrap import build
from notifier.config_loader import load_settings
from notifier.store.local_redis import LocalRedis
from tests.console_support import TOKENS, Served
from tests.fakes.graph_api import PAGE_ID, FakeGraphApi
from tests.fakes.graph_api import TOKEN as FB_TOKEN
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.fakes.x_api import FakeXApi
from tests.support import future_window, start_worker, write_config
from workers.dispatch import CeleryDispatcher

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
COMPONENTS = [{"id": "imap", "name": "IMAP", "group": "Mail"}, {"id": "smtp", "name": "SMTP", "group": "Mail"},
              {"id": "webmail", "name": "Webmail", "group": "Web"}]
STAFF = {"tokens": [
    {"name": "Pia Publisher", "token": "${CONSOLE_PUBLISHER}", "role": "publisher"},
    {"name": "Ed Editor", "token": "${CONSOLE_EDITOR}", "role": "editor"},
]}
SECRETS = {**TOKENS, "X_USER_TOKEN": "oauth2-user-token-1", "FB_PAGE_TOKEN": FB_TOKEN}
EVIL = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason=f"{CHROMIUM} is missing: apt-get install chromium"),
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Redis (AOF), a real Celery worker, the console under uvicorn, a webhook receiver."""
    tmp = tmp_path_factory.mktemp("console-e2e")
    redis_server = LocalRedis(tmp / "redis").start()
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    receiver = WebhookReceiver().__enter__()
    receiver.fail_status = 400  # a refusal a person must fix: the notice becomes failed, not retried
    x_api, graph = FakeXApi().start(), FakeGraphApi().start()
    channels = {
        "x": {"type": "x", "api_base_url": x_api.url, "user_token": "${X_USER_TOKEN}"},
        "facebook": {"type": "facebook", "graph_url": graph.url, "page_id": PAGE_ID,
                     "page_token": "${FB_PAGE_TOKEN}"},
        "hook": {"type": "webhook", "url": receiver.url},
        "page": {"type": "statuspage", "target": "directory", "path": str(tmp / "site")},
    }
    config = write_config(tmp / "notifier.yaml", redis_server.url, channels, staff=STAFF, components=COMPONENTS,
                          page={"name": "Example Mail", "url": "https://status.example.com/", "language": "en"})
    settings = load_settings(config, env={**os.environ, **SECRETS})
    worker = start_worker(config, client, tmp / "worker.log", extra_env=SECRETS)
    app = build(settings, dispatcher=CeleryDispatcher(settings))
    _SESSIONS.clear()
    try:
        # the real API app, which includes the console the way production does
        with Served(create_app(app)) as server:
            yield {"app": app, "url": server.url, "receiver": receiver, "x": x_api, "facebook": graph,
                   "site": tmp / "site",
                   "channels": list(channels)}
    finally:
        worker.stop()
        x_api.stop()
        graph.stop()
        receiver.__exit__(None, None, None)
        client.close()
        redis_server.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


_SESSIONS: dict[str, dict] = {}


def sign_in(browser, base: str, role: str, **context_args):
    """A page signed in as ``role``: through the sign-in form the first time, then with that session.

    Reusing the session keeps the module under the sign-in rate limit (5 a minute from 127.0.0.1).
    """
    context = browser.new_context(viewport={"width": 1280, "height": 900}, storage_state=_SESSIONS.get(role),
                                  **context_args)
    page = context.new_page()
    page.goto(f"{base}/console/")
    if role not in _SESSIONS:
        page.get_by_label("Staff token").fill(TOKENS[f"CONSOLE_{role.upper()}"])
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{base}/console/")
        _SESSIONS[role] = context.storage_state()
    assert page.url == f"{base}/console/", page.url
    return page


def only(page, *channels: str) -> None:
    for box in page.locator('input[name="channels"]').all():
        if box.get_attribute("value") not in channels:
            box.uncheck()


def wait_for_state(page, selector: str, attempts: int = 300) -> None:
    """Reload until the delivery row shows up (the worker delivers in its own process)."""
    for _ in range(attempts):
        if page.locator(selector).count():
            return
        time.sleep(0.1)
        page.reload()
    raise AssertionError(f"{selector} never appeared; page said:\n{page.locator('main').inner_text()}")


LONG_EN = ("Incoming mail is delayed by up to 30 minutes because a storage node of the mail relay failed. "
           "No mail is lost: every message is queued and will be delivered once the node is back. Sending "
           "works normally. We will post the next update within 30 minutes, or earlier if anything changes.")
LONG_DE = "Eingehende E-Mails verspäten sich um bis zu 30 Minuten. Es geht keine Nachricht verloren."


def test_publisher_composes_previews_and_publishes(stack, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    stack["receiver"].failing = False
    page = sign_in(browser, stack["url"], "publisher")
    page.get_by_role("link", name="New incident").click()
    page.get_by_label("Title").fill("Mail delivery delayed")
    page.get_by_label("IMAP").select_option("major_outage")
    page.get_by_label("SMTP").select_option("partial_outage")
    page.get_by_label("Impact").select_option("major")
    page.get_by_label("Message (English)").fill(LONG_EN)
    page.get_by_label("Message (German)").fill(LONG_DE)
    # the live preview follows the typing (JavaScript on), rendered by each channel itself
    hook_preview = page.locator('#previews .preview[data-channel="hook"] .post-text')
    hook_preview.filter(has_text="Sending works normally").wait_for()
    assert hook_preview.inner_text().startswith("[Investigating] Mail delivery delayed: Incoming mail")
    # over 280 weighted characters, X gets a thread, each post with its weighted length
    x_preview = page.locator('#previews .preview[data-channel="x"]')
    x_preview.filter(has_text="Thread of 2 posts").wait_for()
    lengths = [int(n) for n in x_preview.locator(".length").evaluate_all(
        "els => els.map(e => e.dataset.length)")]
    assert len(lengths) == 2 and all(0 < n <= 280 for n in lengths), lengths
    assert x_preview.locator(".length").first.inner_text().endswith("/ 280 weighted characters")
    assert x_preview.locator(".too-long").count() == 0
    previewed = x_preview.locator(".post-text").all_inner_texts()
    fb_text = page.locator('#previews .preview[data-channel="facebook"] .post-text').inner_text()
    assert "storage node of the mail relay failed" in fb_text
    unlabelled = page.evaluate("""() => [...document.querySelectorAll(
        'input:not([type=hidden]), select, textarea')].filter(el => !el.labels.length).map(el => el.name)""")
    assert unlabelled == []
    assert page.locator("header").count() == 1 and page.locator("main#main").count() == 1
    assert page.locator("nav[aria-label]").count() >= 1
    page.evaluate("document.activeElement.blur()")
    page.screenshot(path=str(ARTIFACTS / "console-composer.png"), full_page=True)

    page.get_by_role("button", name="Publish now").click()
    page.wait_for_url("**/console/incidents/inc1?done=published")
    page.goto(f"{stack['url']}/console/")
    for channel in stack["channels"]:
        wait_for_state(page, f'[data-incident="inc1"] tr[data-channel="{channel}"][data-state="posted"]')
    assert page.locator('[data-component="imap"] .pill').inner_text() == "Major outage"
    assert page.locator('[data-component="smtp"] .pill').inner_text() == "Partial outage"
    assert [item["key"] for item in stack["receiver"].received] == ["inc1.1:hook"]
    assert page.locator('[data-incident="inc1"] tr[data-channel="hook"] a').get_attribute("href") == \
        "http://receiver.invalid/msg-1"
    x_link = page.locator('[data-incident="inc1"] tr[data-channel="x"] a', has_text="View live post")
    assert "/status/" in x_link.get_attribute("href")
    tweets = stack["x"].posts()
    assert len(tweets) == 2 and tweets[1].in_reply_to == tweets[0].id
    # the preview did not lie: the same posts, once the new incident got its number (inc0 -> inc1)
    assert [t.text for t in tweets] == [p.replace("inc0", "inc1").replace("INC0", "INC1") for p in previewed]
    assert "#INC1\u00b71" in tweets[-1].text
    (post,) = stack["facebook"].all_posts()
    assert "storage node of the mail relay failed" in post.message
    built = (stack["site"] / "incidents" / "inc1.html").read_text()
    assert "Mail delivery delayed" in built and "storage node of the mail relay failed" in built
    page.context.close()


def test_editor_draft_waits_for_a_publisher(stack, browser):
    stack["receiver"].failing = False
    editor = sign_in(browser, stack["url"], "editor")
    editor.goto(f"{stack['url']}/console/compose?kind=update&incident=inc1")
    assert editor.get_by_role("button", name="Publish now").count() == 0
    editor.get_by_label("Incident status").select_option("identified")
    editor.get_by_label("Message (English)").fill("A full disk on the mail relay; we are freeing space.")
    editor.get_by_label("Message (German)").fill("Eine volle Platte am Mail-Relay; wir schaffen Platz.")
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
    wait_for_state(publisher, '[data-incident="inc1"] tr[data-channel="hook"][data-state="posted"]')
    assert "inc1.2:hook" in [item["key"] for item in stack["receiver"].received]
    publisher.context.close()


def test_failed_delivery_is_retried_from_the_page(stack, browser):
    stack["receiver"].failing = True
    page = sign_in(browser, stack["url"], "publisher")
    page.goto(f"{stack['url']}/console/compose?kind=broadcast")
    page.get_by_label("Message (English)").fill("Our support line is closed today.")
    only(page, "hook")
    page.get_by_role("button", name="Publish now").click()
    page.wait_for_url("**/console/incidents/brd*")
    row = 'tr[data-channel="hook"][data-state="failed"]'
    wait_for_state(page, row)
    assert "HTTP 400 from receiver" in page.locator(row).inner_text()
    stack["receiver"].failing = False
    page.locator(row).get_by_role("button", name="Retry hook").click()
    page.wait_for_url("**/console/incidents/brd*?done=retried")
    # no reload: the page refreshes its delivery states by itself (every 10 s) while JavaScript is on
    page.locator('tr[data-channel="hook"][data-state="posted"]').wait_for(timeout=40_000)
    assert any("Our support line is closed today." in item["body"]["text"] for item in stack["receiver"].received)
    page.context.close()


def test_preview_works_without_javascript(stack, browser):
    page = sign_in(browser, stack["url"], "publisher", java_script_enabled=False)
    page.goto(f"{stack['url']}/console/compose?kind=incident")
    page.get_by_label("Title").fill("Webmail slow")
    page.get_by_label("Webmail").select_option("degraded_performance")
    page.get_by_role("button", name="Preview").click()
    text = page.locator('.preview[data-channel="hook"] .post-text').inner_text()
    assert text.startswith("[Investigating] Webmail slow: We are investigating problems with")
    page.context.close()


def test_dashboard_screenshots(stack, browser):
    """A dashboard with something in every section, on a desktop and on a phone."""
    editor = sign_in(browser, stack["url"], "editor")
    editor.goto(f"{stack['url']}/console/compose?kind=update&incident=inc1")
    editor.get_by_label("Incident status").select_option("monitoring")
    editor.get_by_label("Message (English)").fill("Space is freed and the queue is draining; we keep watching.")
    editor.get_by_label("Message (German)").fill("Der Platz ist frei, die Warteschlange leert sich; wir beobachten.")
    editor.get_by_role("button", name="Save draft for approval").click()
    editor.wait_for_url("**/console/incidents/inc1?done=draft")
    editor.goto(f"{stack['url']}/console/compose?kind=maintenance")  # an editor cannot draft a window
    editor.get_by_label("Title").fill("Webmail upgrade")
    editor.get_by_label("Webmail").select_option("under_maintenance")
    starts, ends = future_window(start_hour=22, minutes=90, days_ahead=30)
    editor.get_by_label("Starts (UTC)").fill(f"{starts:%Y-%m-%dT%H:%M}")
    editor.get_by_label("Ends (UTC)").fill(f"{ends:%Y-%m-%dT%H:%M}")
    editor.get_by_role("button", name="Save draft for approval").click()
    assert "cannot be a draft" in editor.locator("main").inner_text()
    editor.context.close()

    page = sign_in(browser, stack["url"], "publisher")  # a publisher schedules it, as API and CLI do
    page.goto(f"{stack['url']}/console/compose?kind=maintenance")
    page.get_by_label("Title").fill("Webmail upgrade")
    page.get_by_label("Webmail").select_option("under_maintenance")
    page.get_by_label("Starts (UTC)").fill(f"{starts:%Y-%m-%dT%H:%M}")
    page.get_by_label("Ends (UTC)").fill(f"{ends:%Y-%m-%dT%H:%M}")
    page.get_by_role("button", name="Publish now").click()
    page.wait_for_url("**/console/incidents/mnt*")
    page.goto(f"{stack['url']}/console/")
    assert "Webmail upgrade" in page.locator("section", has=page.locator("#maint-title")).inner_text()
    assert page.locator("li.draft").count() == 1  # the editor's update still waits
    page.screenshot(path=str(ARTIFACTS / "console-dashboard.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(ARTIFACTS / "console-dashboard-phone.png"), full_page=True)
    page.goto(f"{stack['url']}/console/incidents/inc1")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.screenshot(path=str(ARTIFACTS / "console-timeline.png"), full_page=True)
    page.context.close()


def test_html_and_script_typed_by_a_person_stay_text(stack, browser):
    page = sign_in(browser, stack["url"], "publisher")
    page.goto(f"{stack['url']}/console/compose?kind=incident")
    page.get_by_label("Title").fill(f"Login {EVIL}")
    page.get_by_label("Message (English)").fill(f"Body {EVIL}")
    only(page, "hook", "page")
    preview = page.locator('#previews .preview[data-channel="hook"] .post-text')
    preview.filter(has_text="Body <script>").wait_for()
    assert f"[Investigating] Login {EVIL}: Body {EVIL}" in preview.inner_text()
    page_preview = page.locator('#previews .preview[data-channel="page"] .post-text').inner_text()
    assert page_preview == f"Login {EVIL}: Body {EVIL}"
    page.get_by_role("button", name="Publish now").click()
    page.wait_for_url("**/console/incidents/inc*?done=published")
    incident_id = page.url.rsplit("/", 1)[1].split("?")[0]
    assert page.get_by_role("heading", level=1).inner_text() == f"Login {EVIL}"
    wait_for_state(page, 'tr[data-channel="page"][data-state="posted"]')
    timeline = page.url
    page.goto(f"{stack['url']}/console/")
    assert page.locator("article.incident", has_text="Login <script>").count() == 1
    for url in (f"{stack['url']}/console/", timeline):
        page.goto(url)
        assert page.evaluate("typeof window.pwned") == "undefined"
        assert page.locator("main script, main img").count() == 0
    # and on the status page the channel built, opened in the same browser
    page.goto((stack["site"] / "incidents" / f"{incident_id}.html").resolve().as_uri())
    assert f"Login {EVIL}" in page.locator("body").inner_text()
    assert page.evaluate("typeof window.pwned") == "undefined"
    page.context.close()
