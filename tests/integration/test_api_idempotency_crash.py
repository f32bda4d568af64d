"""The API process SIGKILLed between a keyed staff write and the record of its answer (issue 10): a
retry with the same ``Idempotency-Key`` answers as the first request and applies nothing twice.

Real parts: a private redis-server, the API under uvicorn in its own process (frozen at a failpoint,
then killed), a second API process for the retry. The dispatcher of the API processes appends each
hand-over to a Redis list, so the test counts what reached the workers' queue."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from notifier.domain.model import DeliveryState
from notifier.services import incidents
from notifier.store.local_redis import LocalRedis, free_port
from tests.integration._api_support import TOKENS, make_app, settings_for, wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
PUBLISHER = {"Authorization": f"Bearer {TOKENS['PUBLISHER_TOKEN']}"}
HANDED = "t:test:handed"  # the list the API processes' dispatcher appends notice ids to

SERVER = """
import sys
from pathlib import Path
import uvicorn
from notifier.api import create_app
from tests.integration._api_support import make_app, settings_for

HANDED = sys.argv[4]


class Handed:
    def __init__(self, client):
        self.client = client
    def deliver(self, notice_id, channel, countdown=0):
        self.client.rpush(HANDED, notice_id)
    def deliver_many(self, notices):
        for notice_id, channel in notices:
            self.deliver(notice_id, channel)
    def outbox(self, notices, store):
        return None  # a broker of its own: the notices are handed over after the commit
    def wake_engine(self):
        pass

app = make_app(settings_for(Path(sys.argv[1])), int(sys.argv[2]))
app.dispatcher = Handed(app.redis)
uvicorn.run(create_app(app, idempotency_lease=1.0), host="127.0.0.1", port=int(sys.argv[3]),
            log_level="warning", lifespan="off")
"""


class Api:
    """One API process; ``failpoint`` freezes it there (see notifier/failpoints.py)."""

    def __init__(self, tmp: Path, redis_port: int, failpoint: str | None = None) -> None:
        self.port = free_port()
        self.points = tmp / f"points-{self.port}"
        self.points.mkdir()
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("NOTIFIER_FAILPOINT", None)
        if failpoint:
            env |= {"NOTIFIER_FAILPOINT": failpoint, "NOTIFIER_FAILPOINT_DIR": str(self.points)}
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER, str(tmp), str(redis_port), str(self.port), HANDED],
                                     cwd=ROOT, env=env)
        self.url = f"http://127.0.0.1:{self.port}"
        wait_for(self._up, timeout=60, what="the API process to serve")

    def _up(self) -> bool:
        assert self.proc.poll() is None, "the API process exited"
        try:
            return httpx.get(self.url + "/api/v1/drafts", headers=PUBLISHER, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def frozen(self) -> bool:
        return any(self.points.iterdir())

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[object, Callable[..., Api]]]:
    server = LocalRedis(tmp_path / "redis").start()
    app = make_app(settings_for(tmp_path), server.port)
    started: list[Api] = []

    def spawn(failpoint: str | None = None) -> Api:
        started.append(Api(tmp_path, server.port, failpoint))
        return started[-1]

    try:
        yield app, spawn
    finally:
        for api in started:
            if api.proc.poll() is None:
                api.kill()
        server.stop()


def crash_during(api: Api, path: str, body: dict, key: str) -> None:
    """POST with the key; the API freezes at its failpoint and is SIGKILLed: the client gets no answer."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(httpx.post, api.url + path, json=body,
                              headers={**PUBLISHER, "Idempotency-Key": key}, timeout=60)
        wait_for(api.frozen, timeout=60, what="the API to reach its failpoint")
        api.kill()
        with pytest.raises(httpx.HTTPError):
            pending.result()


def retried(api: Api, path: str, body: dict, key: str) -> httpx.Response:
    def once() -> httpx.Response | None:
        resp = httpx.post(api.url + path, json=body, headers={**PUBLISHER, "Idempotency-Key": key}, timeout=30)
        assert resp.status_code in (200, 201, 409), resp.text  # 409: the dead request's lease, until it runs out
        return resp if resp.status_code != 409 else None

    return wait_for(once, timeout=60, what="the retry to be answered")


def handed(app) -> list[str]:
    return list(app.redis.lrange(HANDED, 0, -1))


def test_merge_killed_before_its_answer_is_recorded_is_not_applied_twice(stack):
    app, spawn = stack
    src = incidents.open_incident(app, name="IMAP slow", components={"imap": "degraded_performance"}, body="slow")
    into = incidents.open_incident(app, name="Mail down", components={"smtp": "major_outage"}, body="down")
    key, path, body = uuid.uuid4().hex, f"/api/v1/incidents/{src.id}/merge", {"into": into.id}

    crash_during(spawn("idempotency_before_record"), path, body, key)
    assert not app.store.get_incident(src.id).is_open  # the write was committed before the crash
    answer = retried(spawn(), path, body, key)

    assert answer.status_code == 200 and answer.json()["id"] == into.id, answer.text
    source = app.store.get_incident(src.id)
    assert [u.status for u in source.updates] == ["investigating", "resolved"]  # one merge note
    target = app.store.get_incident(into.id)
    assert sorted(target.components) == ["imap", "smtp"] and len(target.updates) == 1
    note = source.updates[-1].id
    assert len(app.store.ledger.rows(update_id=note)) == 1  # one row per channel: one post of the note


def test_delivery_retry_killed_before_its_answer_is_recorded_moves_the_row_once(stack):
    app, spawn = stack
    inc = incidents.broadcast(app, body="maintenance tonight")
    (row,) = app.store.ledger.rows(incident_id=inc.id)
    now = app.clock.timestamp()
    assert app.store.ledger.release(row.notice_id, "", DeliveryState.FAILED, now, None, "refused by the channel",
                                    expect=DeliveryState.PENDING)
    app.redis.delete(HANDED)
    key, path = uuid.uuid4().hex, f"/api/v1/deliveries/{row.notice_id}/retry"

    crash_during(spawn("idempotency_before_record"), path, {}, key)
    assert app.store.ledger.get(row.notice_id).state == DeliveryState.PENDING  # moved before the crash
    answer = retried(spawn(), path, {}, key)

    assert answer.json() == {"notice_id": row.notice_id, "was": "failed", "now": "queued"}  # the first answer
    after = app.store.ledger.get(row.notice_id)
    assert after.last_error == "retry requested by staff (refused by the channel)"  # released once
    assert handed(app) == [row.notice_id]  # handed to the workers once


def test_delivery_retry_killed_before_handing_over_is_handed_over_by_the_retry(stack):
    app, spawn = stack
    inc = incidents.broadcast(app, body="all clear")
    (row,) = app.store.ledger.rows(incident_id=inc.id)
    assert app.store.ledger.release(row.notice_id, "", DeliveryState.FAILED, app.clock.timestamp(), None,
                                    "refused", expect=DeliveryState.PENDING)
    app.redis.delete(HANDED)
    key, path = uuid.uuid4().hex, f"/api/v1/deliveries/{row.notice_id}/retry"

    crash_during(spawn("retry_after_release"), path, {}, key)
    assert handed(app) == []  # the row moved, but nothing reached the queue
    answer = retried(spawn(), path, {}, key)

    assert answer.json()["was"] == "failed"
    assert handed(app) == [row.notice_id]
    third = retried(spawn(), path, {}, key)  # a third time: the recorded answer, nothing handed over again
    assert third.json() == answer.json() and third.headers["idempotent-replayed"] == "true"
    assert handed(app) == [row.notice_id]


def test_an_incident_killed_before_its_answer_is_recorded_replays_the_answer_it_committed(stack):
    app, spawn = stack
    key, path = uuid.uuid4().hex, "/api/v1/incidents"
    body = {"name": "Mail down", "components": {"smtp": "major_outage"}, "body": "mail is down"}

    crash_during(spawn("idempotency_before_record"), path, body, key)
    (opened,) = app.store.list_incidents()  # committed before the crash, with the answer it would give
    incidents.update_incident(app, opened.id, status="identified", body="found it")  # changed since
    api = spawn()
    other = httpx.post(api.url + path, json={**body, "body": "another body"},
                       headers={**PUBLISHER, "Idempotency-Key": key}, timeout=30)
    assert other.status_code == 422, other.text  # the key with another body: the answer kept in the commit says so
    answer = retried(api, path, body, key)

    assert answer.status_code == 201 and answer.headers["idempotent-replayed"] == "true", answer.text
    assert answer.json()["id"] == opened.id
    assert [u["body"] for u in answer.json()["updates"]] == [{"en": "mail is down"}]  # as committed
    assert answer.json()["updates"][0]["op_id"] == opened.updates[0].op_id
    assert len(app.store.list_incidents()) == 1  # opened once
    assert handed(app) == [f"{opened.id}.1:{c}" for c in app.channels]  # handed over once, by the first request
