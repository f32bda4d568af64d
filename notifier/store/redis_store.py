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
    op:<op id>:fp              the fingerprint of the request that made that write (same transaction)

The engine's keys are documented in ``engine_state.py``, the event stream's in ``events.py``; this
store owns both (``engine_state``, ``events``), so one client serves them all.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from notifier.config import Settings, mask_url
from notifier.domain.model import ComponentChange, ComponentStatus, DeliveryState, Incident, Receipt
from notifier.errors import ConfigProblem, NotFound, NotReplicated, StoreUnavailable
from notifier.ports import UpdateCommit, op_fp_key
from notifier.store.engine_state import RedisEngineState
from notifier.store.events import RedisEventStream
from notifier.store.ledger import Ledger, LedgerRow

T = TypeVar("T")


def redis_url_of(settings: Settings, override: str | None = None) -> str:
    """The one Redis URL (for display too). With Sentinel, a ``sentinel://`` description of where the
    master is found; ``client_for`` asks the Sentinels themselves."""
    if override:
        return override
    conf = settings.redis
    if conf.sentinels:
        return f"sentinel://{','.join(conf.sentinels)}/{conf.master_name}"
    if conf.url is not None:
        return conf.url.get_secret_value()
    from notifier.store.local_redis import private_url

    return private_url(settings)


# No automatic retries: redis-py re-sends a command (or a whole MULTI) when a reply is lost, and a
# transaction that did commit would then run twice (a duplicate update, a second incident). Callers
# see the error instead; the ledger, the sweeper and the engine's journal recover from it.
_CLIENT_OPTIONS: dict[str, Any] = {
    "decode_responses": True, "socket_connect_timeout": 3, "health_check_interval": 30,
    "retry_on_timeout": False,
}


def sentinel_retry() -> Retry:
    """The retry policy of every client that asks a Sentinel: none. redis-py's default for a ``Redis`` it
    builds itself (``Sentinel`` builds one per Sentinel) is 3 retries with exponential backoff and jitter,
    up to 2 + 4 + 8 s: a dead Sentinel, refused at once, then cost 0-14 s of sleeping before the next one
    on the list was asked (measured 2.3-10.1 s a discovery; with all of them down the API's answer timed
    out at 25 s). In a worker's pool that ran every task that opened a broker connection into the 10 s
    hard limit (issue 17). One pass over the list is the retry; the callers retry on their own pace."""
    return Retry(NoBackoff(), 0)


def sentinel_node_kwargs(settings: Settings, timeout: float = 2.0) -> dict[str, Any]:
    """How every client that talks to a Sentinel itself connects: the timeouts, no retries
    (``sentinel_retry``) and Sentinel's own AUTH (``redis.sentinel_password``). The one place these are
    built, for the store's ``Sentinel``, kombu's transport options and the probes of `config check` and
    `notifier status`, so an option added here reaches all of them."""
    conf = settings.redis
    kwargs: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout, "retry": sentinel_retry()}
    if conf.sentinel_password is not None:
        kwargs["password"] = conf.sentinel_password.get_secret_value()
    return kwargs


def sentinel_of(settings: Settings, timeout: float = 2.0) -> Sentinel:
    """A Sentinel client for ``redis.sentinels`` (Sentinel's own AUTH from ``redis.sentinel_password``)."""
    conf = settings.redis
    sentinel_kwargs = sentinel_node_kwargs(settings, timeout)
    password = conf.password.get_secret_value() if conf.password is not None else None
    return Sentinel(conf.sentinel_addresses(), sentinel_kwargs=sentinel_kwargs, password=password, db=conf.db,
                    **_CLIENT_OPTIONS)


def client_for(settings: Settings, url: str | None = None, socket_timeout: float = 10) -> redis.Redis:
    """A client (no round trip yet). With Sentinel it asks them for the master on every new connection,
    so after a failover the next command reaches the new master without a restart."""
    retry = Retry(NoBackoff(), 0)
    if settings.redis.sentinels and not url:
        master_name = settings.redis.master_name or ""
        client: redis.Redis = sentinel_of(settings).master_for(
            master_name, redis_class=redis.Redis, socket_timeout=socket_timeout, retry=retry)
        return client
    return redis.Redis.from_url(redis_url_of(settings, url), socket_timeout=socket_timeout, retry=retry,
                                **_CLIENT_OPTIONS)


def connect(settings: Settings, url: str | None = None) -> redis.Redis:
    """A client for the configured Redis; StoreUnavailable (URL shown masked) if it does not answer."""
    target = redis_url_of(settings, url)
    client = client_for(settings, url)
    try:
        client.ping()
    except redis.RedisError as exc:
        hint = ("check redis.sentinels and redis.master_name (`notifier config check` asks the Sentinels)"
                if settings.redis.sentinels and not url else
                "start it, or set redis.url in the config (make run starts a private one under ./var)")
        raise StoreUnavailable(f"cannot reach Redis at {mask_url(target)} ({exc.__class__.__name__}); {hint}") from exc
    return client


def sentinel_problems(settings: Settings) -> list[ConfigProblem]:
    """What `config check` says about a Sentinel setup, one line per problem: each unreachable
    Sentinel, a master name no Sentinel knows, no master, a quorum not reached."""
    conf = settings.redis
    if not conf.sentinels:
        return []
    problems: list[ConfigProblem] = []
    known = 0
    unknown_at: list[str] = []
    names: set[str] = set()
    for i, (host, port) in enumerate(conf.sentinel_addresses()):
        node = redis.Redis(host=host, port=port, decode_responses=True, **sentinel_node_kwargs(settings))
        try:
            masters = node.sentinel_masters()
        except redis.AuthenticationError:
            problems.append(ConfigProblem(f"redis.sentinels.{i}", f"Sentinel {host}:{port} refused our password; "
                                          "check redis.sentinel_password"))
            continue
        except redis.RedisError as exc:
            problems.append(ConfigProblem(f"redis.sentinels.{i}", f"Sentinel {host}:{port} is unreachable "
                                          f"({exc.__class__.__name__}); is redis-sentinel running there?"))
            continue
        finally:
            node.close()
        if conf.master_name not in masters:
            unknown_at.append(f"{host}:{port}")
            names |= set(masters)
            continue
        known += 1
    if unknown_at:
        problems.append(ConfigProblem("redis.master_name", f"no master named {conf.master_name!r} at Sentinel "
                                      f"{', '.join(unknown_at)} (they monitor: {', '.join(sorted(names)) or 'none'}); "
                                      "fix redis.master_name or the Sentinels' `sentinel monitor` line"))
    if known == 0 and problems:
        return problems
    try:
        connect(settings)
    except StoreUnavailable as exc:
        problems.append(ConfigProblem("redis.master_name", str(exc)))
    return problems


class Replication:
    """``WAIT min_replicas timeout`` after an acknowledged write. WAIT counts the writes of its own
    connection only, and a pool hands out any connection: so one small write (INCR of a probe key) goes
    first on the same connection. The replication stream is ordered, so a replica that confirmed the
    probe has every write that returned before it, whichever connection made it."""

    def __init__(self, client: Any, prefix: str, min_replicas: int = 0, timeout_ms: int = 1000) -> None:
        self.client = client
        self.key = prefix + "replication:probe"
        self.min_replicas = min_replicas
        self.timeout_ms = timeout_ms

    def confirm(self) -> None:
        if self.min_replicas <= 0:
            return
        try:
            with self.client.pipeline(transaction=False) as pipe:
                pipe.incr(self.key)
                pipe.execute_command("WAIT", self.min_replicas, self.timeout_ms)
                _, acked = pipe.execute()
        except redis.RedisError as exc:
            raise NotReplicated(f"could not confirm replication ({exc.__class__.__name__})") from exc
        if int(acked) < self.min_replicas:
            raise NotReplicated(f"only {acked} of redis.min_replicas={self.min_replicas} replicas confirmed "
                                f"the write within {self.timeout_ms} ms")


class ReplicatedEventStream(RedisEventStream):
    """An event is accepted (202) only once it reached ``min_replicas`` replicas; a retry of the same
    webhook, which finds its events already seen, waits for them too before its 202."""

    def __init__(self, client: Any, prefix: str, replication: Replication) -> None:
        super().__init__(client, prefix)
        self.replication = replication

    def accept(self, events: list[tuple[str, str]], ttl: int) -> set[int]:
        fresh = super().accept(events, ttl)
        self.replication.confirm()
        return fresh


class ReplicatedLedger(Ledger):
    """'sending' and 'posted' count once they reached ``min_replicas`` replicas. When WAIT falls short the transition is
    retried (it is idempotent: 'already' when the master kept it, 'posted' again when a failover lost
    it), up to ``attempts`` times; then NotReplicated, and the task's retry / the sweeper repeat it."""

    attempts = 3
    fence_retry = 5.0  # seconds until a notice whose 'sending' fence fell short is tried again

    def __init__(self, client: Any, prefix: str, replication: Replication) -> None:
        super().__init__(client, prefix)
        self.replication = replication

    def mark_sending(self, notice_id: str, token: str, now: float, rendered: list[str]) -> bool:
        """The fence: a send starts only once 'sending' is on the replicas, so after a failover the new
        master knows it may have gone out (and reconciles) instead of sending it again."""
        marked = super().mark_sending(notice_id, token, now, rendered)
        if marked:
            try:
                self.replication.confirm()
            except NotReplicated as exc:
                # nothing left: give the row back as pending, due in a few seconds (so a channel that cannot
                # reconcile does not end up 'unknown', waiting for a person, over a slow replica). If this
                # release is lost to a failover too, the new master has the claim or 'sending': the lease
                # runs out and the notice is reconciled, never sent blind.
                # The caller (delivery.deliver) schedules that task: enqueued_at tells the sweeper to expect it.
                again = now + self.fence_retry
                with contextlib.suppress(redis.RedisError):
                    super().release(notice_id, token, DeliveryState.PENDING, now, again, f"not sent: {exc}",
                                    enqueued_at=again)
                exc.retry_after = self.fence_retry
                raise
        return marked

    def mark_posted(self, notice_id: str, receipt: Receipt, now: float) -> str:
        result = super().mark_posted(notice_id, receipt, now)
        for attempt in range(self.attempts):
            try:
                self.replication.confirm()
                return result
            except NotReplicated:
                if attempt == self.attempts - 1:
                    raise
            super().mark_posted(notice_id, receipt, now)
        return result


class RedisStore:
    def __init__(self, client: redis.Redis, prefix: str = "notifier:", min_replicas: int = 0,
                 wait_timeout_ms: int = 1000) -> None:
        self.redis: Any = client  # decode_responses=True: every reply is str, which redis-py's stubs can't say
        self.prefix = prefix
        self.replication = Replication(client, prefix, min_replicas, wait_timeout_ms)
        if min_replicas > 0:
            self.ledger: Ledger = ReplicatedLedger(client, prefix, self.replication)
            self.events: RedisEventStream = ReplicatedEventStream(client, prefix, self.replication)
        else:
            self.ledger = Ledger(client, prefix)
            self.events = RedisEventStream(client, prefix)
        self.engine_state = RedisEngineState(client, prefix)

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    # ---- ids -------------------------------------------------------------------------------------
    def next_id(self, kind: str) -> str:
        """``inc`` -> ``inc1``, ``inc2``, ... (also ``mnt`` for maintenance, ``brd`` for broadcasts)."""
        return f"{kind}{self.redis.incr(self.key('seq', kind))}"

    def server_id(self) -> str | None:
        db = self.redis.connection_pool.connection_kwargs.get("db", 0)
        return f"{self.redis.info('server')['run_id']}/{db}"

    # ---- incidents -------------------------------------------------------------------------------
    def get_incident(self, incident_id: str) -> Incident:
        raw = self.redis.get(self.key("incident", incident_id))
        if raw is None:
            raise NotFound(f"no incident {incident_id!r}; `notifier incident list` shows the ids")
        return Incident.from_dict(json.loads(raw))

    def rows_with_incident(
        self, notice_ids: list[str], incident_id: str
    ) -> tuple[list[LedgerRow | None], Incident | None]:
        with self.redis.pipeline(transaction=False) as pipe:
            for nid in notice_ids:
                pipe.hgetall(self.ledger.row_key(nid))
            pipe.get(self.key("incident", incident_id))
            *found, raw = pipe.execute()
        rows = [LedgerRow.from_hash(data) if data else None for data in found]
        return rows, (Incident.from_dict(json.loads(raw)) if raw is not None else None)

    def save_incident(self, incident: Incident) -> None:
        with self.redis.pipeline() as pipe:
            self._save_incident_in(pipe, incident)
            pipe.execute()
        self.replication.confirm()

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
        also_watch: Sequence[str] = (), op: str | None = None,
    ) -> UpdateCommit:
        """One atomic write of what ``prepare(incident)`` decided: the incident, its component changes,
        its ledger rows and the idempotency op (see ``ports.UpdateCommit``).

        Optimistic: ``prepare`` runs again if the incident document changed underneath (another worker,
        the engine). redis-py also reports a connection lost while watching as a WatchError, after which
        EXEC may or may not have run: ``prepare`` must therefore recognise its own earlier commit.

        ``op``: an idempotency op at most one commit may land for. ``op:<op>`` is watched with the rest
        and read (WATCH, GET) before ``prepare``: if it is set, or set by anyone before our EXEC (which
        then aborts, and this runs again), nothing is written and the commit that landed comes back
        (``already``, ``op_fp``: the fingerprint kept with the op, for the caller to compare). Without it,
        a request whose key's lease ran out before its commit would land a second write next to the
        retry's (or next to a request's with the key and another body).
        """
        op_key = self.key("op", op) if op is not None else None

        def body(pipe: Any, incident: Incident | None) -> UpdateCommit:
            if op_key is not None:
                landed = self._landed(pipe, op_key, op)
                if landed is not None:
                    return landed
            commit = prepare(incident)
            if commit.already:
                return commit
            pipe.multi()
            if commit.op is not None:  # in the write's own transaction, so a retry after a crash finds it
                # the fingerprint in a key of its own: op:<op> keeps the bare incident id that workers and
                # API processes of the previous version read during a rolling upgrade
                committed_op = self.key("op", commit.op)
                pipe.set(committed_op, commit.incident.id, ex=commit.op_ttl)
                if commit.op_fp:
                    pipe.set(op_fp_key(committed_op), commit.op_fp, ex=commit.op_ttl)
            if commit.record is not None:  # the request's answer: the API keeps it without another write
                pipe.set(commit.record[0], commit.record[1], ex=commit.op_ttl)
            for change in commit.changes:
                self.set_component_status_in(pipe, change)
            for n in commit.notices:
                self.ledger.create_in(pipe, n.notice_id, n.channel, n.update_id, n.incident_id, n.now, n.deadline)
            self._save_incident_in(pipe, commit.incident)
            for other in commit.also:
                self._save_incident_in(pipe, other)
            if commit.enqueue is not None:  # the broker's own key (not prefixed): the workers' queue
                pipe.lpush(commit.enqueue.key, commit.enqueue.message)
            return commit

        watch = [self.key("incident", i) for i in also_watch] + ([op_key] if op_key is not None else [])
        commit = self._transact(incident_id, body, watch)
        self.replication.confirm()  # a staff write's 201 means replicated (redis.min_replicas)
        return commit

    def _landed(self, pipe: Any, op_key: str, op: str | None) -> UpdateCommit | None:
        """The commit of ``op`` that landed already (read on the watching ``pipe``; ``op_fp``: the
        fingerprint kept with the op), or None."""
        incident_id, fingerprint = pipe.mget(op_key, op_fp_key(op_key))
        if incident_id is None:
            return None
        raw = pipe.get(self.key("incident", incident_id))
        incident = Incident.from_dict(json.loads(raw)) if raw is not None else None
        update = incident.update_for_op(op) if incident is not None else None
        if incident is None or update is None:  # not the write this op names (gone): nothing to replay
            return None
        return UpdateCommit(incident, update, already=True, op_fp=fingerprint or "")

    def op_incident(self, op: str) -> str | None:
        """The incident an idempotent write with this op id committed to, if any."""
        found = self.op_commit(op)
        return found[0] if found is not None else None

    def op_commit(self, op: str) -> tuple[str, str] | None:
        """(incident, fingerprint of the request that made it) of the op's commit, if any."""
        op_key = self.key("op", op)
        incident_id, fingerprint = self.redis.mget(op_key, op_fp_key(op_key))
        return (incident_id, fingerprint or "") if incident_id is not None else None

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


def replication_status(client: Any) -> dict[str, Any]:
    """The connected master's view: its address and offset, and each replica's state, offset and lag
    (bytes behind, and seconds since it last acknowledged)."""
    info = client.info("replication")
    offset = int(info.get("master_repl_offset", 0))
    replicas = []
    for key, value in sorted(info.items()):
        if key.startswith("slave") and isinstance(value, dict):
            replicas.append({"address": f"{value.get('ip')}:{value.get('port')}", "state": value.get("state", "?"),
                             "offset": int(value.get("offset", 0)), "behind": offset - int(value.get("offset", 0)),
                             "lag": int(value.get("lag", -1))})
    pool = client.connection_pool
    kwargs = getattr(pool, "connection_kwargs", {})
    address = f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"
    if hasattr(pool, "get_master_address"):
        host, port = pool.get_master_address()
        address = f"{host}:{port}"
    return {"role": info.get("role", "?"), "address": address, "offset": offset, "replicas": replicas}


def sentinel_status(settings: Settings) -> list[dict[str, Any]]:
    """What each configured Sentinel says: the master's address, its replica and peer counts, or why not."""
    conf = settings.redis
    out = []
    for host, port in conf.sentinel_addresses():
        node = redis.Redis(host=host, port=port, decode_responses=True, **sentinel_node_kwargs(settings))
        row: dict[str, Any] = {"address": f"{host}:{port}"}
        try:
            info = node.sentinel_master(conf.master_name)
            row.update(master=f"{info.get('ip')}:{info.get('port')}", replicas=int(info.get("num-slaves", 0)),
                       sentinels=int(info.get("num-other-sentinels", 0)) + 1, quorum=int(info.get("quorum", 0)),
                       flags=str(info.get("flags", "")))
        except redis.RedisError as exc:
            row["error"] = exc.__class__.__name__
        finally:
            node.close()
        out.append(row)
    return out
