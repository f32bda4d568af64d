"""One task per update (``notifier.deliver_update``) with a real worker, a real Redis and a real HTTP
receiver: its notices are sent at the same time (a channel held in flight delays no other), and a
worker dedicated to some channels (``-Q notify.outbox``) sends only those and hands the rest to their
own queues, for the workers dedicated to them."""

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
from tests.support import Proc, start_worker, wait_for, write_config
from workers.dispatch import CeleryDispatcher
from workers.setup import FANOUT_QUEUE

pytestmark = pytest.mark.integration


@pytest.fixture
def setup(tmp_path: Path, redis_server: LocalRedis, redis_client: redis.Redis, receiver: WebhookReceiver,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    monkeypatch.setenv("HOOK_SECRET", "test-secret")
    config = write_config(tmp_path / "notifier.yaml", redis_server.url, {  # the held channel comes first
        "hook": {"type": "webhook", "url": receiver.url, "status_url": receiver.url + "/status",
                 "secret": "${HOOK_SECRET}"},
        "outbox": {"type": "outbox", "path": str(tmp_path / "outbox.jsonl")},
    })
    app = build(load_settings(config), dispatcher=CeleryDispatcher(load_settings(config)), redis_url=redis_server.url)
    procs: list[Proc] = []
    yield {"config": config, "app": app, "procs": procs, "tmp": tmp_path, "client": redis_client}
    receiver.gate.set()
    for proc in procs:
        proc.stop()


def state(app: App, notice_id: str) -> DeliveryState | None:
    row = app.store.ledger.get(notice_id)
    return row.state if row else None


def outbox_ids(path: Path) -> list[str]:
    return [json.loads(line)["notice_id"] for line in path.read_text().splitlines()] if path.exists() else []


def test_an_update_is_one_task_whose_channels_go_out_together(setup, receiver: WebhookReceiver) -> None:
    app, tmp, client = setup["app"], setup["tmp"], setup["client"]
    receiver.gate.clear()  # the webhook's POST is recorded, its answer held
    inc = incidents.open_incident(app, name="IMAP down", components=["imap"], body="Investigating.")
    update_id = inc.updates[0].id
    assert client.llen(FANOUT_QUEUE) == 1 and client.llen("notify.hook") == 0 == client.llen("notify.outbox")
    setup["procs"].append(start_worker(setup["config"], client, tmp / "worker.log", pool="threads", concurrency=1))
    # one slot, and the hook (first in the task) is in flight: the outbox goes out all the same
    wait_for(lambda: receiver.keys() == [f"{update_id}:hook"], timeout=60, what="the webhook's POST at the receiver")
    wait_for(lambda: state(app, f"{update_id}:outbox") == DeliveryState.POSTED, timeout=60,
             what="the outbox posted while the webhook is held in flight")
    assert state(app, f"{update_id}:hook") == DeliveryState.CLAIMED
    receiver.gate.set()
    wait_for(lambda: state(app, f"{update_id}:hook") == DeliveryState.POSTED, timeout=60, what="the webhook posted")
    assert receiver.keys() == [f"{update_id}:hook"] and outbox_ids(tmp / "outbox.jsonl") == [f"{update_id}:outbox"]


def test_a_dedicated_worker_sends_its_channels_and_forwards_the_others(setup, receiver: WebhookReceiver) -> None:
    app, tmp, client = setup["app"], setup["tmp"], setup["client"]
    setup["procs"].append(start_worker(setup["config"], client, tmp / "outbox-worker.log", pool="threads",
                                       queues="notify.outbox"))  # the fan-out queue is added by the worker
    inc = incidents.open_incident(app, name="IMAP down", components=["imap"], body="Investigating.")
    update_id = inc.updates[0].id
    wait_for(lambda: state(app, f"{update_id}:outbox") == DeliveryState.POSTED, timeout=60, what="the outbox posted")
    wait_for(lambda: client.llen("notify.hook") == 1, timeout=30, what="the webhook's notice on its own queue")
    assert receiver.keys() == [] and state(app, f"{update_id}:hook") == DeliveryState.PENDING
    setup["procs"].append(start_worker(setup["config"], client, tmp / "hook-worker.log", pool="threads",
                                       queues="notify.hook"))
    wait_for(lambda: state(app, f"{update_id}:hook") == DeliveryState.POSTED, timeout=60, what="the webhook posted")
    assert receiver.keys() == [f"{update_id}:hook"] and outbox_ids(tmp / "outbox.jsonl") == [f"{update_id}:outbox"]


def test_a_workers_brpop_names_each_queue_once(setup) -> None:
    """``priority_steps: [0]`` (workers/setup.py ``broker_of``): a consumer's BRPOP names each of its queues
    once, not four times (kombu's default steps add ``<queue>\\x06\\x163``, ``...6``, ``...9``)."""
    tmp, client = setup["tmp"], setup["client"]
    setup["procs"].append(start_worker(setup["config"], client, tmp / "worker.log", pool="threads"))
    watcher = redis.Redis(**{**client.connection_pool.connection_kwargs, "socket_timeout": 10})
    seen: list[str] = []
    with watcher.monitor() as monitor:
        for _ in range(500):  # the worker re-issues its BRPOP every second (kombu's brpop_timeout)
            command = monitor.next_command()["command"]
            if command.upper().startswith("BRPOP "):
                seen = command.split()[1:-1]
                break
    assert seen, "no BRPOP from the worker within 500 commands"
    keys = [k.strip('"') for k in seen]
    assert len(keys) == len(set(keys)) and all("\\x06" not in k and "\x06" not in k for k in keys), keys
    assert {"notify.hook", "notify.outbox", FANOUT_QUEUE} <= set(keys)
