"""Two beat schedulers against one Redis: only the lock holder sends periodic tasks.

The schedule runs on a fake clock (Celery's schedules read ``app.now``), so the test counts what each
scheduler sent at each step, not how many sends fit into some seconds of wall time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from notifier.config_loader import parse_settings
from workers.beat import LockedScheduler
from workers.setup import PERIODIC_QUEUE, make_celery

pytestmark = pytest.mark.integration


class StepClock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def run_due(scheduler: LockedScheduler) -> None:
    """Tick until nothing more is due at this instant (tick returns 0 right after it sent one)."""
    for _ in range(50):
        if scheduler.tick() != 0:
            return
    raise AssertionError("the scheduler kept finding due entries at one instant")


def test_two_beats_never_double_schedule(redis_server, redis_client) -> None:
    doc = f"redis: {{url: '{redis_server.url}'}}\ndelivery: {{sweep_interval: 0.2}}\n"
    settings = parse_settings(doc, "t", {})
    app = make_celery(settings)
    clock = StepClock()
    app.now = clock  # every schedule's notion of now
    first, second = LockedScheduler(app=app, lazy=False), LockedScheduler(app=app, lazy=False)
    assert first.is_leader() and not second.is_leader()

    steps = 10
    for step in range(steps):
        clock.advance(0.25)  # past the 0.2 s sweep interval: the sweep is due at every step
        before = redis_client.llen(PERIODIC_QUEUE)
        run_due(second)
        assert redis_client.llen(PERIODIC_QUEUE) == before, f"the follower scheduled at step {step}"
        run_due(first)
        assert redis_client.llen(PERIODIC_QUEUE) > before, f"the leader scheduled nothing at step {step}"
    entries = len(first.schedule)
    # once per step for the sweep, plus at most one first run of each other entry: never twice over
    assert redis_client.llen(PERIODIC_QUEUE) <= steps + entries

    first.close()  # the leader steps down; the other takes over at once
    clock.advance(0.25)
    before = redis_client.llen(PERIODIC_QUEUE)
    run_due(second)
    assert second.is_leader() and redis_client.llen(PERIODIC_QUEUE) > before
    second.close()
