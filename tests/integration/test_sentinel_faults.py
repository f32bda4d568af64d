"""Issue 17: the failures of the three-host layout that must cost nothing (test_sentinel_failover.py has
those that cost seconds). A master, two replicas and three Sentinels on loopback (tests/fakes/sentinel.py),
``redis.min_replicas: 1``, a real worker and beat on the ``sentinel://`` broker, the API under uvicorn,
a real HTTP receiver. A Sentinel SIGKILLed, then a replica partitioned away (SIGSTOP: still there, but
silent): every staff write is acknowledged at the first try and delivered once. Then the master itself
partitioned away (SIGSTOP) during deliveries: the Sentinels fail over, and when it wakes up it is made a
replica; what it executed while isolated was never acknowledged, and nothing acknowledged is lost."""

from __future__ import annotations

import signal
import socket
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
from notifier.store.redis_store import connect, sentinel_of, sentinel_status
from tests.fakes.sentinel import SentinelCluster, sentinel_cluster
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.integration._api_support import ApiServer
from tests.integration._sentinel_support import SENTINEL_PASSWORD, broadcast, sentinel_config, set_secrets
from tests.support import Proc, start_beat, start_worker, wait_for
from workers.dispatch import CeleryDispatcher
from workers.setup import make_celery

pytestmark = pytest.mark.integration

EACH = 5  # broadcasts per phase


@pytest.fixture
def three_hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SentinelCluster]:
    set_secrets(monkeypatch)
    with sentinel_cluster(tmp_path / "ha3", sentinel_password=SENTINEL_PASSWORD, replicas=2) as c:
        yield c


def test_a_dead_sentinel_and_a_partitioned_replica_cost_nothing(tmp_path: Path, three_hosts: SentinelCluster,
                                                               receiver: WebhookReceiver) -> None:
    cluster = three_hosts
    config = sentinel_config(tmp_path, cluster, receiver, min_replicas=1, wait_timeout_ms=300)
    settings = load_settings(config)
    app = build(settings, dispatcher=CeleryDispatcher(settings))
    probe = connect(settings)
    stats: Counter[str] = Counter()
    procs: list[Proc] = []
    figures: dict[str, float] = {}
    replica = cluster.servers[2]
    assert replica.proc is not None
    try:
        procs.append(start_worker(config, probe, tmp_path / "worker.log", concurrency=2))
        procs.append(start_beat(config, tmp_path / "beat.log", tmp_path))
        with ApiServer(create_app(app)) as api, httpx.Client(base_url=api.url, timeout=10) as http:

            def phase(name: str, first: int) -> None:
                """EACH broadcasts after the fault: each 201 at once, each delivered once; the time from
                the fault to the first of them at the receiver."""
                started = time.monotonic()
                keys = {f"{broadcast(http, n, stats)}:hook" for n in range(first, first + EACH)}
                wait_for(lambda: keys <= set(receiver.keys()), timeout=120, interval=0.1,
                         what=f"every broadcast after {name} at the receiver")
                arrived = receiver.first_arrival(keys)
                assert arrived is not None
                figures[name] = arrived - started

            phase("nothing", 0)  # the baseline of this run, on this machine's load
            cluster.sentinels[0].kill()  # the first one every client asks
            phase("a Sentinel SIGKILLed", EACH)
            replica.proc.send_signal(signal.SIGSTOP)
            try:
                phase("a replica partitioned (SIGSTOP)", 2 * EACH)
            finally:
                replica.proc.send_signal(signal.SIGCONT)
            assert procs[0].proc.poll() is None, "the worker kept running:\n" + procs[0].tail()
    finally:
        for proc in procs:
            proc.stop()
    print("\nfault -> first delivery after it: " + "; ".join(f"{k} {v:.2f} s" for k, v in figures.items()))
    assert dict(stats) == {}, f"no 503, no reset: the remaining Sentinels and replica carry on ({dict(stats)})"
    counts = Counter(receiver.keys())
    assert len(counts) == 3 * EACH and set(counts.values()) == {1}, f"each broadcast posted once: {counts}"



def test_a_dead_first_sentinel_costs_a_new_connection_no_backoff(tmp_path: Path, three_hosts: SentinelCluster,
                                                                 receiver: WebhookReceiver) -> None:
    """The first Sentinel on the list SIGKILLed (refused at once): a new broker connection (kombu's
    Sentinel transport, as a worker's pool process opens one), the store's discovery and `notifier status`
    ask the next Sentinel straight away. With redis-py's default retry on the Sentinel clients each of
    them slept 0-14 s first (2 + 4 + 8 s of jittered backoff), which ran a worker's tasks into the 10 s
    hard limit. The bound, 1.5 s each, is far above a loopback round trip and far below the backoff
    (three uniform draws from [0, 2], [0, 4], [0, 8] s sum to less than 1.5 s in ~1% of tries)."""
    cluster = three_hosts
    settings = load_settings(sentinel_config(tmp_path, cluster, receiver, min_replicas=1))
    master_port = cluster.master_port()
    cluster.sentinels[0].kill()
    took: dict[str, list[float]] = {"broker connection": [], "store discovery": [], "status": []}
    celery = make_celery(settings)
    for _ in range(3):
        started = time.monotonic()
        with celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1)
            conn.default_channel.client.ping()  # the channel asked the Sentinels for the master
        took["broker connection"].append(time.monotonic() - started)
        started = time.monotonic()
        assert sentinel_of(settings).discover_master(settings.redis.master_name or "")[1] == master_port
        took["store discovery"].append(time.monotonic() - started)
        started = time.monotonic()
        rows = sentinel_status(settings)
        took["status"].append(time.monotonic() - started)
        assert len(rows) == 3 and "error" in rows[0] and "master" in rows[1], rows
    print("\nfirst Sentinel dead: " + "; ".join(f"{k} " + ", ".join(f"{t:.3f}" for t in v) + " s"
                                            for k, v in took.items()))
    slow = {k: [round(t, 2) for t in v if t >= 1.5] for k, v in took.items()}
    assert not any(slow.values()), f"backoff on a dead Sentinel: {slow}"


def _resp(*args: str) -> bytes:
    return b"".join([f"*{len(args)}\r\n".encode()] + [f"${len(a)}\r\n{a}\r\n".encode() for a in args])


def test_a_partitioned_master_comes_back_as_a_replica_and_loses_nothing(
        tmp_path: Path, three_hosts: SentinelCluster, receiver: WebhookReceiver) -> None:
    """The master SIGSTOPped while deliveries run (there, but silent: its sockets stay open, the kernel
    buffers what is sent to it). The Sentinels promote a replica; staff writes retry (503 or a timed-out
    connection) until the new master acknowledges them. SIGCONT: the old master runs what was buffered,
    then the Sentinels make it a replica of the new one. A write it ran while isolated is not acknowledged
    (WAIT finds no replica) and is gone after the resync; every acknowledged broadcast is delivered once."""
    cluster = three_hosts
    config = sentinel_config(tmp_path, cluster, receiver, min_replicas=1, wait_timeout_ms=300)
    settings = load_settings(config)
    prefix = settings.redis.key_prefix
    app = build(settings, dispatcher=CeleryDispatcher(settings))
    probe = connect(settings)
    stats: Counter[str] = Counter()
    procs: list[Proc] = []
    old_port = cluster.master_port()
    assert old_port == cluster.servers[0].port
    old = cluster.servers[0]
    assert old.proc is not None
    acked: list[str] = []
    try:
        procs.append(start_worker(config, probe, tmp_path / "worker.log", concurrency=2))
        procs.append(start_beat(config, tmp_path / "beat.log", tmp_path))
        with ApiServer(create_app(app)) as api, httpx.Client(base_url=api.url, timeout=10) as http:
            acked += [broadcast(http, n, stats) for n in range(EACH)]  # queued: deliveries run during the stop
            # a client of the old master that writes to it while it is isolated (the write waits in the kernel)
            isolated = socket.create_connection(("127.0.0.1", old_port), timeout=30)
            stopped_at = time.monotonic()
            old.proc.send_signal(signal.SIGSTOP)
            try:
                isolated.sendall(_resp("SET", f"{prefix}isolated-write", "1") + _resp("WAIT", "1", "300"))
                new_port, promoted_at = cluster.wait_failover(old_port, timeout=60)
                after = [broadcast(http, n, stats) for n in range(EACH, 2 * EACH)]  # on the new master
                acked += after
            finally:
                old.proc.send_signal(signal.SIGCONT)
            replies = b""
            while replies.count(b"\r\n") < 2:  # +OK (or -NOREPLICAS) then :<replicas>
                chunk = isolated.recv(4096)
                assert chunk, f"the old master closed the connection: {replies!r}"
                replies += chunk
            isolated.close()
            wait_for(lambda: redis.Redis(port=old_port).info("replication")["role"] == "slave", timeout=60,
                     what="the old master to come back as a replica")
            expected = {f"{u}:hook" for u in acked}
            wait_for(lambda: expected <= set(receiver.keys()), timeout=120, interval=0.2,
                     what=f"every acknowledged broadcast at the receiver "
                          f"({len(expected - set(receiver.keys()))} missing)")
            first = receiver.first_arrival({f"{u}:hook" for u in after})
            assert first is not None
            assert procs[0].proc.poll() is None, "the worker kept running:\n" + procs[0].tail()
            current = cluster.master_port()
            assert current is not None and current != old_port
            stale = redis.Redis(port=old_port, decode_responses=True)
            made_after = [f"{prefix}incident:{u.rsplit('.', 1)[0]}" for u in after]
            wait_for(lambda: stale.exists(*made_after) == len(made_after), timeout=60,
                     what="the old master to hold every broadcast acknowledged while it was isolated")
    finally:
        for proc in procs:
            proc.stop()
    print(f"\nmaster SIGSTOPped: stop -> promoted {promoted_at - stopped_at:.2f} s, stop -> first delivery of a "
          f"broadcast made on the new master {first - stopped_at:.2f} s; {len(acked)} broadcasts acknowledged, "
          f"{stats['write_503']} 503s and {stats['write_reset']} timed-out/reset requests retried; "
          f"the isolated write got {replies!r}")
    lines = replies.split(b"\r\n")
    assert lines[0] == b"+OK" or lines[0].startswith(b"-NOREPLICAS"), replies
    if lines[0] == b"+OK":
        assert lines[1] == b":0", f"WAIT on the isolated master found no replica: not acknowledged ({replies!r})"
    new_master = redis.Redis(port=current, decode_responses=True)
    assert not new_master.exists(f"{prefix}isolated-write"), "what only the isolated master ran is gone"
    assert not stale.exists(f"{prefix}isolated-write"), "and the old master, resynced, dropped it too"
    lost = [u for u in acked if not new_master.exists(f"{prefix}incident:{u.rsplit('.', 1)[0]}")]
    assert lost == [], f"acknowledged broadcasts missing on the new master: {lost}"
    counts = Counter(receiver.keys())
    assert len(counts) == 2 * EACH and set(counts.values()) == {1}, f"each broadcast posted once: {counts}"
