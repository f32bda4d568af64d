"""``CeleryDispatcher.deliver_many`` against a real Redis broker: every notice's task lands on its own
channel's queue, as the task message ``deliver`` publishes, in one pipeline; when that pipeline fails,
each notice is still published (one by one)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import redis
from kombu.transport import redis as kombu_redis

from notifier.config_loader import parse_settings
from workers.dispatch import DELIVER_TASK, CeleryDispatcher

pytestmark = pytest.mark.integration

CONFIG = """
redis: {url: "%s"}
channels:
  x: {type: outbox, path: /nonexistent/x.jsonl}
  facebook: {type: outbox, path: /nonexistent/fb.jsonl}
  hook: {type: outbox, path: /nonexistent/hook.jsonl}
"""
NOTICES = [("brd1.1:x", "x"), ("brd1.1:facebook", "facebook"), ("brd1.1:hook", "hook")]


def queued(client: redis.Redis, channel: str) -> list[tuple[str, list[Any]]]:
    """(task name, args) of each message on the channel's queue."""
    out = []
    for raw in client.lrange(f"notify.{channel}", 0, -1):
        message = json.loads(raw)
        args = json.loads(base64.b64decode(message["body"]))[0]
        out.append((message["headers"]["task"], args))
    return out


@pytest.fixture
def dispatcher(redis_server: Any) -> CeleryDispatcher:
    return CeleryDispatcher(parse_settings(CONFIG % redis_server.url, "t", env={}))


def test_each_notice_lands_on_its_channel_queue_in_one_pipeline(dispatcher, redis_client, monkeypatch) -> None:
    flushed: list[int] = []
    flush = kombu_redis.PublishBatch.flush

    def counting(self: Any) -> None:
        flushed.append(self._buffered)
        flush(self)

    monkeypatch.setattr(kombu_redis.PublishBatch, "flush", counting)
    dispatcher.deliver_many(NOTICES)
    for notice_id, channel in NOTICES:
        assert queued(redis_client, channel) == [(DELIVER_TASK, [notice_id, channel])]
    assert flushed == [3], "the three LPUSHes did not go out as one pipeline"


def test_a_failed_batch_is_published_one_by_one(dispatcher, redis_client, monkeypatch) -> None:
    def broken(self: Any) -> None:
        raise redis.ConnectionError("the broker went away mid-pipeline")

    monkeypatch.setattr(kombu_redis.PublishBatch, "flush", broken)
    dispatcher.deliver_many(NOTICES)
    for notice_id, channel in NOTICES:
        assert queued(redis_client, channel) == [(DELIVER_TASK, [notice_id, channel])]


def test_one_notice_and_none(dispatcher, redis_client) -> None:
    dispatcher.deliver_many([])
    dispatcher.deliver_many(NOTICES[:1])
    assert queued(redis_client, "x") == [(DELIVER_TASK, ["brd1.1:x", "x"])]
    assert redis_client.llen("notify.facebook") == 0
