"""Thin tasks: ids in, call a service, schedule the next look if the service asks for one."""

from __future__ import annotations

import threading
from concurrent.futures import Future

from celery.signals import task_received, worker_init, worker_ready, worker_shutdown

from notifier.domain.model import Incident
from notifier.services import delivery
from notifier.store.ledger import LedgerRow
from workers.celery_app import app
from workers.runtime import (
    consumes,
    fanout_executor,
    get_app,
    note_received,
    set_concurrency,
    start_heartbeat,
    watch_queues,
)
from workers.setup import queue_for, with_fanout

_stop = threading.Event()


@app.task(name="notifier.deliver", acks_late=True, ignore_result=True)
def deliver_notice(notice_id: str, channel: str) -> str:
    return _deliver_one(notice_id, channel)


@app.task(name="notifier.deliver_update", acks_late=True, ignore_result=True)
def deliver_update(notices: list[list[str]]) -> list[str]:
    """All the notices of one update (``CeleryDispatcher.deliver_many``), each sent as
    ``deliver_notice`` sends one: its own ``delivery.deliver`` (claim, fence, send, record), its own
    countdown task when it has to come back. They run at the same time, the first on this thread and
    the others on the worker's fan-out threads, so a slow channel delays no other; the task ends (and
    its message is acknowledged) when all of them did, so a worker killed mid-way leaves the message to
    be delivered again and the ledger stops anything from going out twice. A notice of a channel this
    worker does not consume goes to that channel's queue, for the workers dedicated to it."""
    notifier = get_app()
    mine: list[tuple[str, str]] = []
    for nid, channel in notices:
        if consumes(queue_for(channel)):
            mine.append((nid, channel))
        else:
            notifier.dispatcher.deliver(nid, channel)
    if not mine:
        return []
    reads = delivery.read_many(notifier, [nid for nid, _ in mine])  # one round trip for the update
    futures: list[Future[str]] = [fanout_executor().submit(_deliver_one, nid, channel, read)
                                  for (nid, channel), read in zip(mine[1:], reads[1:], strict=True)]
    states: list[str] = []
    error: BaseException | None = None
    try:
        states.append(_deliver_one(*mine[0], reads[0]))
    except Exception as exc:  # noqa: BLE001 - the others still go; raised below once they did
        error = exc
    for future in futures:
        try:
            states.append(future.result())
        except Exception as exc:  # noqa: BLE001
            error = error or exc
    if error is not None:  # as deliver_notice would: logged by Celery, the row is due for the sweeper
        raise error
    return states


def _deliver_one(notice_id: str, channel: str, read: tuple[LedgerRow | None, Incident | None] | None = None) -> str:
    notifier = get_app()
    outcome = delivery.deliver(notifier, notice_id, read)
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


@worker_init.connect
def _on_init(sender: object = None, **_: object) -> None:
    """Before the consumer starts: a worker of any channel queue consumes the fan-out queue too (see
    ``workers.setup.with_fanout``), and the fan-out threads are sized by the worker's concurrency."""
    amqp = getattr(getattr(sender, "app", None), "amqp", None)
    if amqp is not None:
        names = list(amqp.queues.consume_from or {})
        for name in with_fanout(names)[len(names):]:
            amqp.queues.select_add(name)
    set_concurrency(getattr(sender, "concurrency", None))


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
