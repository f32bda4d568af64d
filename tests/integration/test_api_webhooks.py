"""Every row of the webhook answer table, over HTTP against uvicorn and a real redis-server."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
import redis

from notifier.api import create_app
from notifier.api.auth import sign
from notifier.domain.events import AlertEvent
from tests.integration._api_support import TOKENS, ApiServer, make_app, redis_server, settings_for, wait_for

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[1] / "data"
AM_FIRING = (DATA / "alertmanager/firing-imap-two-instances.json").read_bytes()
AM_MIXED = (DATA / "alertmanager/imap-one-resolved-one-firing.json").read_bytes()
AM = {"Authorization": f"Bearer {TOKENS['AM_TOKEN']}", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    with redis_server(tmp / "redis") as (proc, port):
        app = make_app(settings_for(tmp), port)
        with ApiServer(create_app(app)) as server, httpx.Client(base_url=server.url, timeout=10) as http:
            yield app, http, port, proc


@pytest.fixture(autouse=True)
def clean(stack):
    stack[0].store.redis.flushdb()


def stream(app) -> list[AlertEvent]:
    entries = app.store.redis.xrange("t:events")
    return [AlertEvent.from_dict(json.loads(fields["event"])) for _, fields in entries]


def test_accepted_events_are_in_the_stream_before_the_202(stack):
    app, http, *_ = stack
    resp = http.post("/webhooks/alertmanager", content=AM_FIRING, headers=AM)
    assert resp.status_code == 202
    body = resp.json()
    assert len(body["accepted"]) == 2 and body["duplicates"] == []
    queued = stream(app)
    assert [e.id for e in queued] == body["accepted"]
    assert {e.fingerprint for e in queued} == {"7a038ff290748a7a", "e2dc1af3fdb68c83"}
    assert all(app.store.redis.ttl(f"t:event:seen:{i}") > 6 * 24 * 3600 for i in body["accepted"])
    wait_for(lambda: app.dispatcher.wakeups >= 1, what="the engine wake-up")


def test_same_payload_twice_has_no_second_effect(stack):
    app, http, *_ = stack
    first = http.post("/webhooks/alertmanager", content=AM_FIRING, headers=AM).json()
    again = http.post("/webhooks/alertmanager", content=AM_FIRING, headers=AM)
    assert again.status_code == 202
    assert again.json() == {"accepted": [], "duplicates": first["accepted"]}
    assert len(stream(app)) == 2
    # the next snapshot: only the resolved transition is new
    mixed = http.post("/webhooks/alertmanager", content=AM_MIXED, headers=AM).json()
    assert len(mixed["accepted"]) == 1 and len(mixed["duplicates"]) == 1
    assert [e.status for e in stream(app)] == ["firing", "firing", "resolved"]


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing"),
        ({"Authorization": "Bearer wrong"}, "bad bearer"),
        ({"Authorization": f"Basic {TOKENS['AM_TOKEN']}"}, "missing"),
        ({"Authorization": f"Bearer {TOKENS['GRAFANA_TOKEN']}"}, "bad bearer"),  # another source's token
    ],
)
def test_missing_or_bad_bearer_is_401(stack, headers, reason):
    app, http, *_ = stack
    resp = http.post("/webhooks/alertmanager", content=AM_FIRING, headers=headers)
    assert resp.status_code == 401
    assert reason in resp.json()["detail"]
    assert stream(app) == []


def _generic_body() -> bytes:
    return (DATA / "generic/zabbix-problem.json").read_bytes()


def test_hmac_signed_generic_is_accepted(stack):
    app, http, *_ = stack
    body, now = _generic_body(), int(time.time())
    headers = {
        "X-Notifier-Timestamp": str(now),
        "X-Notifier-Signature": sign(TOKENS["GENERIC_SECRET"], now, body),
    }
    resp = http.post("/webhooks/generic", content=body, headers=headers)
    assert resp.status_code == 202, resp.text
    assert [e.fingerprint for e in stream(app)] == ["zabbix:event:4711"]


@pytest.mark.parametrize(
    "case", ["no headers", "bad signature", "tampered body", "stale", "future", "not a number"]
)
def test_bad_hmac_is_401(stack, case):
    app, http, *_ = stack
    body, now = _generic_body(), int(time.time())
    # 30 s past the 300 s tolerance: int() truncation and a slow request cannot carry it back inside
    stamp = {"stale": now - 330, "future": now + 330}.get(case, now)
    sig = sign(TOKENS["GENERIC_SECRET"] if case != "bad signature" else "other", stamp, body)
    headers = {
        "X-Notifier-Timestamp": str(stamp) if case != "not a number" else "yesterday",
        "X-Notifier-Signature": sig,
    }
    if case == "no headers":
        headers = {}
    sent = body.replace(b"smtp", b"imap") if case == "tampered body" else body
    resp = http.post("/webhooks/generic", content=sent, headers=headers)
    assert resp.status_code == 401
    assert stream(app) == []


def test_over_one_mib_declared_is_413(stack):
    app, http, *_ = stack
    big = b'{"version": "4", "pad": "' + b"x" * (1024 * 1024) + b'"}'
    resp = http.post("/webhooks/alertmanager", content=big, headers=AM)
    assert resp.status_code == 413


def test_over_one_mib_streamed_chunked_is_413(stack):
    app, http, *_ = stack

    def chunks():
        yield b'{"version": "4", "pad": "'
        for _ in range(17):
            yield b"x" * 65536
        yield b'"}'

    resp = http.post("/webhooks/alertmanager", content=chunks(), headers=AM)  # no Content-Length
    assert resp.status_code == 413


def test_just_under_the_limit_is_parsed(stack):
    app, http, *_ = stack
    payload = json.loads(AM_FIRING)
    payload["pad"] = "x" * (1024 * 1024 - len(AM_FIRING) - 100)
    resp = http.post("/webhooks/alertmanager", content=json.dumps(payload).encode(), headers=AM)
    assert resp.status_code == 202


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "(body)"),
        (b'{"version": "4"}', "alerts"),
        (json.dumps({**json.loads(AM_FIRING), "version": "3"}).encode(), "version"),
        (AM_FIRING.replace(b'"labels"', b'"lbls"', 1), "alerts[0].labels"),
        (b"[]", "(body)"),
    ],
)
def test_never_acceptable_is_422_naming_the_field(stack, body, field):
    app, http, *_ = stack
    resp = http.post("/webhooks/alertmanager", content=body, headers=AM)
    assert resp.status_code == 422
    assert resp.json()["field"] == field
    assert not resp.json()["detail"].startswith(field)  # the message, the field apart
    assert stream(app) == []


def test_other_sources(stack):
    app, http, *_ = stack
    kuma = http.post(
        "/webhooks/uptime-kuma",
        content=(DATA / "uptime_kuma/down.json").read_bytes(),
        headers={"Authorization": f"Bearer {TOKENS['KUMA_TOKEN']}"},
    )
    graf = http.post(
        "/webhooks/grafana",
        content=(DATA / "grafana/firing-two.json").read_bytes(),
        headers={"Authorization": f"Bearer {TOKENS['GRAFANA_TOKEN']}"},
    )
    test = http.post(
        "/webhooks/uptime-kuma",
        content=(DATA / "uptime_kuma/test.json").read_bytes(),
        headers={"Authorization": f"Bearer {TOKENS['KUMA_TOKEN']}"},
    )
    assert (kuma.status_code, graf.status_code, test.status_code) == (202, 202, 202)
    assert test.json() == {"accepted": [], "duplicates": []}
    assert sorted(e.source for e in stream(app)) == ["grafana", "grafana", "uptime-kuma"]


def test_redis_down_is_503_and_nothing_claims_acceptance(tmp_path):
    with redis_server(tmp_path / "r") as (proc, port):
        app = make_app(settings_for(tmp_path), port)
        with ApiServer(create_app(app)) as server, httpx.Client(base_url=server.url, timeout=10) as http:
            assert http.post("/webhooks/alertmanager", content=AM_FIRING, headers=AM).status_code == 202
            proc.terminate()
            proc.wait(10)
            resp = http.post("/webhooks/alertmanager", content=AM_MIXED, headers=AM)
            assert resp.status_code == 503
            assert resp.headers["Retry-After"]
            assert http.get("/readyz").status_code == 503
            assert http.get("/healthz").status_code == 200
    with pytest.raises(redis.ConnectionError):
        app.store.redis.ping()


def test_metrics_count_outcomes(stack):
    app, http, *_ = stack
    http.post("/webhooks/alertmanager", content=AM_FIRING, headers=AM)
    http.post("/webhooks/alertmanager", content=AM_FIRING, headers=AM)
    http.post("/webhooks/alertmanager", content=AM_FIRING, headers={})
    text = http.get("/metrics").text

    def value(outcome):
        line = f'notifier_events_received_total{{outcome="{outcome}",source="alertmanager"}}'
        return float(next(x for x in text.splitlines() if x.startswith(line)).split()[-1])

    http.post("/webhooks/alertmanager", content=b'{"version": "4"}', headers=AM)
    text = http.get("/metrics").text
    assert value("duplicate") >= 2 and value("accepted") >= 2 and value("rejected_auth") >= 1
    assert value("invalid") >= 1


def test_unconfigured_source_is_404(tmp_path):
    from notifier.config_loader import parse_settings
    from tests.integration._api_support import free_port

    settings = parse_settings("redis: {key_prefix: 'u:'}\n", env={})
    app = make_app(settings, free_port())  # never contacted
    with ApiServer(create_app(app)) as server:
        resp = httpx.post(server.url + "/webhooks/alertmanager", content=AM_FIRING, headers=AM)
    assert resp.status_code == 404


def test_redis_out_of_memory_is_503_and_the_retry_is_not_a_duplicate(stack):
    app, http, *_ = stack
    r = app.store.redis
    r.config_set("maxmemory", 1)  # noeviction: every write is refused
    try:
        resp = http.post("/webhooks/alertmanager", content=AM_FIRING, headers=AM)
        assert resp.status_code == 503
        assert stream(app) == []
        assert r.keys("t:event:seen:*") == []  # nothing marked seen that was not queued
    finally:
        r.config_set("maxmemory", 0)
    retry = http.post("/webhooks/alertmanager", content=AM_FIRING, headers=AM)  # Alertmanager retries 5xx
    assert retry.status_code == 202
    assert len(retry.json()["accepted"]) == 2
    assert len(stream(app)) == 2
