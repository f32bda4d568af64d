"""Issue 17: Redis Sentinel, and acknowledged means replicated.

Real parts only: two redis-servers (master + replica, AOF) and three Sentinels on loopback
(tests/fakes/sentinel.py), a real ``celery worker`` reaching its broker through kombu's ``sentinel://``
transport, the API under uvicorn, a real HTTP receiver. The master is SIGKILLed while webhooks and
deliveries flow; nothing restarts the worker, the API or the test's App: they find the new master by
asking the Sentinels. ``redis.min_replicas: 1``, so while the new master has no replica yet (the old
one is dead) the API answers 503 with Retry-After, and the senders retry like monitors do; the old
master then comes back as the new master's replica and acknowledgements resume.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from notifier.api import create_app
from notifier.bootstrap import build
from notifier.config_loader import load_settings
from notifier.store.events import seen_key
from notifier.store.redis_store import connect
from tests.fakes.sentinel import MASTER_NAME, SentinelCluster, sentinel_cluster
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.integration._api_support import ApiServer
from tests.support import Proc, start_beat, start_worker, wait_for, write_config
from workers.dispatch import CeleryDispatcher

pytestmark = pytest.mark.integration

BEFORE, AFTER = 15, 15  # webhooks and broadcasts each side of the kill (`make chaos` runs 1,000)
AM = {"Authorization": "Bearer am-token", "Content-Type": "application/json"}
PUBLISHER = {"Authorization": "Bearer publisher-token"}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SentinelCluster]:
    with sentinel_cluster(tmp_path / "ha", sentinel_password="sentinel-s3cret") as c:
        yield c


def sentinel_config(tmp_path: Path, cluster: SentinelCluster, receiver: WebhookReceiver, **redis_extra: Any) -> Path:
    return write_config(tmp_path / "notifier.yaml", "", {
        "hook": {"type": "webhook", "url": receiver.url, "status_url": receiver.url + "/status",
                 "secret": "${HOOK_SECRET}"},
    }, redis={"sentinels": cluster.addresses, "master_name": MASTER_NAME,
              "sentinel_password": "${SENTINEL_PASSWORD}", **redis_extra},
        sources={"alertmanager": {"auth": "bearer", "token": "${AM_TOKEN}"}},
        staff={"tokens": [{"name": "pia", "role": "publisher", "token": "${PUBLISHER_TOKEN}"}]})


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", "test-secret")
    monkeypatch.setenv("SENTINEL_PASSWORD", "sentinel-s3cret")
    monkeypatch.setenv("AM_TOKEN", "am-token")
    monkeypatch.setenv("PUBLISHER_TOKEN", "publisher-token")


def alert(n: int) -> bytes:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps({"version": "4", "groupKey": '{}:{alertname="ProbeFailed"}', "receiver": "notifier",
                       "status": "firing", "groupLabels": {"alertname": "ProbeFailed"}, "commonLabels": {},
                       "commonAnnotations": {}, "externalURL": "http://am.test:9093", "truncatedAlerts": 0,
                       "alerts": [{
        "status": "firing", "labels": {"alertname": "ProbeFailed", "instance": f"probe-{n}", "service": "imap"},
        "annotations": {"summary": f"probe {n}"}, "startsAt": now, "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": f"fp{n:06d}"}]}).encode()


def test_master_sigkill_loses_nothing_and_doubles_nothing(tmp_path: Path, cluster: SentinelCluster, env: None,
                                                          receiver: WebhookReceiver) -> None:
    config = sentinel_config(tmp_path, cluster, receiver, min_replicas=1, wait_timeout_ms=300)
    settings = load_settings(config)
    app = build(settings, dispatcher=CeleryDispatcher(settings))  # connects through the Sentinels
    probe = connect(settings)  # a Sentinel-managed client, like the worker's: it follows the failover
    procs: list[Proc] = []
    stats: Counter[str] = Counter()
    acked_events: list[str] = []
    acked_updates: list[str] = []
    try:
        procs.append(start_worker(config, probe, tmp_path / "worker.log", concurrency=2))
        procs.append(start_beat(config, tmp_path / "beat.log", tmp_path))  # the sweeper re-sends what a crash held
        with ApiServer(create_app(app)) as api, httpx.Client(base_url=api.url, timeout=10) as http:

            def webhook(n: int) -> None:
                """POST until 202, as Alertmanager does; every other answer must be a 503 with Retry-After."""
                while True:
                    resp = http.post("/webhooks/alertmanager", content=alert(n), headers=AM)
                    if resp.status_code == 202:
                        acked_events.extend(resp.json()["accepted"] + resp.json()["duplicates"])
                        return
                    assert resp.status_code == 503, resp.text
                    assert resp.headers.get("Retry-After"), "a 503 says when to retry"
                    stats["webhook_503"] += 1
                    time.sleep(0.1)

            def broadcast(n: int) -> None:
                """A staff write, retried with its Idempotency-Key until 201: never two broadcasts."""
                key = {"Idempotency-Key": f"broadcast-{n}"}
                while True:
                    resp = http.post("/api/v1/broadcasts", json={"body": f"notice {n}"}, headers={**PUBLISHER, **key})
                    if resp.status_code == 201:
                        acked_updates.append(resp.json()["updates"][0]["id"])
                        return
                    assert resp.status_code == 503, resp.text
                    assert resp.headers.get("Retry-After"), "a 503 says when to retry"
                    stats["write_503"] += 1
                    time.sleep(0.1)

            for n in range(BEFORE):
                webhook(n)
                broadcast(n)
            old_port = cluster.master_port()
            assert old_port is not None
            killed_at = time.monotonic()
            cluster.server_on(old_port).kill()
            new_port, promoted_at = cluster.wait_failover(old_port)
            # no replica behind the new master: acknowledging now would be a promise a second failure
            # could break, so the API refuses (503), and nothing it refused is counted as sent
            refused = http.post("/webhooks/alertmanager", content=alert(10_000), headers=AM)
            assert refused.status_code == 503 and refused.headers.get("Retry-After")
            cluster.server_on(old_port).start()  # Sentinel turns the old master into the new one's replica
            delivered_before = len(receiver.keys())
            for n in range(BEFORE, BEFORE + AFTER):
                webhook(n)
                broadcast(n)
            webhook(10_000)  # the refused one, retried: now acknowledged
            wait_for(lambda: len(receiver.keys()) > delivered_before, timeout=60,
                     what="a delivery through the new master")
            first_delivery = time.monotonic()
            expected = {f"{u}:hook" for u in acked_updates}
            wait_for(lambda: expected <= set(receiver.keys()), timeout=90,
                     what="every acknowledged broadcast at the receiver")
            assert procs[0].proc.poll() is None, "the worker survived the failover without a restart"
    finally:
        for proc in procs:
            proc.stop()
    keys = receiver.keys()
    doubled = [k for k, c in Counter(keys).items() if c > 1]
    new_master = redis.Redis(port=new_port, decode_responses=True)
    lost = [e for e in acked_events if not new_master.exists(seen_key(settings.redis.key_prefix, e))]
    print(f"\nsentinel failover: kill -> promoted {promoted_at - killed_at:.2f} s, kill -> first delivery on the "
          f"new master {first_delivery - killed_at:.2f} s; {len(acked_events)} events and {len(acked_updates)} "
          f"broadcasts acknowledged, {stats['webhook_503']} webhook 503s and {stats['write_503']} staff "
          f"write 503s retried; {len(keys)} posts at the receiver, {len(doubled)} doubled, {len(lost)} events lost")
    assert doubled == [], f"posted twice: {doubled}"
    assert lost == [], f"acknowledged events missing on the new master: {lost}"
    assert new_master.info("replication")["role"] == "master" and new_port != old_port
