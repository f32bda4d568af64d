"""Issue 17: the failures of the three-host layout that must cost nothing (test_sentinel_failover.py has
those that cost seconds). A master, two replicas and three Sentinels on loopback (tests/fakes/sentinel.py),
``redis.min_replicas: 1``, a real worker and beat on the ``sentinel://`` broker, the API under uvicorn,
a real HTTP receiver. A Sentinel SIGKILLed, then a replica partitioned away (SIGSTOP: still there, but
silent): every staff write is acknowledged at the first try and delivered once."""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from notifier.api import create_app
from notifier.bootstrap import build
from notifier.config_loader import load_settings
from notifier.store.redis_store import connect
from tests.fakes.sentinel import SentinelCluster, sentinel_cluster
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.integration._api_support import ApiServer
from tests.integration._sentinel_support import SENTINEL_PASSWORD, broadcast, sentinel_config, set_secrets
from tests.support import Proc, start_beat, start_worker, wait_for
from workers.dispatch import CeleryDispatcher

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
