"""Redis as the durable store: incidents, component status history and the delivery ledger.

Redis runs with AOF (``appendfsync always`` for the private server we start), so whatever a MULTI
here has returned from is on disk. Keys, all under ``redis.key_prefix`` (default ``notifier:``):

    seq:<kind>                 INCR counters for incident ids (inc42, mnt7, brd3)
    incident:<id>              JSON document of the incident with all its updates
    incidents                  ZSET id -> created timestamp
    incidents:open             ZSET of the open ones (not resolved/completed), so dashboards, the
                               engine and /metrics read only those, however long the history
    component:<id>:status      current status
    component:<id>:history     LIST of JSON ComponentChange, oldest first
    notice:<notice id>         HASH, one ledger row (see ledger.py)
    notices / :claimed / :due  ZSET indexes of the ledger
    op:<op id>                 incident id an idempotent write (staff API Idempotency-Key) committed to

The engine's keys are documented in ``engine_state.py``, the event stream's in ``events.py``; this
store owns both (``engine_state``, ``events``), so one client serves them all.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from notifier.config import Settings, mask_url
from notifier.domain.model import ComponentChange, ComponentStatus, Incident
from notifier.errors import NotFound, StoreUnavailable
from notifier.ports import UpdateCommit
from notifier.store.engine_state import RedisEngineState
from notifier.store.events import RedisEventStream
from notifier.store.ledger import Ledger

T = TypeVar("T")


def redis_url_of(settings: Settings, override: str | None = None) -> str:
    if override:
        return override
    if settings.redis.url is not None:
        return settings.redis.url.get_secret_value()
    from notifier.store.local_redis import private_url

    return private_url(settings)


def connect(settings: Settings, url: str | None = None) -> redis.Redis:
    """A client for the configured Redis; StoreUnavailable (URL shown masked) if it does not answer."""
    target = redis_url_of(settings, url)
    # No automatic retries: redis-py re-sends a command (or a whole MULTI) when a reply is lost, and a
    # transaction that did commit would then run twice (a duplicate update, a second incident). Callers
    # see the error instead; the ledger, the sweeper and the engine's journal recover from it.
    client = redis.Redis.from_url(
        target, decode_responses=True, socket_connect_timeout=3, socket_timeout=10, health_check_interval=30,
        retry=Retry(NoBackoff(), 0), retry_on_timeout=False,
    )
    try:
        client.ping()
    except redis.RedisError as exc:
        raise StoreUnavailable(
            f"cannot reach Redis at {mask_url(target)} ({exc.__class__.__name__}); start it, or set "
            "redis.url in the config (make run starts a private one under ./var)"
        ) from exc
    return client


class RedisStore:
    def __init__(self, client: redis.Redis, prefix: str = "notifier:") -> None:
        self.redis: Any = client  # decode_responses=True: every reply is str, which redis-py's stubs can't say
        self.prefix = prefix
        self.ledger = Ledger(client, prefix)
        self.engine_state = RedisEngineState(client, prefix)
        self.events = RedisEventStream(client, prefix)

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    # ---- ids -------------------------------------------------------------------------------------
    def next_id(self, kind: str) -> str:
        """``inc`` -> ``inc1``, ``inc2``, ... (also ``mnt`` for maintenance, ``brd`` for broadcasts)."""
        return f"{kind}{self.redis.incr(self.key('seq', kind))}"

    # ---- incidents -------------------------------------------------------------------------------
    def get_incident(self, incident_id: str) -> Incident:
        raw = self.redis.get(self.key("incident", incident_id))
        if raw is None:
            raise NotFound(f"no incident {incident_id!r}; `notifier incident list` shows the ids")
        return Incident.from_dict(json.loads(raw))

    def save_incident(self, incident: Incident) -> None:
        with self.redis.pipeline() as pipe:
            self._save_incident_in(pipe, incident)
            pipe.execute()

    def _save_incident_in(self, pipe: Any, incident: Incident) -> None:
        pipe.set(self.key("incident", incident.id), json.dumps(incident.to_dict(), ensure_ascii=False))
        pipe.zadd(self.key("incidents"), {incident.id: incident.created_at.timestamp()})
        if incident.is_open:
            pipe.zadd(self.key("incidents", "open"), {incident.id: incident.created_at.timestamp()})
        else:
            pipe.zrem(self.key("incidents", "open"), incident.id)

    def list_incidents(
        self, kind: str | None = None, open_only: bool = False, limit: int | None = None
    ) -> list[Incident]:
        """Newest first; ``open_only`` reads only the open ones (an index, not a scan of history)."""
        ids = self.redis.zrevrange(self.key("incidents", "open") if open_only else self.key("incidents"), 0, -1)
        out: list[Incident] = []
        for start in range(0, len(ids), 200):
            raws = self.redis.mget([self.key("incident", i) for i in ids[start : start + 200]])
            for raw in raws:
                if raw is None:
                    continue
                incident = Incident.from_dict(json.loads(raw))
                if kind and incident.kind != kind:
                    continue
                if open_only and not incident.is_open:
                    continue
                out.append(incident)
                if limit and len(out) >= limit:
                    return out
        return out

    def commit_update(
        self, incident_id: str | None, prepare: Callable[[Incident | None], UpdateCommit],
        also_watch: Sequence[str] = (),
    ) -> UpdateCommit:
        """One atomic write of what ``prepare(incident)`` decided: the incident, its component changes,
        its ledger rows and the idempotency op (see ``ports.UpdateCommit``).

        Optimistic: ``prepare`` runs again if the incident document changed underneath (another worker,
        the engine). redis-py also reports a connection lost while watching as a WatchError, after which
        EXEC may or may not have run: ``prepare`` must therefore recognise its own earlier commit.
        """

        def body(pipe: Any, incident: Incident | None) -> UpdateCommit:
            commit = prepare(incident)
            if commit.already:
                return commit
            pipe.multi()
            if commit.op is not None:  # in the write's own transaction, so a retry after a crash finds it
                pipe.set(self.key("op", commit.op), commit.incident.id, ex=commit.op_ttl)
            for change in commit.changes:
                self.set_component_status_in(pipe, change)
            for n in commit.notices:
                self.ledger.create_in(pipe, n.notice_id, n.channel, n.update_id, n.incident_id, n.now, n.deadline)
            self._save_incident_in(pipe, commit.incident)
            for other in commit.also:
                self._save_incident_in(pipe, other)
            return commit

        return self._transact(incident_id, body, [self.key("incident", i) for i in also_watch])

    def op_incident(self, op: str) -> str | None:
        """The incident an idempotent write with this op id committed to, if any."""
        return self.redis.get(self.key("op", op))

    def _transact(
        self, incident_id: str | None, fn: Callable[[Any, Incident | None], T], also: Sequence[str] = ()
    ) -> T:
        """``fn(pipe, incident)`` reads, then queues writes after pipe.multi(); re-run on WatchError.
        ``also``: more keys to watch (``fn`` reads them itself)."""
        watch = [self.key("incident", incident_id)] if incident_id else []
        watch += [k for k in also if k not in watch]
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    if watch:
                        pipe.watch(*watch)
                    incident = None
                    if incident_id:
                        raw = pipe.get(watch[0])
                        if raw is None:
                            raise NotFound(f"no incident {incident_id!r}; `notifier incident list` shows the ids")
                        incident = Incident.from_dict(json.loads(raw))
                    result = fn(pipe, incident)
                    pipe.execute()
                    return result
                except redis.WatchError:
                    continue

    # ---- components ------------------------------------------------------------------------------
    def component_status(self, component_id: str) -> ComponentStatus:
        raw = self.redis.get(self.key("component", component_id, "status"))
        return ComponentStatus(raw) if raw else ComponentStatus.OPERATIONAL

    def component_statuses(self, component_ids: Iterable[str] | None = None) -> dict[str, ComponentStatus]:
        ids = list(component_ids) if component_ids is not None else self._known_components()
        if not ids:
            return {}
        raws = self.redis.mget([self.key("component", c, "status") for c in ids])
        return {c: ComponentStatus(r) if r else ComponentStatus.OPERATIONAL for c, r in zip(ids, raws, strict=True)}

    def _known_components(self) -> list[str]:
        return sorted(self.redis.smembers(self.key("components")))

    def set_component_status(
        self, component_id: str, status: ComponentStatus, at: datetime, incident_id: str | None = None
    ) -> bool:
        """Record a change (and its history entry) only if the status differs. True when it changed."""
        if self.component_status(component_id) == status:
            return False
        with self.redis.pipeline() as pipe:
            self.set_component_status_in(pipe, ComponentChange(component_id, status, at, incident_id))
            pipe.execute()
        return True

    def set_component_status_in(self, pipe: Any, change: ComponentChange) -> None:
        pipe.set(self.key("component", change.component_id, "status"), change.status.value)
        pipe.rpush(self.key("component", change.component_id, "history"), json.dumps(change.to_dict()))
        pipe.sadd(self.key("components"), change.component_id)

    def component_history(self, component_id: str, since: datetime | None = None) -> list[ComponentChange]:
        """Oldest first. With ``since``: the last change before it too (the state the window opens in)."""
        raws = self.redis.lrange(self.key("component", component_id, "history"), 0, -1)
        changes = [ComponentChange.from_dict(json.loads(r)) for r in raws]
        if since is None:
            return changes
        before = [c for c in changes if c.at < since]
        return before[-1:] + [c for c in changes if c.at >= since]

    def ping(self) -> bool:
        try:
            return bool(self.redis.ping())
        except redis.RedisError:
            return False
