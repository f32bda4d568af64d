"""Fixtures of the engine's Redis integration tests: one redis-server a module, one wired App a test.

A test module imports both (``from tests.integration.engine_fixtures import app_fixture, redis_url_fixture``)
and its tests ask for ``app`` and ``redis_url``, the names the fixtures are registered under (so the
imports never clash with the tests' parameters). Each test gets its own key prefix; its keys are deleted
afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from notifier.bootstrap import App
from notifier.store.local_redis import LocalRedis
from tests.integration.engine_app import make_app


@pytest.fixture(scope="module", name="redis_url")
def redis_url_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = LocalRedis(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()


@pytest.fixture(name="app")
def app_fixture(redis_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[App]:
    app = make_app(redis_url, tmp_path, prefix=f"t{abs(hash(request.node.name))}:")
    yield app
    for k in app.store.redis.scan_iter(app.settings.redis.key_prefix + "*"):
        app.store.redis.delete(k)
