"""``CeleryDispatcher.deliver_many`` against a real Redis broker: an update's notices become one
``notifier.deliver_update`` task on the fan-out queue; when that publish fails, each notice is still
published on its own channel's queue (one by one). ``backlog`` counts both queues."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import redis
from kombu import Producer

from notifier.config_loader import parse_settings
from workers.dispatch import DELIVER_TASK, DELIVER_UPDATE_TASK, CeleryDispatcher
from workers.setup import FANOUT_QUEUE

pytestmark = pytest.mark.integration

CONFIG = """
redis: {url: "%s"}
channels:
  x: {type: outbox, path: /nonexistent/x.jsonl}
  facebook: {type: outbox, path: /nonexistent/fb.jsonl}
  hook: {type: outbox, path: /nonexistent/hook.jsonl}
"""
NOTICES = [("brd1.1:x", "x"), ("brd1.1:facebook", "facebook"), ("brd1.1:hook", "hook")]


def queued(client: redis.Redis, channel: str, queue: str | None = None) -> list[tuple[str, list[Any]]]:
    """(task name, args) of each message on the channel's queue (or on ``queue``)."""
    out = []
    for raw in client.lrange(queue or f"notify.{channel}", 0, -1):
        message = json.loads(raw)
        args = json.loads(base64.b64decode(message["body"]))[0]
        out.append((message["headers"]["task"], args))
    return out


@pytest.fixture
def dispatcher(redis_server: Any) -> CeleryDispatcher:
    return CeleryDispatcher(parse_settings(CONFIG % redis_server.url, "t", env={}))


def test_an_updates_notices_are_one_task_on_the_fanout_queue(dispatcher, redis_client) -> None:
    dispatcher.deliver_many(NOTICES)
    assert queued(redis_client, "", FANOUT_QUEUE) == [(DELIVER_UPDATE_TASK, [[list(n) for n in NOTICES]])]
    for _notice_id, channel in NOTICES:
        assert redis_client.llen(f"notify.{channel}") == 0
        assert dispatcher.backlog(channel) == 1, "a notice waiting in the fan-out queue is not lost"


def test_a_failed_publish_is_repeated_one_notice_at_a_time(dispatcher, redis_client, monkeypatch) -> None:
    publish = Producer.publish

    def broken_for_fanout(self: Any, body: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("routing_key") == FANOUT_QUEUE:
            raise redis.ConnectionError("the broker went away mid-publish")
        return publish(self, body, *args, **kwargs)

    monkeypatch.setattr(Producer, "publish", broken_for_fanout)
    dispatcher.deliver_many(NOTICES)
    assert redis_client.llen(FANOUT_QUEUE) == 0
    for notice_id, channel in NOTICES:
        assert queued(redis_client, channel) == [(DELIVER_TASK, [notice_id, channel])]


def test_one_notice_and_none(dispatcher, redis_client) -> None:
    dispatcher.deliver_many([])
    dispatcher.deliver_many(NOTICES[:1])
    assert queued(redis_client, "x") == [(DELIVER_TASK, ["brd1.1:x", "x"])]
    assert redis_client.llen("notify.facebook") == 0
