"""What a staff API request costs the server (issue 14), against a real Redis and uvicorn: the staff
token is compared once per request, not once per gate, and the idempotency gate's Redis I/O does not
run on the event loop (a Redis that is slow to answer a write must not stall every other request)."""

from __future__ import annotations

import threading
import time
import uuid

import httpx
import pytest
import redis

import notifier.api.app
import notifier.api.auth
from notifier.api import create_app
from notifier.staff import authenticate
from tests.integration._api_support import TOKENS, ApiServer, make_app, redis_server, settings_for

pytestmark = pytest.mark.integration
PUBLISHER = {"Authorization": f"Bearer {TOKENS['PUBLISHER_TOKEN']}"}


@pytest.fixture
def stack(tmp_path):
    with redis_server(tmp_path / "redis") as (_, port):
        app = make_app(settings_for(tmp_path), port)
        with ApiServer(create_app(app)) as api, httpx.Client(base_url=api.url, timeout=30) as http:
            yield app, http, port


def test_the_staff_token_is_checked_once_per_request(stack, monkeypatch):
    app, http, _ = stack
    calls: list[str | None] = []

    def counted(settings, presented):
        calls.append(presented)
        return authenticate(settings, presented)

    # every place that may check a staff token: RequestGate's and the idempotency gate's (app.py), the
    # routes' role dependency (auth.py)
    monkeypatch.setattr(notifier.api.app, "authenticate", counted)
    monkeypatch.setattr(notifier.api.auth, "authenticate", counted)
    answer = http.post("/api/v1/broadcasts", json={"body": "once"},
                       headers={**PUBLISHER, "Idempotency-Key": uuid.uuid4().hex})
    assert answer.status_code == 201, answer.text
    assert calls == [TOKENS["PUBLISHER_TOKEN"]]
    calls.clear()
    assert http.get("/api/v1/incidents", headers=PUBLISHER).status_code == 200
    assert len(calls) == 1
    calls.clear()  # the role is still enforced with the remembered member
    viewer = {"Authorization": f"Bearer {TOKENS['VIEWER_TOKEN']}"}
    assert http.post("/api/v1/broadcasts", json={"body": "no"}, headers=viewer).status_code == 403
    assert len(calls) == 1
    assert http.post("/api/v1/broadcasts", json={"body": "no"},
                     headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_the_idempotency_gate_does_not_block_the_event_loop(stack):
    app, http, port = stack
    http.get("/openapi.json")  # built once, before the measurement
    admin = redis.Redis(port=port)
    pause_ms = 3000
    admin.execute_command("CLIENT", "PAUSE", pause_ms, "WRITE")  # every write waits; reads are served
    started = time.monotonic()
    done: dict[str, float] = {}

    def keyed_write() -> None:
        with httpx.Client(base_url=str(http.base_url), timeout=30) as other:
            other.post("/api/v1/broadcasts", json={"body": "slow"},
                       headers={**PUBLISHER, "Idempotency-Key": uuid.uuid4().hex})
        done["write"] = time.monotonic() - started

    writer = threading.Thread(target=keyed_write)
    writer.start()
    try:
        time.sleep(0.3)  # the write is now waiting in the gate's SET NX
        assert http.get("/openapi.json").status_code == 200
        read_after = time.monotonic() - started
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")
        writer.join(30)
    assert read_after < pause_ms / 1000 / 2, f"a read waited {read_after:.1f} s behind a paused write"
    assert "write" in done
