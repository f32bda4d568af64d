"""The Celery implementation of the Dispatcher port (notifier/ports.py).

It sends tasks by name through a Celery app built for the given settings, so any process (CLI, API,
tests) can enqueue for any installation without importing the worker's module-level app.
"""

from __future__ import annotations

import logging
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
