"""Ports the services depend on, implemented by adapters and entry points.

- ``Dispatcher``: hands work to the workers (Celery in ``workers/dispatch.py``; ``NullDispatcher`` here).
- ``IncidentStore``: incidents, component status and, as attributes, the three repositories below.
  Redis: ``store/redis_store.py``; in memory: ``store/memory.py``.
- ``DeliveryLedger``: one row per notice (update x channel) and its state machine (``store/ledger.py``).
- ``EngineStateRepository``: the incident engine's documents, journal, maps, logs and lock
  (``store/engine_state.py``).
- ``EventStream``: the accepted alert events the engine consumes (``store/events.py``).

Services call only these methods; no service knows a Redis key, a pipeline or a Lua script.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from notifier.domain.model import ComponentChange, ComponentStatus, DeliveryState, Incident, IncidentUpdate, Receipt
    from notifier.domain.subscribers import Subscriber, WebhookSubscriber
    from notifier.engine.state import EngineState, Window
    from notifier.store.ledger import Claim, LedgerRow

GLOBAL_LOG = "_global"  # the decision log of decisions tied to no group or maintenance


class Dispatcher(Protocol):
    """Hands work to the workers. The Celery implementation lives in ``workers/dispatch.py``.

    Every call may be repeated or lost without harm: the ledger in Redis is the truth, and the beat
    sweeper re-enqueues whatever is due and not being worked on.
    """

    def deliver(self, notice_id: str, channel: str, countdown: float = 0) -> None:
        """Queue one notice on its channel's own queue."""

    def deliver_many(self, notices: Sequence[tuple[str, str]]) -> None:
        """Queue the notices of one update, each ``(notice_id, channel)``, now, as one unit of work if the
        broker allows (Celery: one task that sends each on its own thread, so one broker round trip and
        one fsync instead of one per notice, and every channel starts at once). Each notice is still
        claimed, sent and recorded on its own. Same contract as ``deliver``: a notice lost here is due in
        the ledger, and the sweeper enqueues it."""

    def backlog(self, channel: str) -> int | None:
        """Tasks waiting that may carry the channel's notices (None: cannot tell). The sweeper re-enqueues a row only
        when this is 0: with tasks still waiting, a late task is not yet a lost one."""

    def wake_engine(self) -> None:
        """Ask the incident engine to process newly accepted alert events."""

    def outbox(self, notices: Sequence[tuple[str, str]], store: IncidentStore) -> BrokerWrite | None:
        """The broker write that queues these notices (as ``deliver_many`` would), for ``store`` to make
        inside its own commit (``UpdateCommit.enqueue``), or None when that cannot be done: the broker is
        not the store's Redis server and database, or is not Redis. Builds the message only; no I/O
        except, once per store, finding out whether the two are the same server."""


@dataclass(frozen=True)
class BrokerWrite:
    """A broker message written by the store's commit itself: ``LPUSH key message`` in the transaction
    that creates the ledger rows it announces, so the rows and their task exist together or not at all
    (no publish after the commit, no crash window between them for the sweeper to cover)."""

    key: str
    message: str

    def __repr__(self) -> str:  # a message is long; what it is for is enough
        return f"BrokerWrite(key={self.key!r}, {len(self.message)} bytes)"


class NullDispatcher:
    """Enqueues nothing: for dry runs, and for tests that drive services directly."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, float]] = []
        self.wakeups = 0

    def deliver(self, notice_id: str, channel: str, countdown: float = 0) -> None:
        self.sent.append((notice_id, channel, countdown))

    def deliver_many(self, notices: Sequence[tuple[str, str]]) -> None:
        self.sent.extend((notice_id, channel, 0) for notice_id, channel in notices)

    def backlog(self, channel: str) -> int | None:
        return 0  # tests that drive services play the worker themselves; nothing waits in a broker

    def wake_engine(self) -> None:
        self.wakeups += 1

    def outbox(self, notices: Sequence[tuple[str, str]], store: IncidentStore) -> BrokerWrite | None:
        return None  # no broker: deliver_many records them


# ---- the incident store's unit of work ---------------------------------------------------------------
@dataclass(frozen=True)
class NewNotice:
    """A ledger row to create, pending from ``now``, given up on after ``deadline`` (unix seconds)."""

    notice_id: str
    channel: str
    update_id: str
    incident_id: str
    now: float
    deadline: float


def op_fp_key(op_key: str) -> str:
    """``op:<op>:fp``: the fingerprint of the request whose write ``op:<op>`` (``op_key``) names."""
    return f"{op_key}:fp"


@dataclass
class UpdateCommit:
    """Everything one published (or drafted) update writes, committed atomically by ``commit_update``.

    ``already``: the update had been committed by an earlier attempt of the same op (the connection
    dropped after EXEC); nothing is written. ``op``: an idempotency op id to remember for ``op_ttl``
    seconds, mapping to the incident (and ``op_fp``, the fingerprint of the request that made it), in the
    same transaction; on a commit ``commit_update`` found landed for its ``op`` guard, ``op_fp`` is the one
    kept with that op. ``record``: (key, value) of the staff API's
    idempotency record of the request (its kept answer, ``services.idempotent``), written for ``op_ttl``
    seconds in the same transaction. ``also``: other incident documents written in the same transaction
    (a merge's target); ``commit_update`` must have been told to watch them. ``enqueue``: the broker
    message that hands the notices to the workers (``Dispatcher.outbox``), written in the same
    transaction; None: the caller publishes after the commit.
    """

    incident: Incident
    update: IncidentUpdate
    changes: list[ComponentChange] = field(default_factory=list)
    notices: list[NewNotice] = field(default_factory=list)
    op: str | None = None
    op_ttl: int = 0
    op_fp: str = ""
    record: tuple[str, str] | None = None
    already: bool = False
    also: list[Incident] = field(default_factory=list)
    enqueue: BrokerWrite | None = None


class DeliveryLedger(Protocol):
    """The delivery ledger: pending -> claimed -> (sending) -> posted | failed | unknown. Every method is
    one atomic transition; see ``store/ledger.py`` for the state machine."""

    def get(self, notice_id: str) -> LedgerRow | None:
        """The row, or None."""

    def get_many(self, notice_ids: list[str]) -> list[LedgerRow | None]:
        """The rows of these notices, in order (None where there is none), in one round trip."""

    def claim(self, notice_id: str, now: float, lease: float) -> Claim:
        """Take the row for ``lease`` seconds (send or reconcile), or say why not. On any row not posted
        or failed it also records, in the same write, that a task reached a worker (``task_seen_at``)."""

    def mark_sending(self, notice_id: str, token: str, now: float, rendered: list[str]) -> bool:
        """Record that the request may leave now. False: the claim was lost; do not send."""

    @property
    def fuses_fence(self) -> bool:
        """Whether ``claim_sending`` may stand for ``claim`` + ``mark_sending`` (not when the fence does more
        than the write: a ledger that waits for replicas before a request may leave)."""

    def claim_sending(self, notice_id: str, now: float, lease: float, rendered: list[str]) -> Claim:
        """``claim`` and, for a send claim, ``mark_sending(rendered)`` in one atomic write; the claim's
        ``fenced`` is the rendering now on the row. Only for channels whose reconcile is exact: a worker
        that dies after it leaves a row to reconcile, even if its request never left."""

    def mark_posted(self, notice_id: str, receipt: Receipt, now: float) -> str:
        """Record the post, whoever holds the row: 'posted', 'already' or 'missing'."""

    def release(
        self, notice_id: str, token: str, state: DeliveryState, now: float, next_at: float | None, error: str,
        keep_sending: bool = False, expect: DeliveryState | None = None, enqueued_at: float | None = None,
    ) -> bool:
        """Move a held row (or, without a token, a row nobody holds) to pending/unknown/failed; with
        ``enqueued_at``, also record when its next task is expected (in the same atomic write)."""

    def release_for_op(
        self, notice_id: str, state: DeliveryState, now: float, next_at: float | None, error: str, *,
        keep_sending: bool, expect: DeliveryState, op: str, result: str, ttl: int,
    ) -> bool | str:
        """``release`` without a token and, only if the row moved, ``op`` -> ``result`` kept for ``ttl``
        seconds, in the same atomic step (a staff request's ``Idempotency-Key``). When ``op`` had been
        recorded already (a concurrent request with it released first), nothing moves and its recorded
        result is returned (a str)."""

    def op_result(self, op: str, now: float) -> str | None:
        """The ``result`` a committed ``release_for_op`` recorded for ``op`` (until its ttl ran out)."""

    def expire(self, notice_id: str, now: float) -> str:
        """Expire this row's claim if its lease ran out: '', 'pending' or 'unknown'."""

    def expire_claims(self, now: float) -> list[tuple[str, str]]:
        """Expire every claim whose lease ran out: (notice id, new state)."""

    def due(self, now: float, limit: int = 500) -> list[str]:
        """Notice ids due by ``now`` (pending or unknown, next_at passed)."""

    def set_deadline(self, notice_id: str, deadline: float) -> None:
        """Give the row a new deadline (a person asked to retry it)."""

    def task_seen(self, notice_id: str, now: float) -> None:
        """A deliver task for this row reached a worker."""

    def touch_enqueued(self, notice_id: str, now: float, seen: float | None = None) -> None:
        """A task for this row was enqueued (or is expected at ``now``); with ``seen``, also record
        ``task_seen_at`` in the same write."""

    def touch_enqueued_many(self, notice_ids: list[str], now: float) -> None:
        """``touch_enqueued`` for many rows in one round trip (not atomic across rows)."""

    def rows(
        self, channel: str | None = None, state: str | None = None, update_id: str | None = None,
        incident_id: str | None = None, limit: int | None = None,
    ) -> list[LedgerRow]:
        """Newest first, filtered."""


class EngineLock(Protocol):
    """A token lock with a TTL (redis-py's ``Lock``)."""

    def acquire(self, blocking: bool | None = None) -> bool: ...

    def reacquire(self) -> bool: ...

    def release(self) -> None: ...


class EngineStateRepository(Protocol):
    """The incident engine's durable state. ``commit`` is the one atomic write of an engine run."""

    def version(self) -> str | None:
        """Bumped by every commit and window change: an unchanged version proves a cached state current."""

    def load(self) -> EngineState:
        """Groups, component flap histories, windows and the id counter."""

    def commit(
        self, state: EngineState, decisions: list[tuple[str, dict[str, Any]]], journal: list[str],
        ack: list[str], global_cap: int,
    ) -> None:
        """Atomically: save the touched documents (clearing ``touched``/``closed``), append the decision
        lines ``(log, data)`` (the ``_global`` log capped at ``global_cap``), append the journal entries
        and acknowledge the event ids ``ack`` on the event stream."""

    def save_window(self, window: Window) -> None:
        """Store a maintenance window (and bump the version)."""

    def windows(self) -> list[Window]:
        """Every maintenance window, in no particular order."""

    def journal_head(self) -> str | None:
        """The oldest action not yet applied (JSON), or None."""

    def journal_length(self) -> int:
        """How many actions wait in the journal."""

    def journal_attempt(self) -> dict[str, str]:
        """``{"digest", "at"}`` of the head an application was started for, or {}."""

    def mark_journal_attempt(self, digest: str, at: float) -> None:
        """Record that the head with this digest is being applied."""

    def pop_journal(self) -> None:
        """Drop the head and its attempt marker, atomically."""

    def incident_of(self, group: str) -> str | None:
        """The incident a group posts into."""

    def group_of(self, incident_id: str) -> str | None:
        """The group that stands for an incident."""

    def incident_groups(self) -> dict[str, str]:
        """Incident id -> group id, for every mapped incident."""

    def link(self, group: str, incident_id: str, draft: tuple[str, str] | None = None) -> None:
        """Map group and incident both ways (and a draft ref to its update id), atomically."""

    def unlink(self, group: str, incident_id: str) -> None:
        """Forget the group's incident and the incident's group."""

    def relink(self, group: str, old_incident: str, new_incident: str) -> None:
        """The group now stands for ``new_incident``; ``old_incident`` maps to none."""

    def remember_draft(self, ref: str, update_id: str) -> None:
        """The update id of the draft the engine knows as ``ref``."""

    def draft(self, ref: str) -> str | None:
        """The update id of a draft ref."""

    def record(self, log: str, decision: dict[str, Any]) -> None:
        """Append one line to a decision log (a group, a maintenance, or ``_global``)."""

    def decisions(self, log: str) -> list[dict[str, Any]]:
        """A decision log, oldest first."""

    def lock(self, timeout: float, wait: float = 0) -> EngineLock:
        """The engine's run lock (held for ``timeout`` seconds unless renewed; ``wait`` for a blocking acquire)."""


class EventStream(Protocol):
    """Accepted alert events, consumed by one consumer group; an entry is ``(id, {"event": JSON})``."""

    def accept(self, events: list[tuple[str, str]], ttl: int) -> set[int]:
        """Append each ``(event id, JSON)`` not accepted within ``ttl`` seconds, atomically with its seen
        marker; the 1-based positions of those that were new. StoreUnavailable when it cannot."""

    def append(self, event_json: str) -> str:
        """Append one entry without the seen check; its id."""

    def ensure_group(self) -> None:
        """Create the consumer group if it does not exist."""

    def read(self, consumer: str, count: int, claim_idle_ms: int) -> list[tuple[str, dict[str, str]]]:
        """Own pending entries, else entries idle ``claim_idle_ms`` at a dead consumer, else new ones."""

    def ack(self, ids: list[str]) -> None:
        """Acknowledge entries (the engine's run does so inside ``EngineStateRepository.commit``)."""

    def undelivered(self) -> bool:
        """Entries arrived that the group has not been given yet."""

    def pending(self) -> int:
        """Entries given to a consumer and not acknowledged."""

    def length(self) -> int:
        """Entries in the stream."""

    def trim(self, above: int) -> None:
        """Once longer than ``above``, drop the entries every group has acknowledged."""


class IncidentStore(Protocol):
    """Incidents and component status, with the ledger, engine state and event stream beside them."""

    @property
    def ledger(self) -> DeliveryLedger:
        """The delivery ledger."""

    @property
    def engine_state(self) -> EngineStateRepository:
        """The incident engine's state."""

    @property
    def events(self) -> EventStream:
        """The accepted alert events."""

    def next_id(self, kind: str) -> str:
        """``inc`` -> ``inc1``, ``inc2``, ..."""

    def server_id(self) -> str | None:
        """Which server and database the store writes to (Redis: the server's ``run_id`` and the db
        number), so a dispatcher can tell whether its broker is the same; None: not a Redis store."""

    def get_incident(self, incident_id: str) -> Incident:
        """The incident; NotFound if there is none."""

    def rows_with_incident(
        self, notice_ids: list[str], incident_id: str
    ) -> tuple[list[LedgerRow | None], Incident | None]:
        """The ledger rows of these notices (None where there is none) and the incident (None if there is
        none), in one round trip: what a worker reads before sending an update's notices."""

    def save_incident(self, incident: Incident) -> None:
        """Store the incident document (and its open/closed index entries)."""

    def list_incidents(
        self, kind: str | None = None, open_only: bool = False, limit: int | None = None
    ) -> list[Incident]:
        """Newest first."""

    def commit_update(
        self, incident_id: str | None, prepare: Callable[[Incident | None], UpdateCommit],
        also_watch: Sequence[str] = (), op: str | None = None,
    ) -> UpdateCommit:
        """Read the incident (None: a new one ``prepare`` brings), let ``prepare`` decide, and write the
        result atomically; ``prepare`` runs again if the incident (or one in ``also_watch``, which
        ``prepare`` reads itself and may return in ``UpdateCommit.also``) changed underneath.
        ``op``: at most one commit of this idempotency op lands; if one has (before this call, or while
        ``prepare`` ran), nothing is written and that commit is returned, ``already`` set."""

    def op_incident(self, op: str) -> str | None:
        """The incident an idempotent write with this op id committed to."""

    def op_commit(self, op: str) -> tuple[str, str] | None:
        """(incident, the fingerprint of the request that made it; '' if none) of the op's commit."""

    def component_status(self, component_id: str) -> ComponentStatus:
        """Current status (operational when never set)."""

    def component_statuses(self, component_ids: Iterable[str] | None = None) -> dict[str, ComponentStatus]:
        """Current statuses of these (or all known) components."""

    def set_component_status(
        self, component_id: str, status: ComponentStatus, at: datetime, incident_id: str | None = None
    ) -> bool:
        """Record a change and its history entry if the status differs; True when it changed."""

    def component_history(self, component_id: str, since: datetime | None = None) -> list[ComponentChange]:
        """Oldest first; with ``since`` the last change before it too."""

    def ping(self) -> bool:
        """Whether the store answers."""


class SubscriberRepository(Protocol):
    """Confirmed e-mail and webhook subscribers (only address or URL, scope, language, the two times) and the public
    sign-up endpoint's counters. Redis: ``store/subscribers.py``."""

    def save(self, subscriber: Subscriber) -> bool:
        """Store or replace a confirmed subscriber; True when the address was new."""

    def get(self, address: str) -> Subscriber | None:
        """The subscriber with this (normalised) address, or None."""

    def delete(self, address: str) -> bool:
        """Forget the address entirely; True when it was there."""

    def all(self) -> list[Subscriber]:
        """Every confirmed subscriber, ordered by address."""

    def count(self) -> int:
        """How many confirmed subscribers there are."""

    def hit(self, kind: str, key: str, limit: int, window: float) -> float | None:
        """Count one request; None while within ``limit`` per ``window`` seconds, else seconds to wait."""

    def save_hook(self, hook: WebhookSubscriber) -> bool:
        """Store or replace a confirmed webhook subscriber; True when the URL was new."""

    def get_hook(self, url: str) -> WebhookSubscriber | None:
        """The webhook subscriber with this (normalised) URL, or None."""

    def delete_hook(self, url: str) -> bool:
        """Forget the URL; True when it was there."""

    def hooks(self) -> list[WebhookSubscriber]:
        """Every confirmed webhook subscriber, ordered by URL."""
