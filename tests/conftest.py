from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from notifier.store.local_redis import LocalRedis
from tests.fakes.webhook_receiver import WebhookReceiver


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[LocalRedis]:
    """A private redis-server on a free port, AOF with fsync always, killable and restartable."""
    server = LocalRedis(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server: LocalRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=b"test-secret") as rec:
        yield rec
