"""Thin tasks: ids in, call a service, schedule the next look if the service asks for one."""

from __future__ import annotations

import threading

from celery.signals import task_received, worker_ready, worker_shutdown

from notifier.services import delivery
from workers.celery_app import app
from workers.runtime import get_app, note_received, start_heartbeat, watch_queues

_stop = threading.Event()


@app.task(name="notifier.deliver", acks_late=True, ignore_result=True)
def deliver_notice(notice_id: str, channel: str) -> str:
    notifier = get_app()
    outcome = delivery.deliver(notifier, notice_id)
    if outcome.retry_in is not None:
        notifier.dispatcher.deliver(notice_id, channel, countdown=outcome.retry_in)
    return outcome.state


@app.task(name="notifier.sweep", ignore_result=True)
def sweep_ledger() -> dict[str, int]:
    return delivery.sweep(get_app())


@app.task(name="notifier.engine.process", ignore_result=True)
def engine_process() -> int:
    from notifier.services import engine_runner as engine

    return engine.process_events(get_app())


@app.task(name="notifier.engine.tick", ignore_result=True)
def engine_tick() -> None:
    from notifier.services import engine_runner as engine

    engine.tick(get_app())


@app.task(name="notifier.statuspage.heartbeat", ignore_result=True)
def statuspage_heartbeat() -> dict[str, str]:
    from notifier.services.statuspage import republish

    return republish(get_app())


@app.task(name="notifier.probes.tick", ignore_result=True, time_limit=900)
def probes_tick(location: str) -> dict[str, int]:
    from notifier.probes.runner import run_due
    from notifier.services.ingest import accept_events

    notifier = get_app()
    report = run_due(notifier, lambda events: accept_events(notifier, events), location)
    return {"ran": len(report.ran), "locked": len(report.skipped_locked), "events": report.events}


@worker_ready.connect
def _on_ready(sender: object = None, **_: object) -> None:
    consumer = getattr(sender, "task_consumer", None)
    watch_queues([q.name for q in getattr(consumer, "queues", [])])
    note_received()
    _stop.clear()
    start_heartbeat(_stop)


@task_received.connect
def _on_received(**_: object) -> None:
    note_received()


@worker_shutdown.connect
def _on_shutdown(**_: object) -> None:
    _stop.set()
