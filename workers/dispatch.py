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
        """One publish for all of them: kombu's ``Producer.batch()`` buffers the messages and sends their
        LPUSHes in one non-transactional pipeline, so the accept path waits for one fsynced reply
        (``appendfsync always``) instead of one per notice, and every channel's worker sees its task at
        the same moment. kombu falls back to one publish per message where it cannot batch safely (a
        client that retries on timeout). If the batch fails, each notice is published on its own with
        Celery's publish retries; a notice already pushed by the failed batch then has two tasks, which
        the ledger's claim turns into one send (and the sweeper covers any still missing)."""
        if len(notices) <= 1:
            for notice_id, channel in notices:
                self.deliver(notice_id, channel)
            return
        from workers.setup import queue_for

        try:
            with self.celery.producer_or_acquire() as producer, producer.batch():
                for notice_id, channel in notices:
                    # retry=False: inside a batch a publish only buffers, the flush is what can fail
                    # (and is retried below); declare=[]: a direct queue is published to through the
                    # anonymous exchange (LPUSH to the list of that name), so declaring it on every
                    # publish (a binding SADD, cached per channel) only costs CPU
                    self.celery.send_task(DELIVER_TASK, args=[notice_id, channel], queue=queue_for(channel),
                                          producer=producer, retry=False, declare=[])
        except Exception as exc:  # noqa: BLE001 - retried one by one below; the sweeper covers the rest
            log.warning("could not enqueue %d notices in one batch (%s); publishing them one by one",
                        len(notices), exc)
            for notice_id, channel in notices:
                self.deliver(notice_id, channel)

    def backlog(self, channel: str) -> int | None:
        from workers.setup import queue_for

        try:
            with self.celery.connection_for_read() as conn:
                client = conn.default_channel.client  # kombu's Redis transport: the queue is a list
                return int(client.llen(queue_for(channel)))
        except Exception as exc:  # noqa: BLE001 - cannot tell: the sweeper does not guess
            log.warning("could not read the backlog of %s (%s)", channel, exc)
            return None

    def wake_engine(self) -> None:
        from workers.setup import ENGINE_QUEUE

        try:
            self.celery.send_task(ENGINE_TASK, queue=ENGINE_QUEUE)
        except Exception as exc:  # noqa: BLE001 - the engine also polls on its beat tick
            log.warning("could not wake the engine (%s); its beat tick will process the events", exc)
