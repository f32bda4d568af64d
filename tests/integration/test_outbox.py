"""The broker message written inside the store's commit (``CeleryDispatcher.outbox``), against real
Redis servers: it is the message Celery's own ``send_task`` writes (field by field, ids aside), the
commit of a broadcast makes the ledger rows and that message in one transaction, and a broker on
another Redis gets the task published after the commit instead."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import redis

from notifier.bootstrap import build
from notifier.config_loader import parse_settings
from notifier.services import incidents
from notifier.store.local_redis import LocalRedis
from tests.integration.test_dispatch_batch import CONFIG, NOTICES  # the same three outbox channels
from workers.dispatch import DELIVER_TASK, DELIVER_UPDATE_TASK, CeleryDispatcher
from workers.setup import FANOUT_QUEUE

pytestmark = pytest.mark.integration

IDS = ("id", "root_id", "correlation_id", "delivery_tag")


def shape(raw: str) -> dict[str, Any]:
    """The message with its per-message ids blanked (checked apart) and its body decoded."""
    message = json.loads(raw)
    ids = [message["headers"]["id"], message["headers"]["root_id"], message["properties"]["correlation_id"]]
    assert len(set(ids)) == 1 and ids[0], "task id, root id and correlation id are the task's one id"
    assert message["properties"]["delivery_tag"] not in ("", ids[0])
    for part in ("headers", "properties"):
        for key in IDS:
            if key in message[part]:
                message[part][key] = "<id>"
    message["body"] = json.loads(base64.b64decode(message["body"]))
    return message


@pytest.fixture
def settings(redis_server: LocalRedis) -> Any:
    return parse_settings(CONFIG % redis_server.url, "t", env={})


@pytest.fixture
def dispatcher(settings: Any) -> CeleryDispatcher:
    return CeleryDispatcher(settings)


@pytest.mark.parametrize(("notices", "task", "queue"), [
    (NOTICES, DELIVER_UPDATE_TASK, FANOUT_QUEUE),
    (NOTICES[:1], DELIVER_TASK, "notify.x"),
])
def test_the_message_is_the_one_send_task_writes(settings, dispatcher, redis_client, notices, task, queue) -> None:
    app = build(settings, dispatcher=dispatcher, redis_client=redis_client)
    dispatcher.deliver_many(notices)  # Celery and kombu publish it
    published = redis_client.lpop(queue)
    write = dispatcher.outbox(notices, app.store)
    assert write is not None, "the store's Redis is the broker"
    assert write.key == queue
    assert shape(write.message) == shape(published)
    assert shape(write.message)["headers"]["task"] == task
    assert json.loads(write.message)["headers"]["id"] != json.loads(write.message)["properties"]["delivery_tag"]


def test_a_broadcast_commits_its_rows_and_its_task_in_one_transaction(settings, dispatcher, redis_server,
                                                                      redis_client) -> None:
    app = build(settings, dispatcher=dispatcher, redis_url=redis_server.url)
    app.store.server_id()  # connections made before MONITOR starts, so it sees the broadcast's writes only
    dispatcher.outbox(NOTICES, app.store)
    monitor = redis.Redis.from_url(redis_server.url).monitor()
    with monitor as m:
        update = incidents.broadcast(app, body="Mail is down; we are on it.").updates[-1]
        app.redis.ping()  # a marker: every command of the broadcast was seen before it
        commands = []
        for event in m.listen():
            command = event["command"]
            if command.startswith("PING"):
                break
            commands.append(command.split()[0].upper())
    queued = redis_client.lrange(FANOUT_QUEUE, 0, -1)
    assert len(queued) == 1
    assert shape(queued[0])["body"][0] == [[[f"{update.id}:{c}", c] for c in ("x", "facebook", "hook")]]
    multi, exec_ = commands.index("MULTI"), commands.index("EXEC")
    assert "LPUSH" in commands[multi:exec_], "the task is written by the commit itself"
    assert commands.count("LPUSH") == 1, f"no publish after the commit: {commands}"
    for notice_id in (f"{update.id}:{c}" for c in ("x", "facebook", "hook")):
        assert app.store.ledger.get(notice_id) is not None


def test_a_broker_on_another_redis_gets_the_task_after_the_commit(redis_server, redis_client, tmp_path: Path) -> None:
    broker = LocalRedis(tmp_path / "broker").start()
    try:
        settings = parse_settings(CONFIG % broker.url, "t", env={})
        dispatcher = CeleryDispatcher(settings)
        app = build(settings, dispatcher=dispatcher, redis_url=redis_server.url)  # the store elsewhere
        assert dispatcher.outbox(NOTICES, app.store) is None
        update = incidents.broadcast(app, body="Mail is down; we are on it.").updates[-1]
        assert redis_client.llen(FANOUT_QUEUE) == 0, "nothing the workers read was written to the store's Redis"
        with redis.Redis.from_url(broker.url) as on_broker:
            published = on_broker.lrange(FANOUT_QUEUE, 0, -1)
        assert len(published) == 1
        assert shape(published[0])["body"][0] == [[[f"{update.id}:{c}", c] for c in ("x", "facebook", "hook")]]
    finally:
        broker.stop()
