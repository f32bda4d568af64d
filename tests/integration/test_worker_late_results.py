"""Issue 10: the worker's main process stalls while its pool processes finish their tasks, and comes back.

A stall of the main process is what a blocking broker reconnect does (kombu retries the connection in the
main process's event loop, for seconds while Redis restarts), and what a stopped VM or a swap storm does.
Here the stall is real: the worker's main process is SIGSTOPped for ``STALL`` seconds while both pool
processes have a send in flight at a real webhook receiver; the sends finish during the stall (the
children mark their rows posted in Redis and write their results into the pool's pipe, unread), and one
more notice is enqueued meanwhile. Then SIGCONT.

With a Celery soft time limit shorter than the stall (what ``workers/setup.py`` set before commit dcae79d:
``task_time_limit - 5`` s), the soft-limit timers of the finished tasks fire on resume, before their
results are read, and SIGUSR1 pool processes that are idle by then (celery#2952): the main process reads a
broken frame from the pool and the worker exits, leaving notices pending. Asserted: the worker stays up
through every stall with the same pool processes, and every notice arrives at the receiver exactly
once and its row is posted.
"""

from __future__ import annotations

import os
import signal
import time
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
from tests.support import start_worker, wait_for, write_config
from workers.dispatch import CeleryDispatcher

pytestmark = pytest.mark.integration

CYCLES = 2
POOL = 2  # pool processes, each holding one send during a stall
TIME_LIMIT = 10.0  # delivery.task_time_limit; the old soft limit was 5 s below it
STALL = 7.0  # past that old soft limit (5 s), short of the hard limit (10 s)


@pytest.fixture
def setup(tmp_path: Path, redis_server: LocalRedis, redis_client: redis.Redis, receiver: WebhookReceiver,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    monkeypatch.setenv("HOOK_SECRET", "test-secret")
    config = write_config(tmp_path / "notifier.yaml", redis_server.url, {
        "hook": {"type": "webhook", "url": receiver.url, "status_url": receiver.url + "/status",
                 "secret": "${HOOK_SECRET}"},
    }, delivery={"http_timeout": 2, "task_time_limit": TIME_LIMIT, "lease_seconds": 30})
    settings = load_settings(config)
    app = build(settings, dispatcher=CeleryDispatcher(settings), redis_url=redis_server.url)
    worker = start_worker(config, redis_client, tmp_path / "worker.log", concurrency=POOL)
    servers: list[LocalRedis] = []  # the ones the test started (the fixture stops its own)
    yield {"app": app, "worker": worker, "server": redis_server, "servers": servers}
    receiver.gate.set()
    if worker.proc.poll() is None:
        os.kill(worker.proc.pid, signal.SIGCONT)  # never leave a stopped worker behind a failed test
    worker.stop()
    for server in servers:
        server.stop()


def posted(app: App, update_ids: list[str]) -> bool:
    rows = [r for u in update_ids for r in app.store.ledger.rows(update_id=u)]
    return len(rows) == len(update_ids) and all(r.state == DeliveryState.POSTED for r in rows)


def pool_processes(main_pid: int) -> set[int]:
    """The live (not zombie) children of the worker's main process, read from /proc."""
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone while we looked
        if int(fields[1]) == main_pid and fields[0] != "Z":
            out.add(int(stat.parent.name))
    return out


def test_a_stalled_worker_stays_up_and_settles_every_notice_once(setup, receiver: WebhookReceiver) -> None:
    app, worker = setup["app"], setup["worker"]
    expected: list[str] = []
    for cycle in range(CYCLES):
        expected += _stall(setup, receiver, f"cycle {cycle}")

    # the same worker still delivers, and nothing arrived twice
    fresh = incidents.broadcast(app, body="after the stalls").updates[0].id
    expected.append(f"{fresh}:hook")
    wait_for(lambda: posted(app, [fresh]) or worker.proc.poll() is not None, timeout=60,
             what="a delivery after the stalls")
    assert worker.proc.poll() is None, f"the worker exited:\n{worker.tail(30)}"
    assert sorted(receiver.keys()) == sorted(expected), "each notice arrived exactly once"
    assert all(r.state == DeliveryState.POSTED for r in app.store.ledger.rows()), "every row settled"


def _stall(setup: dict, receiver: WebhookReceiver, what: str) -> list[str]:
    """One stall of the worker's main process (Redis restarted under it); returns the notices' keys."""
    app, worker = setup["app"], setup["worker"]

    def alive() -> bool:
        return worker.proc.poll() is None

    # 1. both pool processes hold a send at the receiver: their tasks run, their results are not in yet
    receiver.gate.clear()
    held = [incidents.broadcast(app, body=f"held {what}.{n}").updates[0].id for n in range(POOL)]
    wait_for(lambda: all(f"{u}:hook" in receiver.keys() for u in held), timeout=30,  # noqa: SIM118 - a list
             what=f"{what}: both sends in flight")
    pool = pool_processes(worker.proc.pid)
    assert len(pool) == POOL, pool

    # 2. the main process stalls; the sends finish under it and more notices are enqueued
    os.kill(worker.proc.pid, signal.SIGSTOP)
    stalled = time.monotonic()
    try:
        # Redis restarts under the stall: the main process's broker connection is dead when it resumes
        setup["server"].kill()
        setup["server"] = LocalRedis(setup["server"].dir, port=setup["server"].port).start()
        setup["servers"].append(setup["server"])
        receiver.gate.set()
        wait_for(lambda: posted(app, held), timeout=20, what=f"{what}: the held sends recorded")
        late = [incidents.broadcast(app, body=f"during the stall {what}.{n}").updates[0].id
                for n in range(2 * POOL)]
        # the stall is the fault injected: it must outlast the old soft limit, not stand in for an event
        time.sleep(max(0.0, STALL - (time.monotonic() - stalled)))
    finally:
        os.kill(worker.proc.pid, signal.SIGCONT)

    # 3. the worker resumes, reads the finished results and takes the notices that waited, with the same
    # pool processes: none was interrupted by the time limit of a task that had already finished
    wait_for(lambda: posted(app, late) or not alive(), timeout=60,
             what=f"{what}: the notices enqueued during the stall posted")
    assert alive(), f"{what}: the worker exited after its stall:\n{worker.tail(30)}"
    assert pool_processes(worker.proc.pid) == pool, f"{what}: a pool process died after the stall:\n{worker.tail(30)}"
    return [f"{u}:hook" for u in held + late]
