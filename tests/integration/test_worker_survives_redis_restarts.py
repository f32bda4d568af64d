"""Issue 10, item 6: the worker survives Redis being SIGKILLed and restarted, however often.

Real parts only: a private redis-server (AOF), a real ``celery worker`` (prefork 2, and the default
threads 32), a real HTTP receiver
for the webhook channel. Each cycle holds one send in flight at the receiver (its task running, its
message unacknowledged, the consumer's BRPOP outstanding for the second pool slot), SIGKILLs Redis,
waits until the worker has seen the connection loss, starts Redis again on the same port and data
directory, lets the held send finish and enqueues a fresh notice that must arrive; then kills and
restarts Redis once more while the worker is idle. With celery 5.7.0 +
kombu 5.7.0 and no work-around, the worker exits at the loss with ``AttributeError: 'NoneType' object
has no attribute 'hostname'`` (see ``workers/kombu_compat.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from notifier.bootstrap import App, build
from notifier.config_loader import load_settings
from notifier.domain.model import DeliveryState
from notifier.services import incidents
from notifier.store.local_redis import LocalRedis
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.support import Proc, start_worker, wait_for, write_config
from workers.dispatch import CeleryDispatcher

pytestmark = pytest.mark.integration

CYCLES = 3
LOST = "consumer: Connection to broker lost"


@pytest.fixture
def setup(tmp_path: Path, redis_server: LocalRedis, redis_client: redis.Redis, receiver: WebhookReceiver,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    monkeypatch.setenv("HOOK_SECRET", "test-secret")
    # A held send must outlive a Redis restart: room for it below the HTTP timeout and the time limits.
    config = write_config(tmp_path / "notifier.yaml", redis_server.url, {
        "hook": {"type": "webhook", "url": receiver.url, "status_url": receiver.url + "/status",
                 "secret": "${HOOK_SECRET}"},
    }, delivery={"http_timeout": 20, "task_time_limit": 25, "lease_seconds": 30})
    settings = load_settings(config)
    app = build(settings, dispatcher=CeleryDispatcher(settings), redis_url=redis_server.url)
    procs: list[Proc] = []
    yield {"config": config, "app": app, "procs": procs, "tmp": tmp_path, "client": redis_client}
    receiver.gate.set()
    for proc in procs:
        proc.stop()


def posted(app: App, update_id: str) -> bool:
    rows = app.store.ledger.rows(update_id=update_id)
    return bool(rows) and all(r.state == DeliveryState.POSTED for r in rows)


@pytest.mark.parametrize(("pool", "concurrency"), [("prefork", 2), ("threads", 32)], ids=["prefork-2", "threads-32"])
def test_worker_stays_up_across_redis_kill_and_restart_cycles(setup, redis_server: LocalRedis,
                                                               receiver: WebhookReceiver, pool: str,
                                                               concurrency: int) -> None:
    app, tmp, procs = setup["app"], setup["tmp"], setup["procs"]
    worker = start_worker(setup["config"], setup["client"], tmp / "worker.log", concurrency=concurrency, pool=pool)
    procs.append(worker)
    server, expected = redis_server, []
    for cycle in range(CYCLES):
        server = _cycle(cycle, app, worker, server, receiver, procs, expected)
    assert worker.proc.poll() is None
    assert _losses(worker) >= 2 * CYCLES, "the worker saw every Redis crash"
    assert sorted(receiver.keys()) == sorted(expected), "each notice arrived exactly once"


def _cycle(cycle: int, app: App, worker: Proc, server: LocalRedis, receiver: WebhookReceiver, procs: list,
           expected: list[str]) -> LocalRedis:
    def alive() -> bool:
        return worker.proc.poll() is None

    # 1. one send held in flight at the receiver: its task runs, its message is unacknowledged
    receiver.gate.clear()
    held = incidents.broadcast(app, body=f"held across restart {cycle}").updates[0].id
    expected.append(f"{held}:hook")
    wait_for(lambda: receiver.keys().count(f"{held}:hook"), timeout=20, what=f"cycle {cycle}: the held send")

    # 2. Redis is SIGKILLed under it and started again; then the held send finishes
    server = _kill_and_restart(server, worker, procs, f"cycle {cycle}, send in flight")
    receiver.gate.set()
    assert alive(), f"cycle {cycle}: the worker exited after the Redis crash:\n{worker.tail(30)}"
    wait_for(lambda: posted(app, held) or not alive(), timeout=25, what=f"cycle {cycle}: the held send recorded")

    # 3. work enqueued after the restart is delivered by this same worker
    fresh = incidents.broadcast(app, body=f"after restart {cycle}").updates[0].id
    expected.append(f"{fresh}:hook")
    wait_for(lambda: posted(app, fresh) or not alive(), timeout=30, what=f"cycle {cycle}: delivery after the restart")
    assert alive(), f"cycle {cycle}: the worker exited:\n{worker.tail(30)}"

    # 4. and once more while it is idle (the next cycle's sends show it consumes again)
    server = _kill_and_restart(server, worker, procs, f"cycle {cycle}, idle")
    assert alive(), f"cycle {cycle}: the idle worker exited after the Redis crash:\n{worker.tail(30)}"
    return server


def _losses(worker: Proc) -> int:
    return worker.log.read_text(errors="replace").count(LOST)


def _kill_and_restart(server: LocalRedis, worker: Proc, procs: list, what: str) -> LocalRedis:
    """SIGKILL Redis, wait until the worker has seen the loss (or died of it), start Redis again on the
    same port and AOF."""
    before = _losses(worker)
    server.kill()
    wait_for(lambda: _losses(worker) > before or worker.proc.poll() is not None, timeout=20,
             what=f"{what}: the worker noticing the Redis crash")
    server = LocalRedis(server.dir, port=server.port).start()
    procs.append(_Stopper(server))
    return server


class _Stopper:
    """Lets the fixture's teardown stop a Redis the test started (the fixture stops only its own)."""

    def __init__(self, server: LocalRedis) -> None:
        self.server = server

    def stop(self) -> None:
        self.server.stop()
