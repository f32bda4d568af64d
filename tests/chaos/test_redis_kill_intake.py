"""Chaos: redis-server SIGKILLed (and restarted on its AOF) while Alertmanager-style webhooks arrive at the
API. Real parts: the API under uvicorn, a real Celery worker and beat, a webhook receiver that counts.

Each event fires an alert for its own component, so each must become its own incident and exactly one
post at the receiver. Two senders post at once, so a kill lands in the middle of requests; a sender
that got no 202 (a 503 while Redis was down, or no answer) sends the same event again, as
Alertmanager does. Counted at the receiver: every 202'd event delivered once, no
incident opened twice.

Lean in ``make test`` (CHAOS_INCIDENTS/2 = 25 events, 2 kills); ``make chaos``: CHAOS_INCIDENTS/2
events and CHAOS_KILLS/4 kills.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from notifier.api import create_app
from notifier.bootstrap import build
from notifier.config_loader import load_settings
from notifier.domain.model import DeliveryState
from notifier.store.local_redis import LocalRedis
from tests.chaos.test_kills_at_volume import SETTLE_BOUND
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.integration._api_support import ApiServer
from tests.support import Proc, start_beat, start_worker, wait_for, write_config
from workers.dispatch import CeleryDispatcher

pytestmark = pytest.mark.integration

EVENTS = max(2, int(os.environ.get("CHAOS_INCIDENTS", "50")) // 2)
KILLS = max(2, int(os.environ.get("CHAOS_KILLS", "3")) // 4 + 1)
AM = {"Authorization": "Bearer am-chaos-token", "Content-Type": "application/json"}


@pytest.fixture
def world(tmp_path: Path, redis_server: LocalRedis, redis_client: redis.Redis, receiver: WebhookReceiver,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    monkeypatch.setenv("HOOK_SECRET", "test-secret")
    monkeypatch.setenv("AM_TOKEN", "am-chaos-token")
    monkeypatch.setenv("PUBLISHER_TOKEN", "pub-chaos-token")
    components = [{"id": f"c{i}", "name": f"Service {i}"} for i in range(EVENTS)]
    routes = [{"match": {"service": f"c{i}"}, "components": [f"c{i}"]} for i in range(EVENTS)]
    config = write_config(
        tmp_path / "notifier.yaml", redis_server.url,
        {"hook": {"type": "webhook", "url": receiver.url, "status_url": receiver.url + "/status",
                  "secret": "${HOOK_SECRET}"}},
        components=components,
        sources={"alertmanager": {"auth": "bearer", "token": "${AM_TOKEN}"}},
        staff={"tokens": [{"name": "pia", "role": "publisher", "token": "${PUBLISHER_TOKEN}"}]},
        engine={"confirm": {"seconds": 0, "component_status_seconds": 0}, "settle": {"seconds": 0},
                "routing": {"routes": routes}},
    )
    settings = load_settings(config)
    app = build(settings, dispatcher=CeleryDispatcher(settings), redis_url=redis_server.url)
    procs: list[Proc] = [start_worker(config, redis_client, tmp_path / "worker.log", concurrency=2),
                         start_beat(config, tmp_path / "beat.log", tmp_path)]
    try:
        # a key whose first request died with Redis is free again after 2 s (409 "in progress" until then)
        with ApiServer(create_app(app, idempotency_lease=2.0)) as api, \
                httpx.Client(base_url=api.url, timeout=10) as http:
            yield {"app": app, "http": http, "server": redis_server, "procs": procs}
    finally:
        for proc in procs:
            proc.stop()


def event(app, n: int) -> bytes:
    starts = app.clock.now().isoformat().replace("+00:00", "Z")
    return json.dumps({
        "receiver": "notifier", "status": "firing", "version": "4", "groupKey": f"{{}}:{{service=\"c{n}\"}}",
        "alerts": [{"status": "firing", "labels": {"alertname": "ServiceDown", "service": f"c{n}",
                                                   "severity": "critical", "instance": f"host{n}"},
                    "annotations": {"summary": f"Service {n} is down"}, "startsAt": starts,
                    "endsAt": "0001-01-01T00:00:00Z", "fingerprint": f"{n:016x}"}],
        "groupLabels": {"service": f"c{n}"}, "commonLabels": {"service": f"c{n}"}, "commonAnnotations": {},
        "externalURL": "http://am.test", "truncatedAlerts": 0,
    }).encode()


def send_with_kills(world, post, accepted_status: int, retry_statuses: tuple[int, ...]) -> tuple[int, int]:
    """Two senders post items 0..EVENTS-1 at once (``post(n)`` -> status, 0 for no answer), each repeating an
    item until ``accepted_status``, while Redis is SIGKILLed and restarted after the drawn counts.
    Returns (kills, refused sends)."""
    server = world["server"]
    rng = random.Random(os.environ.get("CHAOS_SEED"))
    kill_at = sorted(rng.sample(range(1, EVENTS - 1), min(KILLS, EVENTS - 2)))  # after k items accepted
    counts = {"accepted": 0, "refused": 0}
    lock, up = threading.Lock(), threading.Event()
    up.set()

    def sender(numbers: list[int]) -> None:
        for n in numbers:
            while True:
                try:
                    status = post(n)
                except httpx.HTTPError:
                    status = 0
                if status == accepted_status:
                    with lock:
                        counts["accepted"] += 1
                    break
                assert status in (0, *retry_statuses), status
                with lock:
                    counts["refused"] += 1
                up.wait(30)  # the sender's pause before repeating: until Redis is back
                if status == 409:  # the key's first request is still in progress (its lease runs out in 2 s)
                    time.sleep(0.05)

    threads = [threading.Thread(target=sender, args=(list(range(i, EVENTS, 2)),), daemon=True) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for k in kill_at:
        wait_for(lambda k=k: counts["accepted"] >= k, timeout=SETTLE_BOUND, interval=0.005,
                 what=f"{k} items accepted")
        refused = counts["refused"]
        up.clear()
        server.kill()  # SIGKILL: whatever was acknowledged is in the AOF (fsync always)
        wait_for(lambda refused=refused: counts["refused"] > refused or counts["accepted"] == EVENTS,
                 timeout=SETTLE_BOUND, what="a sender to notice Redis is gone")
        server.start()  # what the supervisor does
        up.set()
    for thread in threads:
        thread.join(SETTLE_BOUND)
    assert counts["accepted"] == EVENTS
    return len(kill_at), counts["refused"]


def wait_all_posted(world, what: str) -> None:
    """Wait until every ledger row (at least EVENTS of them) is posted; on a timeout, show the rest."""
    app = world["app"]

    def delivered() -> bool:
        rows = app.store.ledger.rows(limit=10 * EVENTS)
        return len(rows) >= EVENTS and all(r.state == DeliveryState.POSTED for r in rows)

    try:
        wait_for(delivered, timeout=SETTLE_BOUND, interval=0.2,
                 what=f"every {what} posted within {SETTLE_BOUND:.0f} s")
    except AssertionError as exc:
        rows = [(r.notice_id, r.state.value, r.last_error) for r in app.store.ledger.rows(limit=10 * EVENTS)
                if r.state != DeliveryState.POSTED]
        raise AssertionError(f"{exc}; unsettled {rows[:10]}; worker: {world['procs'][0].tail()}") from None


def test_redis_killed_during_intake_every_accepted_event_is_delivered_once(world, receiver) -> None:
    """Each sender repeats its event until it is accepted, as Alertmanager does."""
    app, http = world["app"], world["http"]
    kills, refused = send_with_kills(
        world, lambda n: http.post("/webhooks/alertmanager", content=event(app, n), headers=AM).status_code,
        202, (503,))

    wait_all_posted(world, "accepted event")
    opened = [i for i in app.store.list_incidents() if i.kind == "incident"]
    per_component = Counter(c for i in opened for c in i.components)
    posts = Counter(receiver.keys())
    print(f"chaos: {EVENTS} events, Redis SIGKILLed {kills} times during intake, {refused} sends "
          f"refused and repeated: {len(opened)} incidents, {sum(posts.values())} posts at the receiver")
    assert per_component == Counter({f"c{n}": 1 for n in range(EVENTS)})  # one incident per event
    assert len(opened) == EVENTS
    assert sorted(posts) == sorted(f"{i.updates[0].id}:hook" for i in opened)  # each delivered ...
    assert set(posts.values()) == {1}  # ... once
    assert refused >= kills  # the kills were felt by the senders



def test_redis_killed_during_staff_broadcasts_each_is_published_once(world, receiver) -> None:
    """Staff broadcasts through the API, each retried with its own Idempotency-Key until a 201, while Redis is
    SIGKILLed: a request whose answer was lost is repeated, and the key makes the repeat change nothing."""
    app, http = world["app"], world["http"]
    staff = {"Authorization": "Bearer pub-chaos-token"}

    def post(n: int) -> int:
        return http.post("/api/v1/broadcasts", json={"name": f"Notice {n}", "body": f"Broadcast {n}: all is well."},
                         headers={**staff, "Idempotency-Key": f"chaos-broadcast-{n}"}).status_code

    kills, refused = send_with_kills(world, post, 201, (503, 409))

    wait_all_posted(world, "acknowledged broadcast")
    published = [i for i in app.store.list_incidents(kind="broadcast")]
    posts = Counter(receiver.keys())
    print(f"chaos: {EVENTS} staff broadcasts, Redis SIGKILLed {kills} times, {refused} requests refused and "
          f"repeated with the same key: {len(published)} broadcasts, {sum(posts.values())} posts at the receiver")
    assert Counter(i.name for i in published) == Counter({f"Notice {n}": 1 for n in range(EVENTS)})
    assert sorted(posts) == sorted(f"{i.updates[0].id}:hook" for i in published)  # each delivered ...
    assert set(posts.values()) == {1}  # ... once
    assert refused >= kills  # the kills were felt by the senders
