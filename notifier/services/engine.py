"""Runs the incident engine: consumes the events stream, applies the core's actions, keeps its state.

Redis layout (all under ``settings.redis.key_prefix``):

    events                      stream the API appends accepted AlertEvents to (field ``event``)
    engine:groups               hash  group id -> JSON (one document per group)
    engine:components           hash  component id -> JSON (flap history)
    engine:windows              hash  maintenance id -> JSON
    engine:meta                 hash  next_id
    engine:journal              list  actions decided but not yet applied (JSON)
    engine:incidents            hash  group id -> incident id
    engine:incident-groups      hash  incident id -> group id
    engine:drafts               hash  draft ref -> update id
    engine:decisions:<id>       list  decision log of a group, or of a maintenance (JSON lines)
    engine:decisions:_global    list  decisions tied to no group (unrouted alerts), capped
    engine:lock                 the lock every run holds, so two workers never decide twice

One run, under the lock: finish any journal left by a crashed run; read a batch of events (our own
pending ones first, then XAUTOCLAIM entries a dead consumer left idle, then new ones); let the core
decide; then in ONE transaction save the touched documents, append the decisions, write the external
actions to the journal and XACK the batch. Only then are the journal's actions applied, one by one,
each popped once done. So an event is acknowledged exactly when its consequences are durably decided,
and a crash repeats at most the one action that was in flight.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from notifier.domain.events import AlertEvent
from notifier.domain.model import ComponentStatus
from notifier.engine import actions as act
from notifier.engine.core import ChannelPolicy, ComponentInfo, Engine
from notifier.engine.settings import EngineSettings, parse_engine
from notifier.engine.state import ComponentFlap, EngineState, Group, Window
from notifier.errors import NotifierError
from notifier.failpoints import failpoint

if TYPE_CHECKING:
    from notifier.bootstrap import App

log = logging.getLogger(__name__)
CONSUMER_GROUP = "engine"
AUTHOR = "engine"
GLOBAL_LOG_CAP = 1000
_ACTION_TYPES = {
    cls.__name__: cls
    for cls in (
        act.OpenIncident,
        act.PostUpdate,
        act.ResolveIncident,
        act.SetComponentStatus,
        act.ApproveDraft,
        act.MaintenanceUpdate,
    )
}


class EngineBusy(NotifierError):
    """Another worker holds the engine lock; its run will see our events too."""


# ---- wiring ----------------------------------------------------------------------------------------


def engine_settings(app: App) -> EngineSettings:
    cached = app.extras.get("engine_settings")
    if cached is None:
        cached = app.extras["engine_settings"] = parse_engine(app.settings.engine)
    return cached


def build_engine(app: App) -> Engine:
    """The pure core, configured from the app's settings."""
    components = [
        ComponentInfo(c.id, c.name, c.group, dict(c.names), c.hidden, {k: v.value for k, v in c.affects.items()})
        for c in app.settings.components
    ]
    channels = {
        name: ChannelPolicy(conf.approval, conf.auto_publish_after_minutes)
        for name, conf in app.settings.channels.items()
        if conf.enabled
    }
    return Engine(engine_settings(app), components, channels)


def _redis(app: App) -> Any:
    """The store's client (decode_responses=True: str in, str out; typed Any for redis-py's unions)."""
    return app.store.redis


def key(app: App, *parts: str) -> str:
    return app.settings.redis.key_prefix + ":".join(parts)


def stream_key(app: App) -> str:
    return key(app, "events")


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def ensure_consumer_group(app: App) -> None:
    if app.extras.get("engine_group_ok"):
        return
    try:
        _redis(app).xgroup_create(stream_key(app), CONSUMER_GROUP, id="0", mkstream=True)
    except Exception as exc:  # redis.ResponseError; BUSYGROUP means it exists, which is fine
        if "BUSYGROUP" not in str(exc):
            raise
    app.extras["engine_group_ok"] = True


def _lock(app: App, wait: float = 0) -> Any:
    """The engine lock. Workers do not wait for it (``wait=0``): whoever holds it is consuming, and
    re-checks the stream after releasing it, so nothing is left behind; a person's command waits."""
    seconds = engine_settings(app).stream.lock_seconds
    return _redis(app).lock(key(app, "engine", "lock"), timeout=seconds, blocking_timeout=wait)


def _undelivered(app: App) -> bool:
    """Did events arrive that our consumer group has not been given yet?"""
    r = _redis(app)
    stream = stream_key(app)
    last = r.xinfo_stream(stream)["last-generated-id"]
    for group in r.xinfo_groups(stream):
        if group["name"] == CONSUMER_GROUP:
            return bool(_id(last) > _id(group["last-delivered-id"]))
    return True


# ---- state -----------------------------------------------------------------------------------------


def load_state(app: App, cached: bool = False) -> EngineState:
    """The engine's state from Redis; with ``cached``, this process's copy if nothing changed since.

    Every commit bumps ``engine:meta version`` under the lock, so an unchanged version proves the copy
    is current. The copy is taken out of the cache while in use and put back only by a successful
    commit: a run that failed half-way can never leave a half-applied state behind for the next run.
    """
    r = _redis(app)
    if cached:
        version = r.hget(key(app, "engine", "meta"), "version")
        held = app.extras.pop("engine_state", None)
        if held is not None and held[0] == version:
            return held[1]
    state = EngineState(
        groups={g: Group.from_dict(json.loads(v)) for g, v in r.hgetall(key(app, "engine", "groups")).items()},
        components={
            c: ComponentFlap.from_dict(json.loads(v)) for c, v in r.hgetall(key(app, "engine", "components")).items()
        },
        windows={w: Window.from_dict(json.loads(v)) for w, v in r.hgetall(key(app, "engine", "windows")).items()},
        next_id=int(r.hget(key(app, "engine", "meta"), "next_id") or 1),
    )
    state.reindex()
    return state


def _save_in(app: App, pipe: Any, state: EngineState) -> None:
    for item in sorted(state.touched):
        kind, _, ident = item.partition(":")
        if kind == "group" and ident in state.groups:
            pipe.hset(key(app, "engine", "groups"), ident, json.dumps(state.groups[ident].to_dict()))
        elif kind == "component" and ident in state.components:
            pipe.hset(key(app, "engine", "components"), ident, json.dumps(state.components[ident].to_dict()))
        elif kind == "window" and ident in state.windows:
            pipe.hset(key(app, "engine", "windows"), ident, json.dumps(state.windows[ident].to_dict()))
    for gid in state.closed:
        pipe.hdel(key(app, "engine", "groups"), gid)
    pipe.hset(key(app, "engine", "meta"), "next_id", state.next_id)
    pipe.hincrby(key(app, "engine", "meta"), "version", 1)
    state.touched.clear()
    state.closed.clear()


def _log_key(app: App, decision: act.Decision) -> str:
    return key(app, "engine", "decisions", decision.group or decision.maintenance or "_global")


def _commit(app: App, state: EngineState, actions: list[act.Action], ack: list[str]) -> list[act.Action]:
    """Persist state, decisions, journal and acks atomically; return the external actions to apply."""
    external: list[act.Action] = [a for a in actions if not isinstance(a, act.Decision)]
    _hold(app)
    with _redis(app).pipeline(transaction=True) as pipe:
        _save_in(app, pipe, state)
        for decision in actions:
            if isinstance(decision, act.Decision):
                pipe.rpush(_log_key(app, decision), json.dumps(decision.to_dict()))
        pipe.ltrim(key(app, "engine", "decisions", "_global"), -GLOBAL_LOG_CAP, -1)
        for action in external:
            pipe.rpush(key(app, "engine", "journal"), json.dumps({"type": type(action).__name__, **asdict(action)}))
        if ack:
            pipe.xack(stream_key(app), CONSUMER_GROUP, *ack)
        pipe.execute()
    app.extras["engine_state"] = (_redis(app).hget(key(app, "engine", "meta"), "version"), state)
    return external


# ---- running ---------------------------------------------------------------------------------------


def process_events(app: App, max_events: int | None = None, consumer: str | None = None) -> int:
    """Consume accepted alert events from the stream and apply what the engine decides.

    Returns how many events this call processed (0 when another worker holds the lock: that worker
    looks at the stream again after releasing it, so the events are not left waiting).
    """
    settings = engine_settings(app)
    if not settings.enabled:
        return 0
    ensure_consumer_group(app)
    done = 0
    while max_events is None or done < max_events:
        lock = _lock(app)
        if not lock.acquire(blocking=False):
            return done
        app.extras["engine_lock"] = lock
        try:
            _drain_journal(app)
            left = None if max_events is None else max_events - done
            done += _consume(app, left, consumer or consumer_name())
        except LockLost as exc:
            log.warning("engine run stopped: lost the engine lock (%s); the holder carries on", exc)
            return done
        finally:
            _release(app, lock)
        # an event appended between our last read and the release found the lock taken and gave up
        if not _undelivered(app):
            break
    return done


def tick(app: App) -> None:
    """Advance the engine's timers (confirm, resolve, budget, maintenance, auto-publish); beat calls this."""
    if not engine_settings(app).enabled:
        return
    ensure_consumer_group(app)
    lock = _lock(app)
    if not lock.acquire(blocking=False):
        return  # a run is in progress; the next tick comes in a few seconds
    app.extras["engine_lock"] = lock
    try:
        _drain_journal(app)
        _consume(app, None, consumer_name())  # events a lost wake-up left behind
        engine, state = build_engine(app), load_state(app, cached=True)
        now = app.clock.timestamp()
        actions = _follow_staff(app, engine, state, now) + engine.tick(state, now)
        _trim(app)
        if actions or state.touched or state.closed:
            _commit(app, state, actions, [])
        else:  # an idle tick writes nothing (Redis fsyncs every write)
            app.extras["engine_state"] = (_redis(app).hget(key(app, "engine", "meta"), "version"), state)
        _drain_journal(app)
    except LockLost as exc:
        log.warning("engine tick stopped: lost the engine lock (%s)", exc)
    finally:
        _release(app, lock)


def _follow_staff(app: App, engine: Engine, state: EngineState, now: float) -> list[act.Action]:
    """What people did since the last run, in the engine's terms (issue 13):

    - a group whose incident a person resolved (CLI, API, console) is let go instead of posting into it;
    - a group whose incident staff posted in is left for a person to resolve (``Engine.note_staff``);
    - an incident a person opened becomes a group, so alerts for its components join it (``Engine.adopt``).
    """
    out: list[act.Action] = []
    for gid in [g.id for g in state.groups.values() if g.opened]:
        incident_id = incident_of(app, gid)
        if incident_id is None:
            continue
        try:
            incident = app.store.get_incident(incident_id)
        except NotifierError:
            continue
        if not incident.is_open:
            out.extend(engine.detach(state, gid, now, f"{incident_id} was {incident.status} by a person"))
            continue
        group = state.groups[gid]
        staff = [u for u in incident.updates if u.author != AUTHOR and not u.draft]
        if staff and (group.staff_at is None or staff[-1].created_at.timestamp() > group.staff_at):
            out.extend(engine.note_staff(state, gid, staff[-1].status, staff[-1].created_at.timestamp()))
    return out + _adopt_staff_incidents(app, engine, state, now)


def _adopt_staff_incidents(app: App, engine: Engine, state: EngineState, now: float) -> list[act.Action]:
    """Open incidents a person opened become groups, so alerts for their components join them."""
    out: list[act.Action] = []
    r = _redis(app)
    mapped = r.hgetall(key(app, "engine", "incident-groups"))
    for inc in app.store.list_incidents(open_only=True, limit=200):
        if inc.kind != "incident" or not inc.updates or inc.updates[0].author == AUTHOR:
            continue
        if mapped.get(inc.id) in state.groups:
            continue
        comps = inc.updates[-1].component_statuses or {c: ComponentStatus.MAJOR_OUTAGE.value for c in inc.components}
        gid, decisions = engine.adopt(state, inc.id, dict(comps), inc.status, now)
        with r.pipeline() as pipe:
            pipe.hset(key(app, "engine", "incidents"), gid, inc.id)
            pipe.hset(key(app, "engine", "incident-groups"), inc.id, gid)
            pipe.execute()
        out.extend(decisions)
    return out


# the name the crash tests and older callers know
_detach_closed_by_hand = _follow_staff


def _trim(app: App) -> None:
    """Drop events every consumer group of the stream has acknowledged, once it is long enough.

    The floor is the oldest entry any group still has pending, else the last one any group was
    given: nothing unread or unacknowledged is ever trimmed, whoever else reads the stream.
    """
    r = _redis(app)
    stream = stream_key(app)
    if r.xlen(stream) <= engine_settings(app).stream.trim_above:
        return
    floors = []
    for group in r.xinfo_groups(stream):
        pending = r.xpending(stream, group["name"])
        if pending["pending"]:
            floors.append(_id(pending["min"]))
        else:  # everything up to the last delivered entry is acknowledged: keep what follows it
            ms, seq = _id(group["last-delivered-id"])
            floors.append((ms, seq + 1))
    if floors:
        ms, seq = min(floors)
        r.xtrim(stream, minid=f"{ms}-{seq}", approximate=False)


def _id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _release(app: App, lock: Any) -> None:
    app.extras.pop("engine_lock", None)
    try:
        lock.release()
    except Exception:  # the lock expired under a very long run; the next run starts clean anyway
        log.warning("engine lock had expired before release")


class LockLost(Exception):
    """Our run outlived the engine lock and another worker may hold it now: stop before deciding more."""


def _hold(app: App) -> None:
    """Fencing by renewal: before every commit and every journal action, extend the lock only if it is
    still ours (redis-py's token check), else stop. A run can thus last as long as it keeps working,
    and a run that stalled past the lock's TTL never applies an action another worker may apply too."""
    lock = app.extras.get("engine_lock")
    if lock is None:
        return
    try:
        lock.reacquire()
    except Exception as exc:  # LockNotOwnedError, or Redis gone: either way we cannot prove we hold it
        raise LockLost(str(exc)) from exc


def _consume(app: App, max_events: int | None, consumer: str) -> int:
    settings = engine_settings(app)
    engine = build_engine(app)
    done = 0
    state: EngineState | None = None
    while max_events is None or done < max_events:
        count = settings.stream.batch if max_events is None else min(settings.stream.batch, max_events - done)
        entries = _read(app, consumer, count)
        if not entries:
            break
        state = state or load_state(app, cached=True)
        # a staff incident opened a minute ago must be known before its component's alert arrives
        actions: list[act.Action] = _adopt_staff_incidents(app, engine, state, app.clock.timestamp())
        ids = []
        for entry_id, fields in entries:
            ids.append(entry_id)
            try:
                event = AlertEvent.from_dict(json.loads(fields["event"]))
            except (KeyError, TypeError, ValueError) as exc:
                actions.append(
                    act.Decision(
                        None,
                        app.clock.timestamp(),
                        "ignored",
                        f"stream entry {entry_id} is not an AlertEvent: {exc}",
                    )
                )
                continue
            actions.extend(engine.handle(state, event, app.clock.timestamp()))
        _commit(app, state, actions, ids)
        _drain_journal(app)
        done += len(entries)
    return done


def _read(app: App, consumer: str, count: int) -> list[tuple[str, dict[str, str]]]:
    r = _redis(app)
    stream = stream_key(app)
    # 1. our own pending entries (we crashed after reading, before acknowledging)
    mine = r.xreadgroup(CONSUMER_GROUP, consumer, {stream: "0"}, count=count)
    if mine and mine[0][1]:
        return _live(app, mine[0][1])
    # 2. entries a dead consumer read and never acknowledged
    idle_ms = int(engine_settings(app).stream.claim_idle_seconds * 1000)
    claimed = r.xautoclaim(stream, CONSUMER_GROUP, consumer, idle_ms, "0-0", count=count)
    if claimed and claimed[1]:
        return _live(app, claimed[1])
    # 3. new entries
    fresh = r.xreadgroup(CONSUMER_GROUP, consumer, {stream: ">"}, count=count)
    return list(fresh[0][1]) if fresh else []


def _live(app: App, entries: list[Any]) -> list[tuple[str, dict[str, str]]]:
    """Pending entries whose message was trimmed away come back empty: acknowledge and skip them."""
    gone = [i for i, f in entries if not f]
    if gone:
        _redis(app).xack(stream_key(app), CONSUMER_GROUP, *gone)
    return [(i, f) for i, f in entries if f]


# ---- applying actions ------------------------------------------------------------------------------


def _drain_journal(app: App) -> None:
    """Apply the journal's actions in order; each is popped only once it took effect.

    A person may have acted first (resolved by hand, approved the draft): such a UsageError is logged
    and the action dropped. Any other error (Redis gone) propagates and the action stays at the head,
    to be retried by the next run; the attempt marker lets that retry see whether the first attempt
    had taken effect after all, so a crash never opens an incident or posts an update twice.
    """
    from notifier.errors import UsageError

    r = _redis(app)
    jkey = key(app, "engine", "journal")
    mkey = key(app, "engine", "journal-attempt")
    while True:
        _hold(app)
        raw = r.lindex(jkey, 0)
        if raw is None:
            return
        data = json.loads(raw)
        action = _ACTION_TYPES[data.pop("type")](**data)
        digest = hashlib.sha256(raw.encode()).hexdigest()
        marker = r.hgetall(mkey)
        retry = marker.get("digest") == digest
        if not retry:
            r.hset(mkey, mapping={"digest": digest, "at": app.clock.timestamp()})
        try:
            if not (retry and _already_applied(app, action, float(marker["at"]))):
                _apply(app, action)
                failpoint(f"engine_after_{type(action).__name__}")  # e.g. engine_after_OpenIncident
        except UsageError as exc:
            log.warning("engine action %s not applied: %s", type(action).__name__, exc)
            _record(
                app,
                act.Decision(
                    getattr(action, "group", None),
                    app.clock.timestamp(),
                    "not-applied",
                    f"{type(action).__name__} not applied: {exc}",
                    maintenance=getattr(action, "maintenance", None),
                ),
            )
        with r.pipeline() as pipe:
            pipe.lpop(jkey)
            pipe.delete(mkey)
            pipe.execute()


def _already_applied(app: App, action: act.Action, since: float) -> bool:
    """After a crash mid-action: did it take effect? Looks for what it would have written."""
    r = _redis(app)
    if isinstance(action, act.OpenIncident):
        if incident_of(app, action.group):
            return True
        mapped = set(r.hkeys(key(app, "engine", "incident-groups")))
        for inc in app.store.list_incidents(open_only=True, limit=50):
            first = inc.updates[0] if inc.updates else None
            if (
                inc.id not in mapped
                and inc.name == action.name
                and first is not None
                and first.author == AUTHOR
                and first.body == action.body
                and inc.created_at.timestamp() >= since - 1
            ):
                _remember_incident(app, action, inc)
                return True
        return False
    if isinstance(action, act.PostUpdate | act.ResolveIncident | act.MaintenanceUpdate):
        incident_id = (
            action.maintenance if isinstance(action, act.MaintenanceUpdate) else incident_of(app, action.group)
        )
        if incident_id is None:
            return False
        for upd in app.store.get_incident(incident_id).updates:
            if upd.author == AUTHOR and upd.body == action.body and upd.created_at.timestamp() >= since - 1:
                if isinstance(action, act.PostUpdate) and action.draft:
                    r.hset(key(app, "engine", "drafts"), action.ref, upd.id)
                return True
    return False


def _remember_incident(app: App, action: act.OpenIncident, inc: Any) -> None:
    with _redis(app).pipeline() as pipe:
        pipe.hset(key(app, "engine", "incidents"), action.group, inc.id)
        pipe.hset(key(app, "engine", "incident-groups"), inc.id, action.group)
        if action.draft:
            pipe.hset(key(app, "engine", "drafts"), action.ref, inc.updates[-1].id)
        pipe.execute()


def _record(app: App, decision: act.Decision) -> None:
    _redis(app).rpush(_log_key(app, decision), json.dumps(decision.to_dict()))


def incident_of(app: App, group: str) -> str | None:
    return _redis(app).hget(key(app, "engine", "incidents"), group)


def group_of(app: App, incident_id: str) -> str | None:
    return _redis(app).hget(key(app, "engine", "incident-groups"), incident_id)


def decisions_for(app: App, ident: str) -> list[dict[str, Any]]:
    """The decision log of an incident (via its engine group), a maintenance, a group, or ``_global``."""
    r = _redis(app)
    logs = [ident]
    group = group_of(app, ident)
    if group is not None:
        logs.insert(0, group)
    out: list[dict[str, Any]] = []
    for name in logs:
        out.extend(json.loads(x) for x in r.lrange(key(app, "engine", "decisions", name), 0, -1))
    return sorted(out, key=lambda d: d["at"])


def _apply(app: App, action: act.Action) -> None:
    from notifier.services import incidents  # the lead's services import the app; keep lazy

    r = _redis(app)
    if isinstance(action, act.OpenIncident):
        inc = incidents.open_incident(
            app,
            name=action.name,
            components=action.components,
            impact=action.impact,
            body=action.body,
            status=action.status,
            author=AUTHOR,
            channels=action.channels,
            draft=action.draft,
            names=action.names,
        )
        _remember_incident(app, action, inc)
    elif isinstance(action, act.PostUpdate | act.ResolveIncident):
        incident_id = incident_of(app, action.group)
        if incident_id is None:
            raise NotifierError(f"group {action.group} has no incident")
        if isinstance(action, act.ResolveIncident):
            incidents.resolve_incident(app, incident_id, body=action.body, author=AUTHOR, channels=action.channels)
            return
        upd = incidents.update_incident(
            app,
            incident_id,
            status=action.status,
            body=action.body,
            components=action.components,
            impact=action.impact,
            author=AUTHOR,
            channels=action.channels,
            draft=action.draft,
        )
        if action.draft:
            r.hset(key(app, "engine", "drafts"), action.ref, upd.id)
    elif isinstance(action, act.SetComponentStatus):
        incident_id = incident_of(app, action.group) if action.group else None
        app.store.set_component_status(action.component, ComponentStatus(action.status), app.clock.now(), incident_id)
    elif isinstance(action, act.ApproveDraft):
        update_id = r.hget(key(app, "engine", "drafts"), action.ref)
        if update_id is None:
            raise NotifierError(f"draft {action.ref} is unknown")
        incidents.approve_draft(app, update_id, approver="engine:auto-publish")
    elif isinstance(action, act.MaintenanceUpdate):
        incidents.update_incident(
            app,
            action.maintenance,
            status=action.status,
            body=action.body,
            components=action.components,
            author=AUTHOR,
            channels=action.channels,
        )
