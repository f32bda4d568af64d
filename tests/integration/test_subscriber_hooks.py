"""Webhook subscribers end to end: a real Redis, the real API app, real HTTP receivers (tests/fakes/
hook_subscriber.py) and, for delivery, a real Celery worker. Sign-up with a signed challenge (echoed, or
confirmed through its link), Statuspage-shaped notifications signed per receiver with a stable delivery
id, scope, unsubscribe, 410 and repeated failures ending a subscription, and bad input (422 naming the
field, private targets refused by default)."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from notifier.api import create_app
from notifier.bootstrap import build
from notifier.config_loader import load_settings
from notifier.domain.model import DeliveryState
from notifier.domain.subscribers import WebhookSubscriber, delivery_id
from notifier.ports import NullDispatcher
from notifier.services import delivery, incidents
from notifier.store.local_redis import LocalRedis
from tests.fakes.hook_subscriber import HookReceivers
from tests.integration._api_support import ApiServer
from tests.support import ROOT, Proc, env_for, start_beat, start_worker, wait_for, write_config
from workers.dispatch import CeleryDispatcher

pytestmark = pytest.mark.integration

SUBSCRIBE_URL = "http://notifier.test/subscribe"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def config(tmp: Path, redis_url: str, allow_private: bool = True) -> Path:
    return write_config(
        tmp / f"notifier-{allow_private}.yaml", redis_url, {"hooks": {"type": "webhook_subscribers"}},
        page={"name": "Test Mail", "url": "http://status.test/", "language": "en", "languages": ["en", "de"],
              "subscribe_url": SUBSCRIBE_URL},
        subscribers={"secret": "${SUB_SECRET}", "webhook_allow_private": allow_private, "webhook_max_failures": 2,
                     "webhook_timeout": 5},
        staff={"tokens": [{"name": "vera", "role": "viewer", "token": "${VIEWER_TOKEN}"},
                          {"name": "pia", "role": "publisher", "token": "${PUBLISHER_TOKEN}"}]},
    )


@pytest.fixture
def world(tmp_path: Path, redis_server: LocalRedis, redis_client: redis.Redis,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    monkeypatch.setenv("SUB_SECRET", "hook-secret-0123456789")
    monkeypatch.setenv("VIEWER_TOKEN", "viewer-token-0123456789")
    monkeypatch.setenv("PUBLISHER_TOKEN", "publisher-token-0123456789")
    path = config(tmp_path, redis_server.url)
    settings = load_settings(path)
    app = build(settings, dispatcher=CeleryDispatcher(settings), redis_url=redis_server.url)
    procs: list[Proc] = []
    with HookReceivers() as hooks, ApiServer(create_app(app)) as api, \
            httpx.Client(base_url=api.url, timeout=30) as http:
        try:
            yield {"app": app, "hooks": hooks, "http": http, "config": path, "procs": procs, "tmp": tmp_path,
                   "client": redis_client, "redis_url": redis_server.url}
        finally:
            for proc in procs:
                proc.stop()


def cli(config_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The staff CLI as a person runs it: a real subprocess against the same Redis."""
    return subprocess.run([sys.executable, "-m", "notifier", "--config", str(config_path), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=60, env=env_for(config_path))


def sign_up(http: httpx.Client, url: str, components: list[str] | None = None, language: str = "en"):
    data: dict[str, object] = {"url": url, "language": language}
    data.update({"scope": "some", "components": components} if components else {"scope": "all"})
    return http.post("/subscribe/webhook", content=urllib.parse.urlencode(data, doseq=True), headers=FORM)


def local(link: str) -> str:
    """A link the notifier made (on SUBSCRIBE_URL's host) as a path for the API server under test."""
    parts = urllib.parse.urlsplit(link)
    assert link.startswith(SUBSCRIBE_URL), link
    return f"{parts.path}?{parts.query}"


def test_signed_challenge_then_every_update_through_a_worker(world) -> None:
    app, hooks, http = world["app"], world["hooks"], world["http"]
    echo, later = hooks.url("/echo"), hooks.url("/later")
    hooks.behave("/echo", echo=True)

    assert sign_up(http, echo, components=["imap"], language="de").status_code == 200
    (challenge,) = hooks.at("/echo", "challenge")
    assert challenge.verified  # signed with the key the challenge hands over
    stored = app.subscribers.get_hook(echo)
    assert stored is not None and stored.scope == ("imap",) and stored.language == "de"  # echoed: active at once

    assert sign_up(http, later).status_code == 200
    (challenge,) = hooks.at("/later", "challenge")
    assert app.subscribers.get_hook(later) is None  # not echoed: nothing stored until the link is POSTed
    assert http.get(local(challenge.body["confirm_url"])).status_code == 405  # a GET confirms nothing
    assert http.post(local(challenge.body["confirm_url"])).status_code == 200
    assert app.subscribers.get_hook(later).scope == "*"

    world["procs"].append(start_worker(world["config"], world["client"], world["tmp"] / "worker.log"))
    incident = incidents.open_incident(app, name="SMTP down", components={"smtp": "major_outage"},
                                       body="Outgoing mail is delayed.")
    first = incident.updates[0]
    wait_for(lambda: hooks.at("/later"), timeout=60, what="the first update at /later")
    second = incidents.update_incident(app, incident.id, status="identified", body={"en": "IMAP too.",
                                       "de": "IMAP auch."}, components={"imap": "degraded_performance"})
    wait_for(lambda: len(hooks.at("/later")) == 2 and hooks.at("/echo"), timeout=60, what="the second update")
    wait_for(lambda: {r.state for r in app.store.ledger.rows(channel="hooks")} == {DeliveryState.POSTED},
             timeout=60, what="both rows posted")

    assert [r.headers["X-Notifier-Delivery-Id"] for r in hooks.at("/later")] == \
        [delivery_id(first.id, later), delivery_id(second.id, later)]
    (to_echo,) = hooks.at("/echo")  # imap only: the smtp-only first update did not go there
    assert to_echo.headers["X-Notifier-Delivery-Id"] == to_echo.headers["Idempotency-Key"] == \
        delivery_id(second.id, echo)
    assert all(r.verified for r in hooks.requests)
    body = to_echo.body  # Statuspage's shape, in the subscriber's language
    assert set(body) == {"meta", "page", "incident", "component", "component_update"}
    assert body["meta"]["unsubscribe"].startswith(f"{SUBSCRIBE_URL}/webhook/unsubscribe?token=")
    assert [u["body"] for u in body["incident"]["incident_updates"]] == ["IMAP auch.", "Outgoing mail is delayed."]
    assert body["incident"]["id"] == incident.id and body["incident"]["status"] == "identified"
    assert body["component_update"] | {"created_at": None} == {
        "id": f"{second.id}.imap", "component_id": "imap", "component_type": "Component",
        "old_status": "operational", "new_status": "degraded_performance", "created_at": None}
    assert {c["id"]: c["status"] for c in body["incident"]["components"]} == \
        {"smtp": "major_outage", "imap": "degraded_performance"}

    # every notification's meta.unsubscribe ends the subscription with one POST
    assert http.post(local(hooks.at("/later")[-1].body["meta"]["unsubscribe"])).status_code == 200
    assert app.subscribers.get_hook(later) is None and app.subscribers.get_hook(echo) is not None


def test_gone_refusals_and_outages_of_receivers(world) -> None:
    world["procs"].clear()
    settings = load_settings(world["config"])
    app = build(settings, dispatcher=NullDispatcher(), redis_url=world["redis_url"])  # delivered in-process
    hooks = world["hooks"]
    for path, status in (("/gone", 410), ("/bad", 400), ("/blip", 503), ("/dead", 503), ("/ok", 200)):
        hooks.behave(path, status=status)
        app.subscribers.save_hook(WebhookSubscriber(hooks.url(path), "*", "en", 1.0, 2.0))

    def deliver(update, between=lambda: None) -> None:
        (row,) = app.store.ledger.rows(update_id=update.id)
        first = delivery.deliver(app, row.notice_id)
        assert first.state == "retry", first  # some receivers wait for another try; the row is not done
        between()
        wait_for(lambda: delivery.deliver(app, row.notice_id) and
                 app.store.ledger.get(row.notice_id).state == DeliveryState.POSTED, timeout=30,
                 what="the row posted after the retries")  # failing receivers never fail the others' row

    incident = incidents.open_incident(app, name="IMAP down", components={"imap": "major_outage"}, body="Down.")
    deliver(incident.updates[0], between=lambda: hooks.behave("/blip", status=200))  # back before the retry
    assert app.subscribers.get_hook(hooks.url("/gone")) is None  # 410: at once
    assert app.subscribers.get_hook(hooks.url("/bad")).failures == 1  # a refusal: no retry
    assert app.subscribers.get_hook(hooks.url("/blip")).failures == 0  # got it on the second try
    assert app.subscribers.get_hook(hooks.url("/dead")).failures == 1  # webhook_max_failures tries: one failure
    deliver(incidents.update_incident(app, incident.id, status="monitoring", body="Better."))
    assert app.subscribers.get_hook(hooks.url("/bad")) is None  # the second refusal in a row
    assert app.subscribers.get_hook(hooks.url("/dead")) is None  # the second update it never took
    assert [len(hooks.at(p)) for p in ("/gone", "/bad", "/blip", "/dead", "/ok")] == [1, 2, 3, 4, 2]
    ids = [r.headers["X-Notifier-Delivery-Id"] for r in hooks.at("/dead")]
    assert len(set(ids)) == 2 and ids[0] == ids[1]  # a retry carries the same delivery id


BAD_URLS = [
    ("", "is empty"),
    ("not a url", "spaces or control characters"),
    ("ftp://hooks.example.com/x", "http:// or https://"),
    ("https://user:pw@hooks.example.com/x", "user name or password"),
    ("https://hooks.example.com:99999/x", "not a URL"),
    ("x" * 3000, "longer than 2048"),
    ("http://127.0.0.1:9/x", "private, loopback or link-local"),
    ("http://[::1]:9/x", "private, loopback or link-local"),
    ("http://169.254.169.254/latest/meta-data", "private, loopback or link-local"),
    ("http://10.1.2.3/x", "private, loopback or link-local"),
    ("http://[::ffff:127.0.0.1]/x", "private, loopback or link-local"),
    ("http://0.0.0.0/x", "private, loopback or link-local"),
]


def test_bad_urls_are_a_422_naming_the_field_and_nothing_is_sent(world) -> None:
    strict = build(load_settings(config(world["tmp"], world["redis_url"], allow_private=False)),
                   dispatcher=NullDispatcher(), redis_url=world["redis_url"])
    with ApiServer(create_app(strict)) as api, httpx.Client(base_url=api.url, timeout=30) as http:
        for url, says in BAD_URLS:
            answer = sign_up(http, url)
            assert answer.status_code == 422, (url, answer.text)
            found = re.search(r'id="message" data-field="url">url: ([^<]*)', answer.text)
            assert found and says in found.group(1), (url, answer.text)
        # the receivers' own loopback address too: allowed only where configured (the world's app)
        refused = sign_up(http, world["hooks"].url("/local"))
        assert refused.status_code == 422 and 'data-field="url"' in refused.text
        unknown = sign_up(http, "https://hooks.example.com/x", components=["nope"])
        assert unknown.status_code == 422 and 'data-field="components"' in unknown.text
        as_json = http.post("/subscribe/webhook", json={"url": "https://hooks.example.com/x"})
        assert as_json.status_code == 415
    assert world["hooks"].requests == [] and strict.subscribers.hooks() == []


def test_a_killed_worker_resumes_after_the_last_receiver_it_finished(world) -> None:
    app, hooks, tmp, client = world["app"], world["hooks"], world["tmp"], world["client"]
    paths = [f"/r{i:02}" for i in range(30)]
    for path in paths:
        hooks.behave(path, delay=0.05)
        app.subscribers.save_hook(WebhookSubscriber(hooks.url(path), "*", "en", 1.0, 2.0))
    world["procs"] += [start_worker(world["config"], client, tmp / "worker-0.log"),
                       start_beat(world["config"], tmp / "beat-0.log", tmp)]
    update = incidents.open_incident(app, name="SMTP down", components={"smtp": "major_outage"},
                                     body="Outgoing mail is delayed.").updates[0]
    wait_for(lambda: len(hooks.requests) >= 10, timeout=60, interval=0.005, what="10 receivers reached")
    for proc in list(world["procs"]):
        proc.kill()
    assert len(hooks.requests) < len(paths)  # killed mid-send
    world["procs"] += [start_worker(world["config"], client, tmp / "worker-1.log"),
                       start_beat(world["config"], tmp / "beat-1.log", tmp)]
    (row,) = app.store.ledger.rows(update_id=update.id)
    wait_for(lambda: app.store.ledger.get(row.notice_id).state == DeliveryState.POSTED, timeout=120,
             interval=0.2, what="the row posted after the kill")
    got = {p: [r.headers["X-Notifier-Delivery-Id"] for r in hooks.at(p)] for p in paths}
    assert all(got[p] and set(got[p]) == {delivery_id(update.id, hooks.url(p))} for p in paths), got
    extra = sum(len(ids) for ids in got.values()) - len(paths)
    print(f"webhook subscriber kill: {len(paths)} receivers, 1 kill, {extra} extra copies (same delivery id)")
    assert extra <= 1  # at most the one in flight, under the same id


def test_staff_count_and_remove_webhook_subscribers(world) -> None:
    app, http = world["app"], world["http"]
    for url, scope in (("https://a.example/h", "*"), ("https://b.example/h", ("imap",))):
        app.subscribers.save_hook(WebhookSubscriber(url, scope, "en", 1.0, 2.0))
    viewer, publisher = ({"Authorization": f"Bearer {t}-token-0123456789"} for t in ("viewer", "publisher"))
    assert http.get("/api/v1/subscribers/webhooks/counts").status_code == 401
    assert http.get("/api/v1/subscribers/webhooks/counts", headers=viewer).json() == \
        {"total": 2, "all": 1, "imap": 2, "smtp": 1}
    assert http.post("/api/v1/subscribers/webhooks/remove", json={"url": "https://a.example/h"},
                     headers=viewer).status_code == 403
    bad = http.post("/api/v1/subscribers/webhooks/remove", json={"url": "ftp://x"}, headers=publisher)
    assert bad.status_code == 422 and bad.json()["field"] == "url"
    assert http.post("/api/v1/subscribers/webhooks/remove", json={"url": "HTTPS://A.example/h"},
                     headers=publisher).json() == {"removed": True}
    counted = cli(world["config"], "subscribers", "count")
    assert counted.returncode == 0, counted.stderr
    assert re.search(r"webhook subscribers\s+1\n  of every component\s+0\n  imap\s+1\n  smtp\s+0", counted.stdout)
    assert cli(world["config"], "subscribers", "remove-webhook", "https://b.example/h").returncode == 0
    assert cli(world["config"], "subscribers", "remove-webhook", "https://b.example/h").returncode == 66
    assert app.subscribers.hooks() == []
