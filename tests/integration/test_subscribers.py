"""E-mail subscribers end to end against a real SMTP server (aiosmtpd) and a real Redis: the public form,
double opt-in, scope, headers, threading, both languages, one-click unsubscribe, bad input."""

from __future__ import annotations

import re
import urllib.parse

import httpx
import pytest

from notifier.api import create_app
from notifier.config_loader import parse_settings
from notifier.domain.subscribers import WebhookSubscriber, confirm_token, sign
from notifier.services import delivery, incidents, subscriptions
from tests.fakes.smtp_sink import SmtpSink
from tests.integration._api_support import ApiServer, make_app, redis_server

pytestmark = pytest.mark.integration

SECRET = "sub-secret-0123456789abcdef"
SUBSCRIBE_URL = "http://notifier.test/subscribe"
CONFIG = """
page: {name: Example Mail, url: "http://status.test/", languages: [en, de], subscribe_url: "%(url)s"}
redis: {key_prefix: "s:"}
components:
  - {id: imap, name: IMAP, group: Mail}
  - {id: smtp, name: SMTP, group: Mail}
  - {id: webmail, name: Webmail, names: {de: Webmailer}}
channels:
  mail: {type: email}
staff:
  tokens:
    - {name: vera, role: viewer, token: "${VIEWER_TOKEN}"}
    - {name: pia, role: publisher, token: "${PUBLISHER_TOKEN}"}
subscribers:
  secret: "${SUB_SECRET}"
  per_client: %(per_client)d
  per_address: 3
  relay: {host: 127.0.0.1, port: %(port)d, security: none, from_address: status@example.net,
          messages_per_connection: %(per_conn)d}
"""
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def settings(smtp_port: int, per_client: int = 1000, per_conn: int = 100, url: str = SUBSCRIBE_URL):
    text = CONFIG % {"port": smtp_port, "per_client": per_client, "per_conn": per_conn, "url": url}
    return parse_settings(text, "test", env={"SUB_SECRET": SECRET, "VIEWER_TOKEN": "viewer-tok",
                                             "PUBLISHER_TOKEN": "publisher-tok"})


@pytest.fixture(scope="module")
def sink():
    with SmtpSink() as s:
        yield s


@pytest.fixture(scope="module")
def stack(tmp_path_factory, sink):
    tmp = tmp_path_factory.mktemp("subscribers")
    with redis_server(tmp / "redis") as (_, port):
        app = make_app(settings(sink.port), port)
        with ApiServer(create_app(app)) as server, httpx.Client(base_url=server.url, timeout=10) as http:
            yield app, http


@pytest.fixture(autouse=True)
def clean(stack, sink):
    stack[0].redis.flushdb()
    sink.clear()


def post(http, data, headers=FORM):
    return http.post("/subscribe", content=urllib.parse.urlencode(data, doseq=True), headers=headers)


def link(message, kind: str) -> str:
    text = message.get_body(("plain",)).get_content()
    found = re.search(rf"{re.escape(SUBSCRIBE_URL)}/{kind}\?token=([A-Za-z0-9_.-]+)", text)
    assert found, f"no {kind} link in:\n{text}"
    return found.group(1)


def subscribe(stack, sink, address, components=None, language="en"):
    """Sign up through the form and confirm through the mailed link (GET shows a button, POST confirms)."""
    app, http = stack
    data = {"email": address, "language": language}
    data.update({"scope": "some", "components": components} if components else {"scope": "all"})
    assert post(http, data).status_code == 200
    token = link(sink.to(address)[-1], "confirm")
    page = http.get("/subscribe/confirm", params={"token": token})
    assert page.status_code == 200 and 'method="post"' in page.text
    assert app.subscribers.get(address) is None  # a GET (a mail scanner) confirms nothing
    assert http.post("/subscribe/confirm", data={"token": token}).status_code == 200
    return token


def deliver_all(app, update):
    for row in app.store.ledger.rows(update_id=update.id):
        outcome = delivery.deliver(app, row.notice_id)
        assert outcome.state == "posted", outcome


def test_double_opt_in_scope_languages_headers_and_threading(stack, sink):
    app, http = stack
    answer = post(http, {"email": "Ana@Example.ORG", "scope": "some", "components": ["imap"], "language": "de"})
    assert answer.status_code == 200 and 'lang="de"' in answer.text and "Postfach" in answer.text
    [confirmation] = sink.to("Ana@example.org")
    assert confirmation["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert confirmation["List-Unsubscribe"].startswith(f"<{SUBSCRIBE_URL}/unsubscribe?token=")
    assert "bestätigen" in confirmation["Subject"] and "Bestätigen" in confirmation.get_body(("plain",)).get_content()
    assert app.subscribers.count() == 0  # nothing stored, nothing sent, before the confirmation

    incident = incidents.open_incident(app, name="IMAP down", components={"imap": "major_outage"},
                                       body={"en": "IMAP fails.", "de": "IMAP geht nicht."})
    deliver_all(app, incident.updates[0])
    assert len(sink.to("Ana@example.org")) == 1  # unconfirmed: no update

    http.post("/subscribe/confirm", data={"token": link(confirmation, "confirm")}).raise_for_status()
    stored = app.subscribers.get("Ana@example.org")
    assert stored is not None and stored.scope == ("imap",) and stored.language == "de"
    subscribe(stack, sink, "bob@example.org", components=["smtp"])
    subscribe(stack, sink, "cy@example.org")  # every component, English
    sink.clear()

    second = incidents.update_incident(app, incident.id, status="identified",
                                       body={"en": "Found it.", "de": "Gefunden."})
    deliver_all(app, second)
    third = incidents.update_incident(app, incident.id, status="monitoring", body={"en": "Fixed.", "de": "Behoben."})
    deliver_all(app, third)

    assert sink.to("bob@example.org") == []  # subscribed to smtp only
    ana, cy = sink.to("Ana@example.org"), sink.to("cy@example.org")
    assert len(ana) == 2 and len(cy) == 2
    assert "Gefunden." in ana[0].get_body(("plain",)).get_content()
    assert "Gefunden." in ana[0].get_body(("html",)).get_content()
    assert "Found it." in cy[0].get_body(("plain",)).get_content() and ana[0]["Content-Language"] == "de"
    for first, later in (ana, cy):
        assert first["Message-ID"] != later["Message-ID"]
        assert later["In-Reply-To"] == first["Message-ID"]
        assert first["Message-ID"] in later["References"]
        assert later["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert link(later, "manage") and link(later, "unsubscribe")
    assert ana[0]["Message-ID"] != cy[0]["Message-ID"]  # one per (update, subscriber)
    # the URL as it is on the wire: one header line, not folded into RFC 2047 words a client cannot use
    assert all(re.search(rb"\r\nList-Unsubscribe: <http://\S+>\r\n", raw) for raw in sink.raw)

    # a resend (after an unknown outcome) carries the same Message-ID: the row is posted, nothing is resent
    assert delivery.deliver(app, app.store.ledger.rows(update_id=third.id)[0].notice_id).state == "posted"
    assert len(sink.to("cy@example.org")) == 2


def test_one_connection_carries_many_messages(stack, sink):
    app, _ = stack
    for i in range(30):
        app.subscribers.save(subscriptions.Subscriber(f"u{i:02}@example.org", "*", "en", 1.0, 2.0))
    sink.clear()
    incident = incidents.broadcast(app, body="Planned work tonight.")
    deliver_all(app, incident.updates[0])
    assert sorted(sink.by_recipient()) == [f"u{i:02}@example.org" for i in range(30)]
    assert sink.sessions == 1


def test_the_answer_is_the_same_whether_or_not_subscribed(stack, sink):
    _, http = stack
    subscribe(stack, sink, "known@example.org")
    known = post(http, {"email": "known@example.org", "scope": "all", "language": "en"})
    new = post(http, {"email": "new@example.org", "scope": "all", "language": "en"})
    assert known.status_code == new.status_code == 200
    assert known.text == new.text


@pytest.mark.parametrize("address", ["", "no-at-sign", "a@b", "a@-x.org", "two@@x.org", "a b@x.org",
                                     "x@example.org\r\nBcc: victim@example.org", "a,b@x.org", "x" * 250 + "@x.org"])
def test_a_malformed_address_is_a_422_naming_the_field(stack, sink, address):
    answer = post(stack[1], {"email": address, "scope": "all", "language": "en"})
    assert answer.status_code == 422
    assert 'data-field="email"' in answer.text
    assert sink.messages == []


def test_bad_choices_oversized_and_non_form_bodies(stack, sink):
    http = stack[1]
    unknown = post(http, {"email": "a@example.org", "scope": "some", "components": ["nope"], "language": "en"})
    assert unknown.status_code == 422 and 'data-field="components"' in unknown.text
    language = post(http, {"email": "a@example.org", "scope": "all", "language": "fr"})
    assert language.status_code == 422 and 'data-field="language"' in language.text
    big = post(http, {"email": "a@example.org", "scope": "all", "language": "en", "pad": "x" * 5000})
    assert big.status_code == 413
    json_body = http.post("/subscribe", json={"email": "a@example.org"})
    assert json_body.status_code == 415
    assert sink.messages == []


def test_a_flood_of_sign_ups_is_limited_per_address_and_per_client(stack, sink, tmp_path):
    http = stack[1]
    codes = [post(http, {"email": "flood@example.org", "scope": "all", "language": "en"}).status_code
             for _ in range(6)]
    assert codes == [200, 200, 200, 429, 429, 429]
    assert len(sink.to("flood@example.org")) == 3
    with redis_server(tmp_path / "r2") as (_, port):  # a client limit of 4 on its own installation
        app = make_app(settings(sink.port, per_client=4), port)
        with ApiServer(create_app(app)) as server, httpx.Client(base_url=server.url) as other:
            codes = [post(other, {"email": f"c{i}@example.org", "scope": "all", "language": "en"}).status_code
                     for i in range(6)]
            limited = post(other, {"email": "c9@example.org", "scope": "all", "language": "en"})
    assert codes == [200] * 4 + [429] * 2
    assert int(limited.headers["Retry-After"]) > 0


def test_expired_and_forged_links_store_nothing(stack, sink):
    app, http = stack
    now = app.clock.timestamp()
    expired = confirm_token(SECRET.encode(), "late@example.org", "*", "en", now - 49 * 3600)
    answer = http.post("/subscribe/confirm", data={"token": expired})
    assert answer.status_code == 400 and "expired" in answer.text
    forged = confirm_token(b"another-secret-of-16+", "evil@example.org", "*", "en", now)
    assert http.post("/subscribe/confirm", data={"token": forged}).status_code == 400
    good = confirm_token(SECRET.encode(), "ok@example.org", "*", "en", now)
    tampered = good.split(".")[0][:-2] + "xx." + good.split(".")[1]
    assert http.post("/subscribe/confirm", data={"token": tampered}).status_code == 400
    wrong_purpose = sign(SECRET.encode(), {"p": "m", "a": "ok@example.org"})  # an unsubscribe token
    assert http.post("/subscribe/confirm", data={"token": wrong_purpose}).status_code == 400
    assert app.subscribers.count() == 0
    assert http.post("/subscribe/confirm", data={"token": good}).status_code == 200
    assert app.subscribers.count() == 1


def test_one_click_unsubscribe_deletes_the_address(stack, sink):
    app, http = stack
    subscribe(stack, sink, "leave@example.org")
    subscribe(stack, sink, "stay@example.org")
    incident = incidents.broadcast(app, body="First.")
    deliver_all(app, incident.updates[0])
    [mail] = [m for m in sink.to("leave@example.org") if m["Subject"].startswith("[Example Mail]")]
    target = mail["List-Unsubscribe"].strip("<>")
    path = urllib.parse.urlsplit(target)
    # RFC 8058: a single POST of List-Unsubscribe=One-Click to the header's URL, no cookies, no page
    answer = http.post(f"{path.path}?{path.query}", content="List-Unsubscribe=One-Click", headers=FORM)
    assert answer.status_code == 200
    assert app.subscribers.get("leave@example.org") is None
    assert app.subscribers.get("stay@example.org") is not None
    sink.clear()
    later = incidents.broadcast(app, body="Second.")
    deliver_all(app, later.updates[0])
    assert list(sink.by_recipient()) == ["stay@example.org"]


def test_manage_changes_components_and_language(stack, sink):
    app, http = stack
    subscribe(stack, sink, "m@example.org", components=["imap"])
    token = link(sink.to("m@example.org")[0], "unsubscribe")
    page = http.get("/subscribe/manage", params={"token": token})
    assert page.status_code == 200 and 'value="webmail"' in page.text
    changed = http.post("/subscribe/manage", data={"token": token, "scope": "some",
                                                   "components": ["smtp", "webmail"], "language": "de"})
    assert changed.status_code == 200
    stored = app.subscribers.get("m@example.org")
    assert stored is not None and stored.scope == ("smtp", "webmail") and stored.language == "de"


def test_staff_api_counts_export_and_remove(stack, sink):
    app, http = stack
    subscribe(stack, sink, "a@example.org", components=["imap"])
    viewer, publisher = ({"Authorization": f"Bearer {t}"} for t in ("viewer-tok", "publisher-tok"))
    assert http.get("/api/v1/subscribers/counts").status_code == 401
    assert http.get("/api/v1/subscribers/counts", headers=viewer).json()["imap"] == 1
    assert http.get("/api/v1/subscribers/export.csv", headers=viewer).status_code == 403
    csv = http.get("/api/v1/subscribers/export.csv", headers=publisher)
    assert csv.headers["content-type"].startswith("text/csv") and "a@example.org,imap,en," in csv.text
    assert http.post("/api/v1/subscribers/remove", json={"address": "a@example.org"}, headers=publisher).json() \
        == {"removed": True}
    assert http.post("/api/v1/subscribers/remove", json={"address": "a@example.org"},
                     headers=publisher).status_code == 404
    assert app.subscribers.count() == 0


def console_client(base_url: str, token: str) -> httpx.Client:
    """A browser signed in to the console with a staff token (the login form's double-submit CSRF)."""
    client = httpx.Client(base_url=base_url, timeout=10, follow_redirects=True)
    form = client.get("/console/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf, form.text
    signed_in = client.post("/console/login", data={"csrf": csrf.group(1), "token": token})
    assert signed_in.status_code == 200 and signed_in.url.path == "/console/", signed_in.text
    return client


def test_console_shows_counts_per_component_to_a_viewer(stack, sink):
    app, http = stack
    subscribe(stack, sink, "a@example.org")
    subscribe(stack, sink, "b@example.org", components=["imap"])
    subscribe(stack, sink, "c@example.org", components=["smtp", "imap"])
    app.subscribers.save_hook(WebhookSubscriber("https://hooks.example.org/h", ("webmail",), "en", 1.0, 2.0))
    base = str(http.base_url).rstrip("/")
    assert httpx.get(f"{base}/console/subscribers", follow_redirects=False).status_code == 303  # sign in first
    browser = console_client(base, "viewer-tok")
    try:
        assert 'href="/console/subscribers"' in browser.get("/console/").text  # in the nav for every role
        page = browser.get("/console/subscribers")
    finally:
        browser.close()
    assert page.status_code == 200
    shown = dict(re.findall(r'<tr data-component="(\w+)">.*?<td class="n">(\d+)</td>', page.text, re.S))
    api = http.get("/api/v1/subscribers/counts", headers={"Authorization": "Bearer viewer-tok"}).json()
    assert shown == {c: str(api[c]) for c in ("imap", "smtp", "webmail")} == {"imap": "3", "smtp": "2", "webmail": "1"}
    assert re.search(r'id="subs-total">3<', page.text) and re.search(r'id="subs-all">1<', page.text)
    hooks = dict(re.findall(r'<tr data-component="(\w+)">.*?<td class="h">(\d+)</td>', page.text, re.S))
    assert hooks == {"imap": "0", "smtp": "0", "webmail": "1"} and 'id="hooks-total">1<' in page.text
    assert "@example.org" not in page.text  # counts only: no addresses for a viewer


def test_staff_counts_export_and_remove(stack, sink):
    app, _ = stack
    subscribe(stack, sink, "a@example.org")
    subscribe(stack, sink, "b@example.org", components=["imap"])
    subscribe(stack, sink, "=cmd@example.org", components=["smtp", "imap"])
    assert subscriptions.counts(app) == {"total": 3, "all": 1, "imap": 3, "smtp": 2, "webmail": 1}
    rows = subscriptions.export_csv(app).splitlines()
    assert rows[0] == "address,components,language,requested_at,confirmed_at"
    assert rows[1].startswith("'=cmd@example.org,imap smtp,en,")  # never a spreadsheet formula
    assert subscriptions.remove(app, "b@example.org") is True
    assert subscriptions.remove(app, "b@example.org") is False
    assert subscriptions.counts(app)["total"] == 2
