"""The Celery implementation of the Dispatcher port (notifier/ports.py).

It sends tasks by name through a Celery app built for the given settings, so any process (CLI, API,
tests) can enqueue for any installation without importing the worker's module-level app.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from notifier.config import Settings

log = logging.getLogger(__name__)

DELIVER_TASK = "notifier.deliver"
DELIVER_UPDATE_TASK = "notifier.deliver_update"
ENGINE_TASK = "notifier.engine.process"


class CeleryDispatcher:
    def __init__(self, settings: Settings | None = None, broker_url: str | None = None) -> None:
        self._settings = settings
        self._broker_url = broker_url
        self._app: Any = None

    @property
    def celery(self) -> Any:
        if self._app is None:
            if self._settings is None:
                from workers.celery_app import app

                self._app = app
            else:
                from workers.setup import make_celery

                self._app = make_celery(self._settings, self._broker_url)
        return self._app

    def deliver(self, notice_id: str, channel: str, countdown: float = 0) -> None:
        from workers.setup import queue_for

        try:
            self.celery.send_task(DELIVER_TASK, args=[notice_id, channel], queue=queue_for(channel),
                                  countdown=countdown or None)
        except Exception as exc:  # noqa: BLE001 - the ledger row is due; the beat sweeper will enqueue it
            log.warning("could not enqueue %s (%s); the sweeper will pick it up", notice_id, exc)

    def deliver_many(self, notices: Sequence[tuple[str, str]]) -> None:
        """One task for all of them (``notifier.deliver_update`` on ``notifier.fanout``), when they are
        several: the notices of one update. The worker that takes it sends each notice on its own
        thread, independently in the ledger (its own claim, fence and record), and hands a notice of
        a channel it does not consume (``--queues notify.x``) to that channel's queue, so dedicated
        workers stay dedicated. One message instead of one per channel: one broker round trip to
        accept (one fsync under ``appendfsync always``), and on the worker one BRPOP, one unacked
        record and one Celery task set-up for the whole update, with all its channels starting at
        the same moment instead of one after another (docs/performance.md, issue 14).

        If that publish fails, each notice is published on its own with Celery's publish retries; if
        the failed publish did reach the broker, a notice then has two tasks, which the ledger's claim
        turns into one send (and the sweeper covers any still missing)."""
        if len(notices) <= 1:
            for notice_id, channel in notices:
                self.deliver(notice_id, channel)
            return
        from workers.setup import FANOUT_QUEUE

        try:
            # declare=[]: a direct queue is published to through the anonymous exchange (LPUSH to the
            # list of that name), so declaring it on every publish (a binding SADD) only costs CPU
            self.celery.send_task(DELIVER_UPDATE_TASK, args=[[list(n) for n in notices]], queue=FANOUT_QUEUE,
                                  declare=[])
        except Exception as exc:  # noqa: BLE001 - retried one by one below; the sweeper covers the rest
            log.warning("could not enqueue %d notices as one task (%s); publishing them one by one",
                        len(notices), exc)
            for notice_id, channel in notices:
                self.deliver(notice_id, channel)

    def backlog(self, channel: str) -> int | None:
        """The channel's own queue and the shared fan-out queue (where an update's notices of every
        channel wait together): a notice in either is waiting, not lost."""
        from workers.setup import FANOUT_QUEUE, queue_for

        try:
            with self.celery.connection_for_read() as conn:
                client = conn.default_channel.client  # kombu's Redis transport: the queue is a list
                with client.pipeline(transaction=False) as pipe:
                    pipe.llen(queue_for(channel))
                    pipe.llen(FANOUT_QUEUE)
                    return sum(int(n) for n in pipe.execute())
        except Exception as exc:  # noqa: BLE001 - cannot tell: the sweeper does not guess
            log.warning("could not read the backlog of %s (%s)", channel, exc)
            return None

    def wake_engine(self) -> None:
        from workers.setup import ENGINE_QUEUE

        try:
            self.celery.send_task(ENGINE_TASK, queue=ENGINE_QUEUE)
        except Exception as exc:  # noqa: BLE001 - the engine also polls on its beat tick
            log.warning("could not wake the engine (%s); its beat tick will process the events", exc)
