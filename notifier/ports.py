"""Ports the services depend on, implemented by adapters and entry points."""

from __future__ import annotations

from typing import Protocol


class Dispatcher(Protocol):
    """Hands work to the workers. The Celery implementation lives in ``workers/dispatch.py``.

    Every call may be repeated or lost without harm: the ledger in Redis is the truth, and the beat
    sweeper re-enqueues whatever is due and not being worked on.
    """

    def deliver(self, notice_id: str, channel: str, countdown: float = 0) -> None:
        """Queue one notice on its channel's own queue."""

    def backlog(self, channel: str) -> int | None:
        """Tasks waiting in the channel's queue (None: cannot tell). The sweeper re-enqueues a row only
        when this is 0: with tasks still waiting, a late task is not yet a lost one."""

    def wake_engine(self) -> None:
        """Ask the incident engine to process newly accepted alert events."""


class NullDispatcher:
    """Enqueues nothing: for dry runs, and for tests that drive services directly."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, float]] = []
        self.wakeups = 0

    def deliver(self, notice_id: str, channel: str, countdown: float = 0) -> None:
        self.sent.append((notice_id, channel, countdown))

    def backlog(self, channel: str) -> int | None:
        return 0  # tests that drive services play the worker themselves; nothing waits in a broker

    def wake_engine(self) -> None:
        self.wakeups += 1
