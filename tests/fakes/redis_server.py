"""A private redis-server on a free port with AOF, for tests that need the real thing."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from notifier.store.local_redis import LocalRedis, free_port

__all__ = ["free_port", "redis_server"]


@contextlib.contextmanager
def redis_server(data_dir: Path) -> Iterator[str]:
    """Start redis-server (the same LocalRedis the service and the other tests use), yield its URL."""
    server = LocalRedis(data_dir).start()
    try:
        yield server.url
    finally:
        server.stop()
