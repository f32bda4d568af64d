"""The Celery implementation of the Dispatcher port (notifier/ports.py).

It sends tasks by name through a Celery app built for the given settings, so any process (CLI, API,
tests) can enqueue for any installation without importing the worker's module-level app.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import Sequence
from typing import Any

from notifier.config import Settings
from notifier.ports import BrokerWrite, IncidentStore

log = logging.getLogger(__name__)

DELIVER_TASK = "notifier.deliver"
DELIVER_UPDATE_TASK = "notifier.deliver_update"
ENGINE_TASK = "notifier.engine.process"


class CeleryDispatcher:
    def __init__(self, settings: Settings | None = None, broker_url: str | None = None) -> None:
        self._settings = settings
        self._broker_url = broker_url
        self._app: Any = None
        self._same_server: dict[int, tuple[IncidentStore, bool]] = {}  # id(store) -> (store, its Redis is the broker)

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

    def outbox(self, notices: Sequence[tuple[str, str]], store: IncidentStore) -> BrokerWrite | None:
        """The message ``deliver_many`` would publish (``deliver``'s for a single notice), for the store to
        ``LPUSH`` in its own commit, when the store's Redis is the broker (the shipped setup: one
        Redis is the broker and the store). The commit then makes the ledger rows and their task
        together: no publish after it (one fsynced round trip and kombu's publish path less, ~0.9 ms of
        CPU per broadcast: docs/performance.md), and no window between the two in which a crash leaves
        the rows to the sweeper.

        The message is Celery's own (protocol 2 headers and body from ``app.amqp.as_task_v2``) in
        kombu's Redis envelope, as ``send_task`` with ``declare=[]`` writes it to the queue's list;
        ``tests/integration/test_outbox.py`` compares the two field by field."""
        from workers.setup import FANOUT_QUEUE, queue_for

        if not notices or not self._shares_server(store):
            return None
        if len(notices) == 1:
            notice_id, channel = notices[0]
            queue = queue_for(channel)
            return BrokerWrite(queue, self._message(DELIVER_TASK, [notice_id, channel], queue))
        return BrokerWrite(FANOUT_QUEUE, self._message(DELIVER_UPDATE_TASK, [[list(n) for n in notices]], FANOUT_QUEUE))

    def _shares_server(self, store: IncidentStore) -> bool:
        """Whether the store writes to the broker's Redis server and database: asked once per store (INFO
        run_id on both connections), again after an error."""
        known = self._same_server.get(id(store))
        if known is not None and known[0] is store:
            return known[1]
        try:
            mine = store.server_id()
            same = False
            if mine is not None:
                with self.celery.connection_for_write() as conn:
                    if conn.transport.driver_type == "redis":
                        client = conn.default_channel.client
                        db = client.connection_pool.connection_kwargs.get("db", 0)
                        same = f"{client.info('server')['run_id']}/{db}" == mine
        except Exception as exc:  # noqa: BLE001 - publish after the commit this time; ask again next time
            log.warning("could not tell whether the broker is the store's Redis (%s); publishing after the commit",
                        exc)
            return False
        self._same_server[id(store)] = (store, same)
        return same

    def _message(self, name: str, args: list[Any], queue: str) -> str:
        app = self.celery
        task_id = str(uuid.uuid4())
        headers, properties, body, _ = app.amqp.as_task_v2(
            task_id, name, args=args, reply_to=app.thread_oid, ignore_result=None,
            argsrepr=repr(args), kwargsrepr="{}",
        )
        properties.update(
            delivery_mode=2,  # persistent, Celery's default (task_default_delivery_mode)
            delivery_info={"exchange": "", "routing_key": queue},  # the anonymous exchange: LPUSH to the queue
            priority=0,  # kombu's default: the queue's own list, not a priority list
            body_encoding="base64",
            delivery_tag=str(uuid.uuid4()),
        )
        return json.dumps({
            "body": base64.b64encode(json.dumps(body).encode()).decode("ascii"),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": headers,
            "properties": properties,
        })

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
