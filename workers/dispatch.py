"""The Celery implementation of the Dispatcher port (notifier/ports.py)."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class CeleryDispatcher:
    def deliver(self, notice_id: str, channel: str, countdown: float = 0) -> None:
        from workers.celery_app import queue_for
        from workers.tasks import deliver_notice

        try:
            deliver_notice.apply_async(
                args=[notice_id, channel], queue=queue_for(channel), countdown=countdown or None
            )
        except Exception as exc:  # noqa: BLE001 - the ledger row is due; the beat sweeper will enqueue it
            log.warning("could not enqueue %s (%s); the sweeper will pick it up", notice_id, exc)

    def wake_engine(self) -> None:
        from workers.celery_app import ENGINE_QUEUE, app

        if "notifier.engine.process" not in app.tasks:
            return
        try:
            app.tasks["notifier.engine.process"].apply_async(queue=ENGINE_QUEUE)
        except Exception as exc:  # noqa: BLE001 - the engine also polls on its beat tick
            log.warning("could not wake the engine (%s); its beat tick will process the events", exc)
