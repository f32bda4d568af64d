"""Issue 2's guarantees with real parts: a real redis-server (AOF), real celery worker and beat
processes, and a real HTTP receiver for the webhook channel. Nothing of ours is mocked."""

from __future__ import annotations

import json
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
from tests.support import Proc, start_beat, start_worker, wait_for, write_config
from workers.dispatch import CeleryDispatcher
from workers.setup import FANOUT_QUEUE

pytestmark = pytest.mark.integration


@pytest.fixture
def setup(tmp_path: Path, redis_server: LocalRedis, redis_client: redis.Redis, receiver: WebhookReceiver,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    monkeypatch.setenv("HOOK_SECRET", "test-secret")
    config = write_config(tmp_path / "notifier.yaml", redis_server.url, {
        "outbox": {"type": "outbox", "path": str(tmp_path / "outbox.jsonl")},
        "hook": {"type": "webhook", "url": receiver.url, "status_url": receiver.url + "/status",
                 "secret": "${HOOK_SECRET}"},
    })
    settings = load_settings(config)
    app = build(settings, dispatcher=CeleryDispatcher(settings), redis_url=redis_server.url)
    procs: list[Proc] = []
    yield {"config": config, "app": app, "procs": procs, "tmp": tmp_path, "client": redis_client}
    for proc in procs:
        proc.stop()


def all_settled(app: App, update_ids: list[str]) -> bool:
    rows = [r for u in update_ids for r in app.store.ledger.rows(update_id=u)]
    return bool(rows) and all(r.state == DeliveryState.POSTED for r in rows)


def outbox_ids(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [json.loads(line)["notice_id"] for line in path.read_text().splitlines() if line.strip()]


def open_and_update(app: App) -> list[str]:
    inc = incidents.open_incident(app, name="IMAP down", components={"imap": "major_outage"},
                                  body={"en": "We are investigating.", "de": "Wir untersuchen."})
    upd = incidents.update_incident(app, inc.id, status="identified", body="A storage node failed.")
    res = incidents.resolve_incident(app, inc.id, body="All good again.")
    return [inc.updates[0].id, upd.id, res.id]


def test_each_update_posted_exactly_once_on_every_channel(setup, receiver: WebhookReceiver) -> None:
    app, tmp = setup["app"], setup["tmp"]
    setup["procs"].append(start_worker(setup["config"], setup["client"], tmp / "worker.log"))
    update_ids = open_and_update(app)
    wait_for(lambda: all_settled(app, update_ids), what="every notice posted")
    expected = sorted(f"{u}:hook" for u in update_ids)
    assert sorted(receiver.keys()) == expected
    assert sorted(outbox_ids(tmp / "outbox.jsonl")) == sorted(f"{u}:outbox" for u in update_ids)
    bodies = [r["body"] for r in receiver.received]
    assert {b["marker"] for b in bodies} == {"#INC1·1", "#INC1·2", "#INC1·3"}
    assert app.store.component_status("imap").value == "operational"
    history = [c.status.value for c in app.store.component_history("imap")]
    assert history == ["major_outage", "operational"]


@pytest.mark.parametrize("point", ["before_claim", "after_claim", "after_send"])
def test_worker_killed_at_each_point_posts_exactly_once(setup, receiver: WebhookReceiver, point: str) -> None:
    """SIGKILL the worker's whole process group while it is frozen at ``point``; a fresh worker and
    beat finish the job. Every notice ends posted, and the receiver and outbox saw each exactly once."""
    app, tmp, client = setup["app"], setup["tmp"], setup["client"]
    marks = tmp / "failpoints"
    marks.mkdir()
    doomed = start_worker(setup["config"], client, tmp / "doomed.log", concurrency=2,
                          extra_env={"NOTIFIER_FAILPOINT": point, "NOTIFIER_FAILPOINT_DIR": str(marks)})
    inc = incidents.open_incident(app, name="Mail delayed", components=["smtp"], body="Investigating.")
    update_id = inc.updates[0].id
    try:  # the worker starts in a few seconds on an idle machine; the deadline is for a loaded one
        wait_for(lambda: len(list(marks.iterdir())) >= 2, timeout=120, what=f"both notices frozen at {point}")
    except AssertionError as exc:
        log = (tmp / "doomed.log").read_text(errors="replace")[-3000:] if (tmp / "doomed.log").exists() else ""
        raise AssertionError(f"{exc}; frozen: {sorted(p.name for p in marks.iterdir())}; worker log: {log}") from None
    doomed.kill()
    rows = {r.channel: r for r in app.store.ledger.rows(update_id=update_id)}
    if point == "after_send":
        assert receiver.keys() == [f"{update_id}:hook"], "the receiver had it before the crash"
        assert all(r.sending_at for r in rows.values())
    else:
        assert receiver.keys() == []
    setup["procs"].append(start_worker(setup["config"], client, tmp / "worker.log"))
    setup["procs"].append(start_beat(setup["config"], tmp / "beat.log", tmp))
    try:  # about 6 s on an idle machine; the deadline is for a loaded one
        wait_for(lambda: all_settled(app, [update_id]), timeout=120, what="recovery after the kill")
    except AssertionError as exc:
        rows = [(r.channel, r.state.value, r.attempt, r.last_error) for r in app.store.ledger.rows(update_id=update_id)]
        logs = {name: (tmp / name).read_text(errors="replace")[-3000:] for name in ("worker.log", "beat.log")
                if (tmp / name).exists()}
        raise AssertionError(f"{exc}; rows: {rows}; logs: {logs}") from None
    assert receiver.keys() == [f"{update_id}:hook"]
    assert outbox_ids(tmp / "outbox.jsonl") == [f"{update_id}:outbox"]
    if point != "before_claim":
        assert all(r.attempt >= 2 for r in app.store.ledger.rows(update_id=update_id))


def test_redis_killed_and_restarted_between_enqueue_and_delivery(setup, redis_server: LocalRedis,
                                                                  receiver: WebhookReceiver) -> None:
    app, tmp = setup["app"], setup["tmp"]
    update_ids = open_and_update(app)  # accepted and queued; no worker yet
    redis_server.kill()  # SIGKILL: no clean shutdown, only the AOF survives
    redis_server.start()
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    assert client.llen(FANOUT_QUEUE) == 3, "the queued tasks (one per update) survived the crash"
    setup["procs"].append(start_worker(setup["config"], client, tmp / "worker.log"))
    setup["procs"].append(start_beat(setup["config"], tmp / "beat.log", tmp))
    fresh = build(load_settings(setup["config"]), redis_url=redis_server.url)
    wait_for(lambda: all_settled(fresh, update_ids), what="delivery after the Redis restart")
    assert sorted(receiver.keys()) == sorted(f"{u}:hook" for u in update_ids)
    assert len(outbox_ids(tmp / "outbox.jsonl")) == 3


def test_a_failing_channel_does_not_delay_the_others(setup, receiver: WebhookReceiver) -> None:
    app, tmp = setup["app"], setup["tmp"]
    receiver.failing = True  # 503 with Retry-After: 1
    setup["procs"].append(start_worker(setup["config"], setup["client"], tmp / "worker.log"))
    setup["procs"].append(start_beat(setup["config"], tmp / "beat.log", tmp))
    update_ids = open_and_update(app)
    outbox_rows = lambda: [r for u in update_ids for r in app.store.ledger.rows(update_id=u, channel="outbox")]  # noqa: E731
    wait_for(lambda: all(r.state == DeliveryState.POSTED for r in outbox_rows()), what="outbox while hook fails")
    wait_for(lambda: receiver.attempts >= 4, what="the webhook being retried")
    hook_rows = [r for u in update_ids for r in app.store.ledger.rows(update_id=u, channel="hook")]
    assert all(r.state != DeliveryState.POSTED for r in hook_rows), "nothing can be posted while it fails"
    assert any("503" in r.last_error for r in hook_rows)
    receiver.failing = False
    wait_for(lambda: all_settled(app, update_ids), what="the webhook catching up after recovery")
    assert sorted(receiver.keys()) == sorted(f"{u}:hook" for u in update_ids)


def test_running_worker_reconnects_after_redis_restart(setup, redis_server: LocalRedis,
                                                       receiver: WebhookReceiver) -> None:
    """Delivery resumes after Redis is SIGKILLed and restarted under a running worker and beat.

    The worker should simply reconnect; if it wedges instead (a Celery/kombu bug seen across releases),
    its watchdog exits and this test, acting as the supervisor, starts a new one, as `notifier run`,
    compose and systemd do. Either way nothing is lost or posted twice."""
    app, tmp, config = setup["app"], setup["tmp"], setup["config"]
    stall = {"NOTIFIER_STALL_SECONDS": "6"}
    worker = start_worker(config, setup["client"], tmp / "worker.log", extra_env=stall)
    setup["procs"] += [worker, start_beat(config, tmp / "beat.log", tmp)]
    first = open_and_update(app)
    wait_for(lambda: all_settled(app, first), what="delivery before the restart")
    redis_server.kill()
    redis_server.start()
    settings = load_settings(config)
    fresh = build(settings, dispatcher=CeleryDispatcher(settings), redis_url=redis_server.url)
    second = open_and_update(fresh)
    restarts = []

    def delivered_or_supervise() -> bool:
        current = [p for p in setup["procs"] if p.log.name.startswith("worker")][-1]
        if current.proc.poll() is not None:  # the watchdog gave up on a wedged consumer
            restarts.append(current.tail(5))
            setup["procs"].append(start_worker(config, fresh.store.redis, tmp / f"worker{len(restarts)}.log",
                                               extra_env=stall))
        return all_settled(fresh, second)

    wait_for(delivered_or_supervise, timeout=90, interval=0.2, what="delivery after the Redis restart")
    assert sorted(receiver.keys()) == sorted(f"{u}:hook" for u in first + second)
    if restarts:
        print(f"worker was restarted by its watchdog {len(restarts)} time(s):\n" + "\n".join(restarts))


def test_watchdog_replaces_a_worker_that_stopped_consuming(setup, receiver: WebhookReceiver) -> None:
    """Stand-in for the reconnect bug: the worker stays up but stops consuming one of its queues
    (remote-control cancel_consumer). Its watchdog must notice and exit; a fresh worker delivers."""
    app, tmp, config = setup["app"], setup["tmp"], setup["config"]
    worker = start_worker(config, setup["client"], tmp / "worker.log",
                          extra_env={"NOTIFIER_STALL_SECONDS": "3"})
    setup["procs"].append(worker)
    for queue in ("notify.hook", FANOUT_QUEUE):  # an update's notices of every channel wait in the latter
        answer = app.dispatcher.celery.control.cancel_consumer(queue, destination=[worker.node], reply=True,
                                                               timeout=10)
        assert answer, f"the worker acknowledged the cancel of {queue}"
    update_ids = open_and_update(app)
    wait_for(lambda: worker.proc.poll() is not None, timeout=40, what="the watchdog to stop the wedged worker")
    assert "consumer stalled: 3 message(s) wait in" in worker.log.read_text()
    setup["procs"].append(start_worker(config, setup["client"], tmp / "worker2.log"))
    wait_for(lambda: all_settled(app, update_ids), what="the replacement worker delivering")
    assert sorted(receiver.keys()) == sorted(f"{u}:hook" for u in update_ids)
