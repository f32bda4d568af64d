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
import os
import signal
import socket
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
import yaml

from notifier.api import create_app
from notifier.bootstrap import build
from notifier.config_loader import load_settings
from notifier.domain.model import DeliveryState
from notifier.errors import StoreUnavailable
from notifier.ports import NullDispatcher
from notifier.services import delivery
from notifier.store.events import seen_key, stream_key
from notifier.store.redis_store import connect
from tests.fakes.sentinel import MASTER_NAME, SentinelCluster, sentinel_cluster
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.integration._api_support import ApiServer
from tests.integration._sentinel_support import (
    AM,
    PUBLISHER,
    SENTINEL_PASSWORD,
    alert,
    broadcast,
    post_until,
    run_cli,
    sentinel_config,
    set_secrets,
    webhook,
)
from tests.support import Proc, start_beat, start_worker, wait_for
from workers.dispatch import CeleryDispatcher

pytestmark = pytest.mark.integration

# webhooks and broadcasts each side of the kill; `make chaos` sets SENTINEL_EVENTS=500: 1,000 of each
BEFORE = AFTER = int(os.environ.get("SENTINEL_EVENTS", "15"))
# a deadline, not a wait: on a loaded 2-core machine the settle after the failover took up to ~40 s
SETTLE = float(os.environ.get("SENTINEL_SETTLE_SECONDS", "180"))


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SentinelCluster]:
    """Two redis-servers (master + replica) and three Sentinels."""
    with sentinel_cluster(tmp_path / "ha", sentinel_password=SENTINEL_PASSWORD) as c:
        yield c


@pytest.fixture
def three_hosts(tmp_path: Path) -> Iterator[SentinelCluster]:
    """The documented three-host layout: a master, two replicas and three Sentinels."""
    with sentinel_cluster(tmp_path / "ha3", sentinel_password=SENTINEL_PASSWORD, replicas=2) as c:
        yield c


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    set_secrets(monkeypatch)


def test_master_sigkill_loses_nothing_and_doubles_nothing(tmp_path: Path, three_hosts: SentinelCluster, env: None,
                                                          receiver: WebhookReceiver) -> None:
    """The master SIGKILLed while webhooks and staff broadcasts flow; then the stale old master restarted
    (its AOF has nothing of what came after the kill): Sentinel makes it a replica and it catches up."""
    cluster = three_hosts
    config = sentinel_config(tmp_path, cluster, receiver, min_replicas=1, wait_timeout_ms=300)
    settings = load_settings(config)
    app = build(settings, dispatcher=CeleryDispatcher(settings))  # connects through the Sentinels
    probe = connect(settings)  # a Sentinel-managed client, like the worker's: it follows the failover
    prefix = settings.redis.key_prefix
    procs: list[Proc] = []
    stats: Counter[str] = Counter()
    acked_events: list[str] = []
    acked_updates: list[str] = []
    after_kill: list[str] = []
    try:
        procs.append(start_worker(config, probe, tmp_path / "worker.log", concurrency=2))
        procs.append(start_beat(config, tmp_path / "beat.log", tmp_path))  # the sweeper re-sends what a crash held
        with ApiServer(create_app(app)) as api, httpx.Client(base_url=api.url, timeout=10) as http:
            for n in range(BEFORE):
                acked_events.extend(webhook(http, n, stats))
                acked_updates.append(broadcast(http, n, stats))
            old_port = cluster.master_port()
            assert old_port is not None
            killed_at = time.monotonic()
            cluster.server_on(old_port).kill()
            new_port, promoted_at = cluster.wait_failover(old_port, timeout=60)
            for n in range(BEFORE, BEFORE + AFTER):
                acked_events.extend(webhook(http, n, stats))
                after_kill.append(broadcast(http, n, stats))  # written on the new master
            acked_updates += after_kill
            old = cluster.server_on(old_port).start()  # Sentinel makes the old master a replica of the new one
            expected = {f"{u}:hook" for u in acked_updates}
            wait_for(lambda: expected <= set(receiver.keys()), timeout=SETTLE, interval=0.2,
                     what=f"every acknowledged broadcast at the receiver ({len(expected - set(receiver.keys()))} "
                          f"missing)")
            first_delivery = receiver.first_arrival({f"{u}:hook" for u in after_kill})
            assert first_delivery is not None
            assert procs[0].proc.poll() is None, "the worker survived the failover without a restart"
            wait_for(lambda: redis.Redis(port=old.port).info("replication")["role"] == "slave", timeout=60,
                     what="the old master to rejoin as a replica")
            # the stale old master's data is replaced by the new master's: no write made after the kill missing
            stale = redis.Redis(port=old.port, decode_responses=True)
            made_after = [f"{prefix}incident:{u.rsplit('.', 1)[0]}" for u in after_kill]
            wait_for(lambda: stale.exists(*made_after) == len(made_after), timeout=60,
                     what="the old master to hold every broadcast made after the kill")
            wait_for(lambda: len(probe.info("replication").get("slave1", {})) > 0, timeout=30,
                     what="both replicas behind the new master")
            # on a loaded machine Sentinel (down-after 1 s here) may fail over once more; what must hold is
            # that the status names the master the Sentinels name now, and that it is not the killed one
            current = cluster.master_port()
            assert current is not None and current != old_port
            status = run_cli(config, "status")
            out = status.stdout
            print("\n`notifier status` after the failover:\n" + out)
            assert f"master   127.0.0.1:{cluster.master_port()}" in out, out + status.stderr
            assert out.count("replica  127.0.0.1:") == 2 and f"127.0.0.1:{old_port}" in out, out
            assert procs[0].node in out and "notify.hook" in out, out
            assert "beat lock: held by " + socket.gethostname() in out, out
            assert status.returncode == 0, out + status.stderr
    finally:
        for proc in procs:
            proc.stop()
    keys = receiver.keys()
    doubled = [k for k, c in Counter(keys).items() if c > 1]
    new_master = redis.Redis(port=current, decode_responses=True)
    lost = [e for e in acked_events if not new_master.exists(seen_key(prefix, e))]
    print(f"\nsentinel failover: kill -> promoted {promoted_at - killed_at:.2f} s, kill -> first delivery of a "
          f"broadcast made on the new master {first_delivery - killed_at:.2f} s; {len(acked_events)} events and "
          f"{len(acked_updates)} broadcasts acknowledged, {stats['webhook_503']} webhook 503s and "
          f"{stats['write_503']} staff write 503s retried, {stats['webhook_reset'] + stats['write_reset']} "
          f"reset connections retried; {len(keys)} posts at the receiver, {len(doubled)} doubled, "
          f"{len(lost)} events lost")
    assert doubled == [], f"posted twice: {doubled}"
    assert lost == [], f"acknowledged events missing on the new master: {lost}"
    assert new_master.info("replication")["role"] == "master" and new_port != old_port and current != old_port


def test_too_few_replicas_or_no_sentinel_quorum_give_503_and_lose_nothing(
        tmp_path: Path, cluster: SentinelCluster, env: None, receiver: WebhookReceiver) -> None:
    """The one replica partitioned away (SIGSTOP: there, but silent): min_replicas cannot be met, so
    webhooks and staff writes get 503 + Retry-After, never 202/201 for a write only the master holds, and
    never a 500; a delivery's fence cannot be confirmed, so nothing is sent and it comes back in 5 s. Then
    every Sentinel and the master gone: still 503s. Everything comes back: the retried requests are
    accepted, each event queued once, each broadcast made and delivered once."""
    config = sentinel_config(tmp_path, cluster, receiver, min_replicas=1, wait_timeout_ms=200)
    settings = load_settings(config)
    app = build(settings, dispatcher=NullDispatcher())  # the test runs the deliveries (delivery.deliver)
    master, replica = cluster.servers
    assert replica.proc is not None
    stats: Counter[str] = Counter()
    with ApiServer(create_app(app)) as api, httpx.Client(base_url=api.url, timeout=10) as http:
        assert http.post("/webhooks/alertmanager", content=alert(1), headers=AM).status_code == 202
        sent = http.post("/api/v1/broadcasts", json={"body": "to send"}, headers=PUBLISHER)
        assert sent.status_code == 201, sent.text
        to_send = sent.json()["updates"][0]["id"] + ":hook"
        replica.proc.send_signal(signal.SIGSTOP)
        try:
            # the fence before a send cannot be replicated: no send, the row goes back to pending, due in 5 s
            now = app.clock.timestamp()
            outcome = delivery.deliver(app, to_send)
            assert (outcome.state, outcome.retry_in) == ("retry", 5.0) and "replicas" in outcome.detail, outcome
            row = app.store.ledger.get(to_send)
            assert row is not None and row.state == DeliveryState.PENDING and not row.sending_at, row
            assert now < row.next_at <= now + 10 and receiver.keys() == [], "nothing sent; due again in seconds"
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
            with pytest.raises((StoreUnavailable, redis.RedisError)):  # the store is gone: an error, never a send
                delivery.deliver(app, to_send)
        except BaseException:
            replica.proc.send_signal(signal.SIGCONT)
            raise

        master.start()
        back_at = time.monotonic()
        replica.proc.send_signal(signal.SIGCONT)
        for s in cluster.sentinels:
            s.start()
        for n in (2, 3):  # the monitor's retries (a connection reset on the way is retried too)
            webhook(http, n, stats, timeout=60)
        held_id = post_until(http, 201, stats, "write", "/api/v1/broadcasts", 60, json={"body": "held"},
                             headers={**PUBLISHER, "Idempotency-Key": "held-1"}).json()["updates"][0]["id"]
        for nid in (to_send, f"{held_id}:hook"):  # the task the outcome scheduled, and the new broadcast's
            wait_for(lambda nid=nid: delivery.deliver(app, nid).state == "posted", timeout=60, interval=0.5,
                     what=f"{nid} posted once the replica is back")
        delivered = receiver.first_arrival({to_send})
    assert delivered is not None
    print(f"\nreplica partitioned, then master and Sentinels gone: back -> first delivery {delivered - back_at:.2f} s;"
          f" {stats['webhook_503'] + stats['write_503']} 503s and {stats['webhook_reset'] + stats['write_reset']} "
          "reset connections retried after the restart")
    assert sorted(Counter(receiver.keys()).values()) == [1, 1], f"each broadcast posted once: {receiver.keys()}"
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
