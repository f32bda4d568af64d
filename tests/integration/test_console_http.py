"""The console over real HTTP: uvicorn serving the router, a private redis-server, httpx as the browser.

Covers sign-in, cookies, CSRF refusals, roles, the sign-in rate limit, drafts, retries and escaping.
"""

from __future__ import annotations

import html
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from notifier.domain.model import UNVERIFIED, DeliveryState, Receipt
from notifier.services import delivery
from notifier.store.local_redis import LocalRedis
from tests.console_support import TOKENS, Served, make_app, make_settings, web_app
from tests.support import future_window

pytestmark = pytest.mark.integration


class Receiver(BaseHTTPRequestHandler):
    """A webhook receiver that refuses with 400 until told to accept (a fixable, permanent failure)."""

    accept = False
    refusal = 400
    received: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if not type(self).accept:
            self.send_response(type(self).refusal)
            self.end_headers()
            self.wfile.write(b"unknown field: text")
            return
        type(self).received.append(json.loads(body))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps({"id": "hook-1", "url": "https://chat.example.test/m/1"}).encode())

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    server = LocalRedis(tmp_path_factory.mktemp("redis"), appendfsync="no").start()
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def receiver():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


@pytest.fixture
def app(redis_url, receiver, tmp_path):
    hook = f"  hook:\n    type: webhook\n    url: {receiver}\n"
    application = make_app(make_settings(tmp_path / "outbox.jsonl", hook), redis_url)
    application.store.redis.flushdb()
    Receiver.accept, Receiver.refusal, Receiver.received = False, 400, []
    return application


@pytest.fixture
def served(app):
    with Served(web_app(app)) as server:
        yield server


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def sign_in(base: str, role: str = "publisher", **client_kwargs) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=base, follow_redirects=True, **client_kwargs)
    page = client.get("/console/login")
    response = client.post("/console/login", data={"csrf": csrf_of(page.text),
                                                   "token": TOKENS[f"CONSOLE_{role.upper()}"]})
    assert response.status_code == 200 and response.url.path == "/console/", response.text
    return client, csrf_of(response.text)


INCIDENT = {"kind": "incident", "name": "Mail down", "status": "investigating", "impact": "major",
            "component.imap": "major_outage", "component.smtp": "partial_outage",
            "body.en": "We are looking into it.", "body.de": "Wir schauen nach.", "channels": ["outbox"]}


def test_pages_need_a_session(served):
    response = httpx.get(f"{served.url}/console/compose?kind=update", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login?next=/console/compose%3Fkind%3Dupdate"


def test_sign_in_sets_a_hardened_session_cookie_and_sign_out_ends_it(served, app):
    client = httpx.Client(base_url=served.url)
    page = client.get("/console/login")
    response = client.post("/console/login",
                           data={"csrf": csrf_of(page.text), "token": TOKENS["CONSOLE_EDITOR"]})
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert "notifier_console=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Path=/console" in cookie and "Secure" not in cookie  # plain http here
    dashboard = client.get("/console/")
    assert dashboard.status_code == 200 and "Ed Editor" in dashboard.text
    assert "default-src 'self'" in dashboard.headers["content-security-policy"]
    assert app.store.redis.keys("notifier:console:session:*")
    client.post("/console/logout", data={"csrf": csrf_of(dashboard.text)})
    assert not app.store.redis.keys("notifier:console:session:*")
    assert client.get("/console/").status_code == 303


def test_wrong_token_is_refused(served):
    client = httpx.Client(base_url=served.url)
    page = client.get("/console/login")
    response = client.post("/console/login", data={"csrf": csrf_of(page.text), "token": "guess"})
    assert response.status_code == 401 and "not valid" in response.text
    assert "notifier_console=" not in response.headers.get("set-cookie", "")


def test_cookies_are_secure_behind_a_tls_proxy_that_is_trusted(app):
    with Served(web_app(app, trust_proxy=True)) as server:
        client = httpx.Client(base_url=server.url, headers={"X-Forwarded-Proto": "https"})
        page = client.get("/console/login")
        assert "Secure" in page.headers["set-cookie"]
        login_cookie = page.headers["set-cookie"].split(";")[0]  # a Secure cookie: httpx keeps it off http
        response = client.post("/console/login", headers={"Cookie": login_cookie},
                               data={"csrf": csrf_of(page.text), "token": TOKENS["CONSOLE_VIEWER"]})
    assert response.status_code == 303
    assert "Secure" in response.headers["set-cookie"]


def test_sign_in_without_the_form_token_is_refused(served):
    response = httpx.post(f"{served.url}/console/login", data={"token": TOKENS["CONSOLE_PUBLISHER"]})
    assert response.status_code == 403
    assert "notifier_console=" not in response.headers.get("set-cookie", "")


def test_sign_in_attempts_are_rate_limited_per_address(served):
    client = httpx.Client(base_url=served.url)
    codes = []
    for _ in range(6):
        page = client.get("/console/login")
        codes.append(client.post("/console/login", data={"csrf": csrf_of(page.text), "token": "nope"}))
    assert [r.status_code for r in codes] == [401] * 5 + [429]
    limited = codes[-1]
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert f"Try again in {limited.headers['retry-after']} seconds" in limited.text
    # even the right token waits until the window ends
    page = client.get("/console/login")
    right = client.post("/console/login",
                        data={"csrf": csrf_of(page.text), "token": TOKENS["CONSOLE_PUBLISHER"]})
    assert right.status_code == 429


def test_post_without_csrf_token_is_refused_and_changes_nothing(served, app):
    client, _ = sign_in(served.url)
    response = client.post("/console/compose", data={**INCIDENT, "action": "publish"})
    assert response.status_code == 403 and "CSRF" in response.text
    wrong = client.post("/console/compose", data={**INCIDENT, "action": "publish", "csrf": "forged"})
    assert wrong.status_code == 403
    assert app.store.list_incidents() == []


def test_viewer_cannot_publish_or_draft(served, app):
    client, csrf = sign_in(served.url, "viewer")
    for action in ("publish", "draft"):
        response = client.post("/console/compose", data={**INCIDENT, "action": action, "csrf": csrf})
        assert response.status_code == 403
    assert client.post("/console/preview", data={**INCIDENT, "csrf": csrf}).status_code == 403
    assert app.store.list_incidents() == []
    assert "New incident" not in client.get("/console/").text


def test_editor_drafts_and_a_publisher_approves(served, app):
    editor, csrf = sign_in(served.url, "editor")
    refused = editor.post("/console/compose", data={**INCIDENT, "action": "publish", "csrf": csrf})
    assert refused.status_code == 403 and "publisher role" in refused.text
    saved = editor.post("/console/compose", data={**INCIDENT, "action": "draft", "csrf": csrf})
    assert saved.status_code == 200 and "Saved as a draft" in saved.text
    (incident,) = app.store.list_incidents()
    assert incident.updates[0].draft and app.store.ledger.rows() == []
    assert editor.post("/console/drafts/approve", data={"csrf": csrf, "update_id": incident.updates[0].id}
                       ).status_code == 403

    publisher, pcsrf = sign_in(served.url, "publisher")
    dashboard = publisher.get("/console/").text
    assert "Drafts waiting for approval" in dashboard and "Approve and publish" in dashboard
    approved = publisher.post("/console/drafts/approve",
                              data={"csrf": pcsrf, "update_id": incident.updates[0].id})
    assert approved.status_code == 200 and "Draft approved" in approved.text
    update = app.store.get_incident(incident.id).updates[0]
    assert not update.draft and update.approved_by == "Pia Publisher"
    assert [r.channel for r in app.store.ledger.rows(update_id=update.id)] == ["outbox"]
    assert app.dispatcher.sent == [(f"{update.id}:outbox", "outbox", 0)]


def test_publisher_publishes_and_sees_delivery_states(served, app):
    client, csrf = sign_in(served.url)
    response = client.post("/console/compose", data={**INCIDENT, "channels": ["outbox", "hook"],
                                                     "action": "publish", "csrf": csrf})
    assert response.status_code == 200 and response.url.path == "/console/incidents/inc1"
    statuses = app.store.component_statuses(["imap", "smtp"])
    assert (statuses["imap"], statuses["smtp"]) == ("major_outage", "partial_outage")
    for notice_id, _channel, _ in app.dispatcher.sent:
        delivery.deliver(app, notice_id)  # what the worker does
    dashboard = client.get("/console/").text
    assert 'data-channel="outbox" data-state="posted"' in dashboard
    assert 'data-channel="hook" data-state="failed"' in dashboard
    assert "HTTP 400 from receiver: unknown field: text" in dashboard
    assert "Retry hook" in dashboard


def test_a_post_that_could_not_be_verified_is_shown_as_such(served, app):
    client, csrf = sign_in(served.url)
    client.post("/console/compose", data={**INCIDENT, "channels": ["outbox"], "action": "publish", "csrf": csrf})
    reason = "posted-unverified: <lookup> failed (HTTP 503)"
    assert app.store.ledger.mark_posted("inc1.1:outbox", Receipt("", "", {UNVERIFIED: reason}),
                                        app.clock.timestamp()) == "posted"
    for page in (client.get("/console/incidents/inc1").text, client.get("/console/").text):
        assert 'data-channel="outbox" data-state="posted-unverified"' in page
        assert "Posted, unverified" in page and html.escape(reason, quote=False) in page
        assert 'data-state="posted"' not in page


def test_failed_delivery_is_retried_from_the_page(served, app):
    client, csrf = sign_in(served.url)
    client.post("/console/compose",
                data={**INCIDENT, "channels": ["hook"], "action": "publish", "csrf": csrf})
    delivery.deliver(app, "inc1.1:hook")
    assert app.store.ledger.get("inc1.1:hook").state == DeliveryState.FAILED
    Receiver.accept = True
    page = client.get("/console/incidents/inc1").text
    response = client.post("/console/deliveries/retry",
                           data={"csrf": csrf_of(page), "notice_id": "inc1.1:hook", "back": "inc1"})
    assert response.status_code == 200 and response.url.path == "/console/incidents/inc1"
    assert app.store.ledger.get("inc1.1:hook").state == DeliveryState.PENDING
    delivery.deliver(app, "inc1.1:hook")
    page = client.get("/console/incidents/inc1").text
    assert 'data-channel="hook" data-state="posted"' in page
    assert 'href="https://chat.example.test/m/1"' in page
    assert len(Receiver.received) == 1
    assert "2 attempts" in page and "Text sent (1 post)" in page  # the delivery's own history
    assert html.escape(Receiver.received[0]["text"], quote=False) in page


def test_user_text_is_escaped_everywhere(served, app):
    client, csrf = sign_in(served.url)
    evil = '<script>window.pwned=1</script><img src=x onerror="alert(1)">'
    data = {**INCIDENT, "name": f"Mail {evil}", "body.en": f"Body {evil}", "action": "publish", "csrf": csrf}
    preview = client.post("/console/preview", data=data)
    client.post("/console/compose", data=data)
    pages = [preview.text, client.get("/console/").text, client.get("/console/incidents/inc1").text]
    for body in pages:
        assert "<script>window.pwned" not in body and "<img src=x" not in body
        assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in body


def test_preview_is_exactly_what_the_channel_then_publishes(served, app):
    client, csrf = sign_in(served.url)
    client.post("/console/compose", data={**INCIDENT, "action": "publish", "csrf": csrf})
    follow_up = {"kind": "update", "incident_id": "inc1", "status": "identified", "impact": "major",
                 "body.en": 'A full disk; "quotes" & <angle brackets> stay as typed.', "channels": ["outbox"],
                 "csrf": csrf}
    response = client.post("/console/preview", data={**follow_up, "action": "preview"})
    assert response.status_code == 200
    shown = html.unescape(re.search(r'<pre class="post-text">(.*?)</pre>', response.text, re.S).group(1))
    client.post("/console/compose", data={**follow_up, "action": "publish"})
    delivery.deliver(app, "inc1.2:outbox")
    lines = app.channels["outbox"].path.read_text(encoding="utf-8").splitlines()
    published = [json.loads(line) for line in lines]
    assert [p["text"] for p in published if p["notice_id"] == "inc1.2:outbox"] == [shown]
    assert "#INC1\u00b72" in shown


def test_bad_form_is_shown_again_with_field_errors(served, app):
    client, csrf = sign_in(served.url)
    response = client.post("/console/compose", data={**INCIDENT, "name": "", "component.imap": "on_fire",
                                                     "action": "publish", "csrf": csrf})
    assert response.status_code == 400
    assert "give the incident a short title" in response.text
    assert 'id="err-component-imap"' in response.text
    assert app.store.list_incidents() == []


def test_maintenance_is_scheduled_and_listed_as_upcoming(served, app):
    client, csrf = sign_in(served.url)
    starts, ends = future_window(start_hour=22, minutes=90)
    response = client.post("/console/compose", data={
        "kind": "maintenance", "name": "Mail server upgrade", "status": "scheduled", "impact": "minor",
        "component.smtp": "under_maintenance", "body.en": "We upgrade the mail servers.",
        "scheduled_for": f"{starts:%Y-%m-%dT%H:%M}", "scheduled_until": f"{ends:%Y-%m-%dT%H:%M}",
        "channels": ["outbox"], "action": "publish", "csrf": csrf})
    assert response.status_code == 200 and response.url.path == "/console/incidents/mnt1"
    incident = app.store.get_incident("mnt1")
    assert incident.kind == "maintenance"
    assert incident.scheduled_for == starts  # the form's local time read as UTC
    upcoming = client.get("/console/").text.split('id="maint-title"')[1].split("</section>")[0]
    assert "Mail server upgrade" in upcoming and f"{starts:%Y-%m-%d} 22:00 UTC" in upcoming


def test_update_and_resolution_build_the_timeline(served, app):
    client, csrf = sign_in(served.url)
    client.post("/console/compose", data={**INCIDENT, "action": "publish", "csrf": csrf})
    client.post("/console/compose", data={"kind": "update", "incident_id": "inc1", "status": "monitoring",
                                          "impact": "minor", "body.en": "A fix is deployed.",
                                          "channels": ["outbox"], "action": "publish", "csrf": csrf})
    resolved = client.post("/console/compose", data={"kind": "resolve", "incident_id": "inc1",
                                                     "status": "resolved", "body.en": "All good again.",
                                                     "body.de": "Alles wieder gut.", "channels": ["outbox"],
                                                     "action": "publish", "csrf": csrf})
    assert resolved.status_code == 200
    incident = app.store.get_incident("inc1")
    assert [u.status for u in incident.updates] == ["investigating", "monitoring", "resolved"]
    assert not incident.is_open
    for nid in ("inc1.1:outbox", "inc1.2:outbox"):
        delivery.deliver(app, nid)
    page = client.get("/console/incidents/inc1").text
    order = [page.index(f'data-update="inc1.{n}"') for n in (3, 2, 1)]
    assert order == sorted(order)  # newest first
    assert page.count('data-state="posted"') == 2 and page.count('data-state="pending"') == 1
    assert "Alles wieder gut." in page and "Post update" not in page
    dashboard = client.get("/console/").text
    assert 'data-incident="inc1"' not in dashboard  # no longer open
    assert "Recent" in dashboard


def test_unknown_incident_is_a_clear_404(served):
    client, _ = sign_in(served.url, "viewer")
    response = client.get("/console/incidents/inc404")
    assert response.status_code == 404 and "no incident &#39;inc404&#39;" in response.text


def unknown_outcome(app) -> None:
    """A 500 may or may not have posted; without a status_url the webhook cannot check: held unknown."""
    Receiver.refusal = 500
    delivery.deliver(app, "inc1.1:hook")
    app.store.redis.hset(app.store.ledger.row_key("inc1.1:hook"), "next_at", 0)  # skip the backoff
    delivery.deliver(app, "inc1.1:hook")
    row = app.store.ledger.get("inc1.1:hook")
    assert row.state == DeliveryState.UNKNOWN and "status_url" in row.last_error


@pytest.mark.parametrize(("button", "state"), [("It is not there: send again", "posted"),
                                               ("It is there: mark posted", "posted")])
def test_unknown_delivery_is_settled_by_a_person(served, app, button, state):
    client, csrf = sign_in(served.url)
    client.post("/console/compose",
                data={**INCIDENT, "channels": ["hook"], "action": "publish", "csrf": csrf})
    unknown_outcome(app)
    page = client.get("/console/incidents/inc1").text
    assert 'data-channel="hook" data-state="unknown"' in page and button in page
    form = page.split(button)[0].rsplit("<form", 1)[1]
    action = re.search(r'action="([^"]+)"', form).group(1)
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', form))
    Receiver.accept = True
    response = client.post(action, data=fields)
    assert response.status_code == 200
    if fields.get("force") == "yes":
        assert app.store.ledger.get("inc1.1:hook").state == DeliveryState.PENDING
        delivery.deliver(app, "inc1.1:hook")
        assert len(Receiver.received) == 1
    else:
        assert Receiver.received == []  # a person saw the post: nothing is sent again
    assert app.store.ledger.get("inc1.1:hook").state.value == state


def test_revoking_a_token_ends_its_sessions_and_a_role_change_applies_at_once(served, app):
    editor, _ = sign_in(served.url, "editor")
    publisher, csrf = sign_in(served.url, "publisher")
    tokens = app.settings.staff.tokens
    app.settings.staff.tokens = [
        t.model_copy(update={"role": "viewer"}) if t.name == "Pia Publisher" else t
        for t in tokens if t.name != "Ed Editor"
    ]
    try:
        response = editor.get("/console/", follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/console/login")
        assert len(app.store.redis.keys("notifier:console:session:*")) == 1  # the editor's is gone
        demoted = publisher.post("/console/compose", data={**INCIDENT, "action": "publish", "csrf": csrf})
        assert demoted.status_code == 403 and "you are signed in as viewer" in demoted.text
        assert app.store.list_incidents() == []
    finally:
        app.settings.staff.tokens = tokens
