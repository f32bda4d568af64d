"""The chaos suite's set-up, shared by its tests: the credentials and channel settings of the fake X and
Graph servers, and a running world (a config file, the app built from it on the test's Redis, and the
processes the test starts, stopped at the end)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis

from notifier.bootstrap import build
from notifier.config_loader import load_settings
from notifier.store.local_redis import LocalRedis
from tests.fakes.graph_api import PAGE_ID, TOKEN, FakeGraphApi
from tests.fakes.x_api import FakeXApi
from tests.support import Proc, write_config
from workers.dispatch import CeleryDispatcher

ENV = {"X_CONSUMER_KEY": "consumer-key-1", "X_CONSUMER_SECRET": "cs", "X_ACCESS_TOKEN": "access-token-1",
       "X_ACCESS_SECRET": "as", "FB_PAGE_TOKEN": TOKEN}


def x_channel(fx: FakeXApi, **options: Any) -> dict[str, Any]:
    """An X channel on the fake, its OAuth 1.0a credentials from ``ENV``."""
    return {"type": "x", "api_base_url": fx.url, "consumer_key": "${X_CONSUMER_KEY}",
            "consumer_secret": "${X_CONSUMER_SECRET}", "access_token": "${X_ACCESS_TOKEN}",
            "access_token_secret": "${X_ACCESS_SECRET}", **options}


def facebook_channel(fg: FakeGraphApi) -> dict[str, Any]:
    """A Facebook Page channel on the fake Graph API, its page token from ``ENV``."""
    return {"type": "facebook", "graph_url": fg.url, "page_id": PAGE_ID, "page_token": "${FB_PAGE_TOKEN}"}


@contextmanager
def running(tmp_path: Path, redis_server: LocalRedis, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch,
            channels: dict[str, Any], sections: dict[str, Any] | None = None, **fakes: Any) -> Iterator[dict]:
    """The world a chaos test drives: ``config``, ``app``, ``procs`` (stopped on the way out), ``tmp``,
    ``client`` and the ``fakes`` by name."""
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    config = write_config(tmp_path / "notifier.yaml", redis_server.url, channels, **(sections or {}))
    settings = load_settings(config)
    app = build(settings, dispatcher=CeleryDispatcher(settings), redis_url=redis_server.url)
    procs: list[Proc] = []
    try:
        yield {"config": config, "app": app, "procs": procs, "tmp": tmp_path, "client": redis_client, **fakes}
    finally:
        for proc in procs:
            proc.stop()
