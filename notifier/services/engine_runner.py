"""Runs the incident engine: consumes the event stream, applies the core's actions, keeps its state.

It speaks only ports: ``app.store.events`` (the accepted alert events, ``EventStream``) and
``app.store.engine_state`` (documents, journal, maps, decision logs and the run lock,
``EngineStateRepository``); the Redis layout is documented in ``store/engine_state.py`` and
``store/events.py``.

One run, under the lock: finish any journal left by a crashed run; read a batch of events (our own
pending ones first, then entries a dead consumer left idle, then new ones); let the core decide; then
in ONE transaction (``EngineStateRepository.commit``) save the touched documents, append the
decisions, write the external actions to the journal and acknowledge the batch. Only then are the
journal's actions applied, one by one, each popped once done. So an event is acknowledged exactly
when its consequences are durably decided, and a crash repeats at most the one action that was in
flight.
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
from notifier.engine.state import EngineState
from notifier.errors import NotifierError, UsageError
from notifier.failpoints import failpoint
from notifier.ports import GLOBAL_LOG, EngineLock, EngineStateRepository, EventStream
from notifier.services import incidents

if TYPE_CHECKING:
    from notifier.app import App

log = logging.getLogger(__name__)
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


def _repo(app: App) -> EngineStateRepository:
    return app.store.engine_state


def _events(app: App) -> EventStream:
    return app.store.events


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def ensure_consumer_group(app: App) -> None:
    if app.extras.get("engine_group_ok"):
        return
    _events(app).ensure_group()
    app.extras["engine_group_ok"] = True


def engine_lock(app: App, wait: float = 0) -> EngineLock:
    """The engine lock. Workers do not wait for it (``wait=0``): whoever holds it is consuming, and
    re-checks the stream after releasing it, so nothing is left behind; a person's command waits."""
    return _repo(app).lock(engine_settings(app).stream.lock_seconds, wait)


def _undelivered(app: App) -> bool:
    """Did events arrive that our consumer group has not been given yet?"""
    return _events(app).undelivered()


# ---- state -----------------------------------------------------------------------------------------


def load_state(app: App, cached: bool = False) -> EngineState:
    """The engine's state from the store; with ``cached``, this process's copy if nothing changed since.

    Every commit bumps the repository's version under the lock, so an unchanged version proves the copy
    is current. The copy is taken out of the cache while in use and put back only by a successful
    commit: a run that failed half-way can never leave a half-applied state behind for the next run.
    """
    repo = _repo(app)
    if cached:
        version = repo.version()
        held = app.extras.pop("engine_state", None)
        if held is not None and held[0] == version:
            return held[1]
    return repo.load()


def _log_name(decision: act.Decision) -> str:
    return decision.group or decision.maintenance or GLOBAL_LOG


def _journal_entry(action: act.Action) -> str:
    return json.dumps({"type": type(action).__name__, **asdict(action)})


def commit_decided(app: App, state: EngineState, actions: list[act.Action], ack: list[str]) -> list[act.Action]:
    """Persist state, decisions, journal and acks atomically; return the external actions to apply."""
    external: list[act.Action] = [a for a in actions if not isinstance(a, act.Decision)]
    _hold(app)
    repo = _repo(app)
    decisions = [(_log_name(d), d.to_dict()) for d in actions if isinstance(d, act.Decision)]
    repo.commit(state, decisions, [_journal_entry(a) for a in external], ack, GLOBAL_LOG_CAP)
    app.extras["engine_state"] = (repo.version(), state)
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
        lock = engine_lock(app)
        if not lock.acquire(blocking=False):
            return done
        app.extras["engine_lock"] = lock
        try:
            drain_journal(app)
            left = None if max_events is None else max_events - done
            done += _consume(app, left, consumer or consumer_name())
        except LockLost as exc:
            log.warning("engine run stopped: lost the engine lock (%s); the holder carries on", exc)
            return done
        finally:
            release_lock(app, lock)
        # an event appended between our last read and the release found the lock taken and gave up
        if not _undelivered(app):
            break
    return done


def tick(app: App) -> None:
    """Advance the engine's timers (confirm, resolve, budget, maintenance, auto-publish); beat calls this."""
    if not engine_settings(app).enabled:
        return
    ensure_consumer_group(app)
    lock = engine_lock(app)
    if not lock.acquire(blocking=False):
        return  # a run is in progress; the next tick comes in a few seconds
    app.extras["engine_lock"] = lock
    try:
        drain_journal(app)
        _consume(app, None, consumer_name())  # events a lost wake-up left behind
        engine, state = build_engine(app), load_state(app, cached=True)
        now = app.clock.timestamp()
        actions = _follow_staff(app, engine, state, now) + engine.tick(state, now)
        _trim(app)
        if actions or state.touched or state.closed:
            commit_decided(app, state, actions, [])
        else:  # an idle tick writes nothing (Redis fsyncs every write)
            app.extras["engine_state"] = (_repo(app).version(), state)
        drain_journal(app)
    except LockLost as exc:
        log.warning("engine tick stopped: lost the engine lock (%s)", exc)
    finally:
        release_lock(app, lock)


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
    repo = _repo(app)
    mapped = repo.incident_groups()
    for inc in app.store.list_incidents(open_only=True, limit=200):
        if inc.kind != "incident" or not inc.updates or inc.updates[0].author == AUTHOR:
            continue
        if mapped.get(inc.id) in state.groups:
            continue
        comps = inc.updates[-1].component_statuses or {c: ComponentStatus.MAJOR_OUTAGE.value for c in inc.components}
        gid, decisions = engine.adopt(state, inc.id, dict(comps), inc.status, now)
        repo.link(gid, inc.id)
        out.extend(decisions)
    return out


# the name the crash tests and older callers know
_detach_closed_by_hand = _follow_staff


def _trim(app: App) -> None:
    """Drop events every consumer group of the stream has acknowledged, once it is long enough."""
    _events(app).trim(engine_settings(app).stream.trim_above)


def release_lock(app: App, lock: Any) -> None:
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
    idle_ms = int(settings.stream.claim_idle_seconds * 1000)
    while max_events is None or done < max_events:
        count = settings.stream.batch if max_events is None else min(settings.stream.batch, max_events - done)
        entries = _events(app).read(consumer, count, idle_ms)
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
        commit_decided(app, state, actions, ids)
        drain_journal(app)
        done += len(entries)
    return done


# ---- applying actions ------------------------------------------------------------------------------


def drain_journal(app: App) -> None:
    """Apply the journal's actions in order; each is popped only once it took effect.

    A person may have acted first (resolved by hand, approved the draft): such a UsageError is logged
    and the action dropped. Any other error (Redis gone) propagates and the action stays at the head,
    to be retried by the next run; the attempt marker lets that retry see whether the first attempt
    had taken effect after all, so a crash never opens an incident or posts an update twice.
    """
    repo = _repo(app)
    while True:
        _hold(app)
        raw = repo.journal_head()
        if raw is None:
            return
        data = json.loads(raw)
        action = _ACTION_TYPES[data.pop("type")](**data)
        digest = hashlib.sha256(raw.encode()).hexdigest()
        marker = repo.journal_attempt()
        retry = marker.get("digest") == digest
        if not retry:
            repo.mark_journal_attempt(digest, app.clock.timestamp())
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
        repo.pop_journal()


def _already_applied(app: App, action: act.Action, since: float) -> bool:
    """After a crash mid-action: did it take effect? Looks for what it would have written."""
    repo = _repo(app)
    if isinstance(action, act.OpenIncident):
        if incident_of(app, action.group):
            return True
        mapped = set(repo.incident_groups())
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
                    repo.remember_draft(action.ref, upd.id)
                return True
    return False


def _remember_incident(app: App, action: act.OpenIncident, inc: Any) -> None:
    _repo(app).link(action.group, inc.id, (action.ref, inc.updates[-1].id) if action.draft else None)


def _record(app: App, decision: act.Decision) -> None:
    _repo(app).record(_log_name(decision), decision.to_dict())


def incident_of(app: App, group: str) -> str | None:
    return _repo(app).incident_of(group)


def group_of(app: App, incident_id: str) -> str | None:
    return _repo(app).group_of(incident_id)


def decisions_for(app: App, ident: str) -> list[dict[str, Any]]:
    """The decision log of an incident (via its engine group), a maintenance, a group, or ``_global``."""
    repo = _repo(app)
    logs = [ident]
    group = group_of(app, ident)
    if group is not None:
        logs.insert(0, group)
    out: list[dict[str, Any]] = []
    for name in logs:
        out.extend(repo.decisions(name))
    return sorted(out, key=lambda d: d["at"])


def _apply(app: App, action: act.Action) -> None:
    repo = _repo(app)
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
            repo.remember_draft(action.ref, upd.id)
    elif isinstance(action, act.SetComponentStatus):
        incident_id = incident_of(app, action.group) if action.group else None
        app.store.set_component_status(action.component, ComponentStatus(action.status), app.clock.now(), incident_id)
    elif isinstance(action, act.ApproveDraft):
        update_id = repo.draft(action.ref)
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


# the names the tests and older callers know
_lock = engine_lock
_release = release_lock
_commit = commit_decided
_drain_journal = drain_journal
