from __future__ import annotations

import os
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


REAL_SERVER_FIXTURES = {"redis_server", "redis_client"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test that starts a real redis-server must say so (`-m "not integration"` is the fast path)."""
    unmarked = [item.nodeid for item in items
                if REAL_SERVER_FIXTURES & set(getattr(item, "fixturenames", ()))
                and not (item.get_closest_marker("integration") or item.get_closest_marker("e2e"))]
    if unmarked:
        raise pytest.UsageError("these tests use a real redis-server but are not marked integration or e2e "
                                "(add `pytestmark = pytest.mark.integration`): " + ", ".join(unmarked[:10]))


def _ci_skips(config: pytest.Config) -> list[pytest.TestReport]:
    if not os.environ.get("CI") or hasattr(config, "workerinput"):  # the xdist controller decides
        return []
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    return list(reporter.stats.get("skipped", [])) if reporter else []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under CI (CI=true) nothing may be skipped: a missing browser or Alertmanager makes a failed
    run, not a quieter one. `make test` installs them as root (scripts/apt-test.txt)."""
    if _ci_skips(session.config):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    skipped = _ci_skips(config)
    if skipped:
        terminalreporter.write_line(f"ci: {len(skipped)} test(s) skipped, which CI does not allow; install what "
                                    "the reasons above name (make test does it as root) and run again", red=True)
