"""Two beat schedulers against one Redis: only the lock holder sends periodic tasks."""

from __future__ import annotations

import time

import pytest

from notifier.config import parse_settings
from workers.beat import LockedScheduler
from workers.setup import PERIODIC_QUEUE, make_celery

pytestmark = pytest.mark.integration


def test_two_beats_never_double_schedule(redis_server, redis_client) -> None:
    doc = f"redis: {{url: '{redis_server.url}'}}\ndelivery: {{sweep_interval: 0.2}}\n"
    settings = parse_settings(doc, "t", {})
    app = make_celery(settings)
    first, second = LockedScheduler(app=app, lazy=False), LockedScheduler(app=app, lazy=False)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        first.tick()
        second.tick()
        time.sleep(0.05)
    sent = redis_client.llen(PERIODIC_QUEUE)
    assert first.is_leader() and not second.is_leader()
    assert 5 <= sent <= 12, f"one scheduler at 0.2 s over 2 s sends ~10, two would send ~20; got {sent}"
    first.close()  # the leader steps down; the other takes over
    assert second.is_leader()
    second.close()
