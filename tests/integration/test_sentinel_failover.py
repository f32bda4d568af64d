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

import functools
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml

from notifier.api import create_app
from notifier.bootstrap import build
from notifier.config_loader import load_settings
from notifier.domain.model import DeliveryState
from notifier.ports import NullDispatcher
from notifier.store.events import seen_key, stream_key
from notifier.store.redis_store import NotReplicated, connect
from tests.fakes.sentinel import MASTER_NAME, SentinelCluster, sentinel_cluster
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.integration._api_support import ApiServer
from tests.support import ROOT, Proc, env_for, start_beat, start_worker, wait_for, write_config
from workers.dispatch import CeleryDispatcher

pytestmark = pytest.mark.integration

# webhooks and broadcasts each side of the kill; `make chaos` sets SENTINEL_EVENTS=500: 1,000 of each
BEFORE = AFTER = int(os.environ.get("SENTINEL_EVENTS", "15"))
SETTLE = float(os.environ.get("SENTINEL_SETTLE_SECONDS", "90"))
AM = {"Authorization": "Bearer am-token", "Content-Type": "application/json"}
PUBLISHER = {"Authorization": "Bearer publisher-token"}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SentinelCluster]:
    """Two redis-servers (master + replica) and three Sentinels."""
    with sentinel_cluster(tmp_path / "ha", sentinel_password="sentinel-s3cret") as c:
        yield c


@pytest.fixture
def three_hosts(tmp_path: Path) -> Iterator[SentinelCluster]:
    """The documented three-host layout: a master, two replicas and three Sentinels."""
    with sentinel_cluster(tmp_path / "ha3", sentinel_password="sentinel-s3cret", replicas=2) as c:
        yield c


def sentinel_config(tmp_path: Path, cluster: SentinelCluster, receiver: WebhookReceiver, **redis_extra: Any) -> Path:
    return write_config(tmp_path / "notifier.yaml", "", {
        "hook": {"type": "webhook", "url": receiver.url, "status_url": receiver.url + "/status",
                 "secret": "${HOOK_SECRET}"},
    }, redis={"sentinels": cluster.addresses, "master_name": MASTER_NAME,
              "sentinel_password": "${SENTINEL_PASSWORD}", **redis_extra},
        sources={"alertmanager": {"auth": "bearer", "token": "${AM_TOKEN}"}},
        staff={"tokens": [{"name": "pia", "role": "publisher", "token": "${PUBLISHER_TOKEN}"}]},
        # room for an engine pass that meets the failover (3 s killed one mid-way, and billiard's pool then
        # died of a corrupt result pipe: UnpicklingError); sends still time out after http_timeout 1 s
        delivery={"task_time_limit": 10, "lease_seconds": 12})


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", "test-secret")
    monkeypatch.setenv("SENTINEL_PASSWORD", "sentinel-s3cret")
    monkeypatch.setenv("AM_TOKEN", "am-token")
    monkeypatch.setenv("PUBLISHER_TOKEN", "publisher-token")


def run_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "notifier", "--config", str(config), *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=60, env=env_for(config))


@functools.cache
def alert(n: int) -> bytes:
    """Alert n, the same bytes on every retry (its event id comes from its fingerprint and times)."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps({"version": "4", "groupKey": '{}:{alertname="ProbeFailed"}', "receiver": "notifier",
                       "status": "firing", "groupLabels": {"alertname": "ProbeFailed"}, "commonLabels": {},
                       "commonAnnotations": {}, "externalURL": "http://am.test:9093", "truncatedAlerts": 0,
                       "alerts": [{
        "status": "firing", "labels": {"alertname": "ProbeFailed", "instance": f"probe-{n}", "service": "imap"},
        "annotations": {"summary": f"probe {n}"}, "startsAt": now, "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": f"fp{n:06d}"}]}).encode()


def test_master_sigkill_loses_nothing_and_doubles_nothing(tmp_path: Path, three_hosts: SentinelCluster, env: None,
                                                          receiver: WebhookReceiver) -> None:
    cluster = three_hosts
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
            delivered_before = len(receiver.keys())
            first: list[float] = []
            watcher = threading.Thread(target=lambda: first.append(wait_for(
                lambda: len(receiver.keys()) > delivered_before and time.monotonic(), timeout=90, interval=0.01,
                what="a delivery through the new master")), daemon=True)
            watcher.start()
            for n in range(BEFORE, BEFORE + AFTER):
                webhook(n)
                broadcast(n)
            old = cluster.server_on(old_port).start()  # Sentinel makes the old master a replica of the new one
            watcher.join(90)
            assert first, "no delivery through the new master"
            first_delivery = first[0]
            expected = {f"{u}:hook" for u in acked_updates}
            wait_for(lambda: expected <= set(receiver.keys()), timeout=SETTLE, interval=0.2,
                     what="every acknowledged broadcast at the receiver")
            assert procs[0].proc.poll() is None, "the worker survived the failover without a restart"
            wait_for(lambda: redis.Redis(port=old.port).info("replication")["role"] == "slave", timeout=60,
                     what="the old master to rejoin as a replica")
            wait_for(lambda: len(probe.info("replication").get("slave1", {})) > 0, timeout=30,
                     what="both replicas behind the new master")
            # on a loaded machine Sentinel (down-after 1 s here) may fail over once more; what must hold is
            # that the status names the master the Sentinels name now, and that it is not the killed one
            current = cluster.master_port()
            assert current is not None and current != old_port
            status = run_cli(config, "status")
            assert status.returncode == 0, status.stdout + status.stderr
            out = status.stdout
            print("\n`notifier status` after the failover:\n" + out)
            assert f"master   127.0.0.1:{cluster.master_port()}" in out, out
            assert out.count("replica  127.0.0.1:") == 2 and f"127.0.0.1:{old_port}" in out, out
            assert procs[0].node in out and "notify.hook" in out, out
            assert "beat lock: held by " + socket.gethostname() in out, out
    finally:
        for proc in procs:
            proc.stop()
    keys = receiver.keys()
    doubled = [k for k, c in Counter(keys).items() if c > 1]
    new_master = redis.Redis(port=current, decode_responses=True)
    lost = [e for e in acked_events if not new_master.exists(seen_key(settings.redis.key_prefix, e))]
    print(f"\nsentinel failover: kill -> promoted {promoted_at - killed_at:.2f} s, kill -> first delivery on the "
          f"new master {first_delivery - killed_at:.2f} s; {len(acked_events)} events and {len(acked_updates)} "
          f"broadcasts acknowledged, {stats['webhook_503']} webhook 503s and {stats['write_503']} staff "
          f"write 503s retried; {len(keys)} posts at the receiver, {len(doubled)} doubled, {len(lost)} events lost")
    assert doubled == [], f"posted twice: {doubled}"
    assert lost == [], f"acknowledged events missing on the new master: {lost}"
    assert new_master.info("replication")["role"] == "master" and new_port != old_port and current != old_port


def test_too_few_replicas_or_no_sentinel_quorum_give_503_and_lose_nothing(
        tmp_path: Path, cluster: SentinelCluster, env: None, receiver: WebhookReceiver) -> None:
    """A replica partitioned away (stopped): min_replicas cannot be met, so webhooks and staff writes get
    503 + Retry-After, never 202/201 for a write only the master holds, and never a 500. Then every
    Sentinel and the master gone: still 503s. Everything comes back: the retried requests are accepted,
    each event queued once."""
    config = sentinel_config(tmp_path, cluster, receiver, min_replicas=1, wait_timeout_ms=200)
    settings = load_settings(config)
    app = build(settings, dispatcher=NullDispatcher())
    master, replica = cluster.servers
    with ApiServer(create_app(app)) as api, httpx.Client(base_url=api.url, timeout=10) as http:
        assert http.post("/webhooks/alertmanager", content=alert(1), headers=AM).status_code == 202
        sent = http.post("/api/v1/broadcasts", json={"body": "to send"}, headers=PUBLISHER)
        assert sent.status_code == 201, sent.text
        notice_id = sent.json()["updates"][0]["id"] + ":hook"
        now = app.clock.timestamp()
        claim = app.store.ledger.claim(notice_id, now, settings.delivery.lease_seconds)
        assert claim.mode == "send", claim
        replica.stop()
        # the fence before a send cannot be replicated: no send, the row goes back to pending, due soon
        with pytest.raises(NotReplicated):
            app.store.ledger.mark_sending(notice_id, claim.token, now, ["text"])
        row = app.store.ledger.get(notice_id)
        assert row is not None and row.state == DeliveryState.PENDING and not row.sending_at, row
        assert now < row.next_at <= now + 10, "due again in seconds, not waiting for a person"
        refused = http.post("/webhooks/alertmanager", content=alert(2), headers=AM)
        assert refused.status_code == 503 and refused.headers["Retry-After"], refused.text
        staff = http.post("/api/v1/broadcasts", json={"body": "held"},
                          headers={**PUBLISHER, "Idempotency-Key": "held-1"})
        assert staff.status_code == 503 and staff.headers["Retry-After"], staff.text

        for s in cluster.sentinels:  # no Sentinel to ask, and the master gone too
            s.kill()
        master.kill()
        app.store.redis.connection_pool.disconnect()  # the pool's live connections died with the master
        no_quorum = http.post("/webhooks/alertmanager", content=alert(3), headers=AM)
        assert no_quorum.status_code == 503 and no_quorum.headers["Retry-After"], no_quorum.text

        master.start()
        replica.start()
        for s in cluster.sentinels:
            s.start()
        for n in (2, 3):  # the monitor's retries
            wait_for(lambda n=n: http.post("/webhooks/alertmanager", content=alert(n), headers=AM).status_code == 202,
                     timeout=30, interval=0.2, what=f"webhook {n} accepted once the replica is back")
        again = http.post("/api/v1/broadcasts", json={"body": "held"},
                          headers={**PUBLISHER, "Idempotency-Key": "held-1"})
        assert again.status_code == 201, again.text
    entries = [json.loads(fields["event"])["id"] for _, fields in
               redis.Redis(port=master.port, decode_responses=True).xrange(stream_key(settings.redis.key_prefix))]
    assert sorted(Counter(entries).values()) == [1, 1, 1], f"each accepted event queued once: {entries}"
    held = [i for i in app.store.list_incidents(kind="broadcast") if i.updates[0].body.get("en") == "held"]
    assert len(held) == 1, "the refused staff write, retried with its key, made one broadcast"


def test_config_check_names_a_wrong_master_and_a_dead_sentinel(tmp_path: Path, cluster: SentinelCluster,
                                                               env: None, receiver: WebhookReceiver) -> None:
    good = sentinel_config(tmp_path, cluster, receiver)
    ok = run_cli(good, "config", "check")
    assert ok.returncode == 0, ok.stderr
    cluster.sentinels[2].kill()
    doc = yaml.safe_load(good.read_text())
    doc["redis"]["master_name"] = "notifer"  # a typo
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc))
    result = run_cli(bad, "config", "check")
    assert result.returncode == 78, result.stdout + result.stderr
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip().startswith("redis.")]
    dead = cluster.addresses[2]
    assert any(line.startswith("redis.sentinels.2:") and dead in line and "unreachable" in line
               for line in lines), lines
    assert any(line.startswith("redis.master_name:") and "'notifer'" in line and MASTER_NAME in line
               for line in lines), lines
    assert len(lines) == 2, f"one line each: {lines}"
