"""Use-cases for incidents, maintenances and broadcasts: the functions the CLI, the API, the console
and the incident engine all call.

Each published update is written in one store transaction (``commit_update``) together with its
component status changes, one ledger row per channel and, when the broker is the store's Redis (the
shipped setup), the task that hands them to the workers (``Dispatcher.outbox``). Otherwise the task
is published after the commit, and a crash between the two loses nothing: the beat sweeper enqueues
every due row the workers have not picked up.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from notifier import limits
from notifier.app import App
from notifier.channels.base import Rendering
from notifier.domain.model import (
    ComponentChange,
    ComponentStatus,
    DeliveryState,
    Impact,
    Incident,
    IncidentStatus,
    IncidentUpdate,
    MaintenanceStatus,
    Notice,
    impact_of,
    notice_id,
)
from notifier.errors import NotFound, UsageError
from notifier.ports import NewNotice, UpdateCommit
from notifier.services import idempotent

KINDS = {"incident": "inc", "maintenance": "mnt", "broadcast": "brd"}


# ---- validation ------------------------------------------------------------------------------------
def _field_error(field: str, message: str) -> UsageError:
    exc = UsageError(f"{field}: {message}")
    exc.field = field  # type: ignore[attr-defined]  # the API answers 422 naming it
    return exc


def _text(value: str, field: str, limit: int) -> str:
    """The one check every stored text passes, whichever entry point it came through."""
    if not limits.valid_unicode(value):
        raise _field_error(limits.printable(field), "not valid Unicode (a lone surrogate or undecodable bytes)")
    if len(value) > limit:
        raise _field_error(field, f"at most {limit} characters (this one has {len(value)})")
    return value


def _body(body: Mapping[str, str] | str | None) -> dict[str, str]:
    if isinstance(body, str):
        body = {"en": body}
    body = body or {}
    if len(body) > limits.MAX_LANGUAGES:
        raise _field_error("body", f"at most {limits.MAX_LANGUAGES} languages")
    cleaned = {_text(lang, "body", limits.MAX_ID): _text(text, f"body.{lang}", limits.MAX_TEXT).strip()
               for lang, text in body.items() if text and text.strip()}
    if not cleaned:
        raise UsageError("the message is empty: give the update text (CLI: --message, and --message-de for German)")
    return cleaned


def _components(app: App, components: Mapping[str, str] | Iterable[str] | None, default: str) -> dict[str, str]:
    if components is None:
        return {}
    pairs = components.items() if isinstance(components, Mapping) else ((c, default) for c in components)
    known = {c.id for c in app.settings.components}
    out: dict[str, str] = {}
    for comp_id, status in pairs:
        if comp_id not in known:
            choices = ", ".join(sorted(known)) or "(none configured: add them under components:)"
            raise UsageError(f"unknown component {comp_id!r}; known components: {choices}")
        try:
            out[comp_id] = ComponentStatus(status).value
        except ValueError:
            choices = ", ".join(s.value for s in ComponentStatus)
            raise UsageError(f"unknown component status {status!r} for {comp_id}; choose one of: {choices}") from None
    return out


def _channels(app: App, channels: Iterable[str] | None) -> list[str] | None:
    if channels is None:
        return None
    chosen = list(dict.fromkeys(channels))
    for name in chosen:
        if name not in app.channels:
            known = ", ".join(sorted(app.channels)) or "(none enabled)"
            raise UsageError(f"unknown channel {name!r}; enabled channels: {known}")
    return chosen


def _status(kind: str, status: str) -> str:
    allowed = [s.value for s in (MaintenanceStatus if kind == "maintenance" else IncidentStatus)]
    if kind == "broadcast":
        allowed = ["broadcast"]
    if status not in allowed:
        raise UsageError(f"unknown {kind} status {status!r}; choose one of: {', '.join(allowed)}")
    return status


def _impact(impact: str | Impact) -> Impact:
    try:
        return Impact(impact)
    except ValueError:
        raise UsageError(f"unknown impact {impact!r}; choose one of: {', '.join(i.value for i in Impact)}") from None


# ---- writing ---------------------------------------------------------------------------------------
def _commit(
    app: App, incident_id: str | None, make: Any, new: Incident | None = None,
    also: tuple[list[str], Callable[[Incident], list[Incident]]] | None = None,
) -> tuple[Incident, IncidentUpdate]:
    """Append the update ``make(incident)`` returns, atomically with its status changes and ledger rows.

    ``new``: an incident not stored yet; it is written in the same transaction as its first update.
    ``also``: (ids, change): the incidents with these ids are watched, and the documents
    ``change(incident)`` returns are written in the same transaction (a merge's target).
    """
    now = app.clock.now()
    deadline = now.timestamp() + app.settings.delivery.deadline_hours * 3600
    keyed = idempotent.current_op.get()  # a staff API Idempotency-Key: this write may have happened
    op = keyed or secrets.token_hex(8)
    record = idempotent.current_record.get() if keyed else None
    if record is not None and record.claim is not None and not record.reserved:
        record.claim()  # the gate left the key to the route (answer_in_commit), which did not take it: now
    answers: list[idempotent.Answer] = []  # the answer this commit keeps (prepare's last run)
    fingerprint = record.fingerprint if record is not None else ""
    if keyed:  # the gate's reservation may have read it already, in the same round trip (claim)
        earlier = _earlier(app, op, record.op_landed if record is not None and record.op_read
                           else app.store.op_commit(op), fingerprint)
        if earlier is not None:
            return earlier

    def prepare(incident: Incident | None) -> UpdateCommit:
        incident = incident or new
        assert incident is not None
        done = incident.update_for_op(op)
        if done is not None:  # our EXEC went through before the connection dropped: nothing to redo
            return UpdateCommit(incident, done, already=True)
        update = make(incident)
        update.op_id = op
        commit = UpdateCommit(incident, update, also=also[1](incident) if also else [])
        if keyed:  # in the write's own transaction, so a retry after a crash finds it
            commit.op, commit.op_ttl, commit.op_fp = op, idempotent.KEEP_SECONDS, fingerprint
            if record is not None and record.render is not None:  # and the answer, so the API writes nothing more
                answers[:] = [record.render(incident, update)]
                commit.record = (record.key, idempotent.done_record(record.fingerprint, answers[0]))
        if not update.draft:
            current = app.store.component_statuses(update.component_statuses) if update.component_statuses else {}
            for comp_id, status in update.component_statuses.items():
                if current.get(comp_id) != ComponentStatus(status):
                    commit.changes.append(ComponentChange(comp_id, ComponentStatus(status), now, incident.id))
            for channel in _targets(app, update):
                commit.notices.append(NewNotice(
                    notice_id(update.id, channel), channel, update.id, incident.id, now.timestamp(), deadline
                ))
            if commit.notices:  # their task, in the same transaction: no publish after it, no window between
                commit.enqueue = app.dispatcher.outbox([(n.notice_id, n.channel) for n in commit.notices], app.store)
        return commit

    # The op is guarded in the transaction itself, so that at most one commit per op lands even when our
    # key's lease ran out before this point and a request with the key committed meanwhile (the look-up
    # above was too early to see it): the client's retry (its write is ours: answered with it), or a
    # request with another body (422). The existing incident's document would show only a retry's
    # write to the same incident, not one to another incident, nor whose body it was.
    guard = op if keyed else None
    commit = app.store.commit_update(incident_id, prepare, also_watch=also[0] if also else (), op=guard)
    idempotent.same_request(commit.op_fp if commit.already else "", fingerprint)
    if record is not None and answers and not commit.already:
        record.kept = answers[0]
    if not commit.update.draft and commit.enqueue is None:  # the broker is elsewhere, or an earlier try committed
        _enqueue(app, commit.update)
    return commit.incident, commit.update


def committed(app: App, op: str) -> tuple[Incident, IncidentUpdate] | None:
    """The write a staff request with this idempotency op committed (handed to the workers again), if any."""
    record = idempotent.current_record.get()
    return _earlier(app, op, app.store.op_commit(op), record.fingerprint if record is not None else "")


def _earlier(app: App, op: str, landed: tuple[str, str] | None, fingerprint: str,
             ) -> tuple[Incident, IncidentUpdate] | None:
    """The write an earlier request with this op committed (``landed``: its incident and the request's
    fingerprint), handed to the workers again (a notice that is already out is not sent twice: the
    ledger says so). Claimed (the gate answers 422) when that request had another body."""
    if not landed:
        return None
    incident_id, made_by = landed
    idempotent.same_request(made_by, fingerprint)
    incident = app.store.get_incident(incident_id)
    update = incident.update_for_op(op)
    if update is None:
        return None
    if not update.draft:
        _enqueue(app, update)
    return incident, update


def _targets(app: App, update: IncidentUpdate) -> list[str]:
    names = update.channels if update.channels is not None else list(app.channels)
    return [n for n in names if n in app.channels]


def _enqueue(app: App, update: IncidentUpdate) -> None:
    """All of the update's notices in one hand-over (one broker round trip, not one per channel)."""
    app.dispatcher.deliver_many([(notice_id(update.id, channel), channel) for channel in _targets(app, update)])


def _new_update(
    app: App, incident: Incident, *, status: str, body: dict[str, str], author: str,
    components: dict[str, str], channels: list[str] | None, draft: bool,
) -> IncidentUpdate:
    number = len(incident.updates) + 1
    return IncidentUpdate(
        id=f"{incident.id}.{number}", incident_id=incident.id, number=number, status=status, body=body,
        created_at=app.clock.now(), author=author, component_statuses=components, channels=channels, draft=draft,
    )


def open_incident(
    app: App, *, name: str, components: Mapping[str, str] | Iterable[str] | None = None,
    impact: str | Impact | None = None, body: Mapping[str, str] | str, status: str | None = None,
    author: str = "staff", channels: Iterable[str] | None = None, draft: bool = False, kind: str = "incident",
    scheduled_for: datetime | None = None, scheduled_until: datetime | None = None,
    names: Mapping[str, str] | None = None,
) -> Incident:
    """Open an incident (or a maintenance, or a broadcast) with its first update, and publish it.

    Without ``impact`` it follows the worst component status (Statuspage's correspondence), and is
    minor when no component is named."""
    if kind not in KINDS:
        raise UsageError(f"unknown kind {kind!r}; choose one of: {', '.join(KINDS)}")
    if not name or not name.strip():
        raise UsageError("the incident needs a name (CLI: --name)")
    _text(name, "name", limits.MAX_NAME)
    default_status = {"incident": "investigating", "maintenance": "scheduled", "broadcast": "broadcast"}[kind]
    status = _status(kind, status or default_status)
    default_comp = "under_maintenance" if kind == "maintenance" else "major_outage"
    comps = _components(app, components, default_comp) if kind != "broadcast" else {}
    text = _body(body)
    chosen = _channels(app, channels)
    imp = _impact(impact) if impact is not None else (impact_of(comps) if comps else Impact.MINOR)
    incident_id = app.store.next_id(KINDS[kind])
    incident = Incident(
        id=incident_id, name=name.strip(), status=status, impact=imp, created_at=app.clock.now(), kind=kind,
        components=list(comps), scheduled_for=scheduled_for, scheduled_until=scheduled_until,
        names={lang: n.strip() for lang, n in (names or {}).items() if n and n.strip()},
    )
    def make(inc: Incident) -> IncidentUpdate:
        # A scheduled maintenance does not change component status until it starts.
        applied = comps if not (kind == "maintenance" and status == "scheduled") else {}
        upd = _new_update(app, inc, status=status, body=text, author=author, components=applied,
                          channels=chosen, draft=draft)
        inc.updates.append(upd)
        return upd

    incident, _ = _commit(app, None, make, new=incident)
    return incident


def update_incident(
    app: App, incident_id: str, *, status: str | None = None, body: Mapping[str, str] | str,
    components: Mapping[str, str] | Iterable[str] | None = None, impact: str | Impact | None = None,
    author: str = "staff", channels: Iterable[str] | None = None, draft: bool = False,
) -> IncidentUpdate:
    """Append an update to an open incident and publish it (or save it as a draft).

    A resolved (completed) incident still takes a closing note or postmortem: an update whose status is
    the final one (or not given) is appended without reopening it or touching any component."""
    make = _update_maker(app, status=status, body=body, components=components, impact=impact, author=author,
                         channels=channels, draft=draft)
    return _commit(app, incident_id, make)[1]


def close_into(app: App, source_id: str, into_id: str, *, body: Mapping[str, str] | str,
               author: str = "staff") -> IncidentUpdate:
    """A merge's one write: resolve ``source_id`` with ``body`` (no component changes), and in the same
    transaction (with the request's idempotency op) add its components to ``into_id``."""

    def join(source: Incident) -> list[Incident]:
        into = app.store.get_incident(into_id)  # read after the watch: a change underneath re-runs this
        added = [c for c in source.components if c not in into.components]
        into.components.extend(added)
        return [into] if added else []

    make = _update_maker(app, status="resolved", body=body, components={}, impact=None, author=author,
                         channels=None, draft=False)
    return _commit(app, source_id, make, also=([into_id], join))[1]


def _update_maker(
    app: App, *, status: str | None, body: Mapping[str, str] | str,
    components: Mapping[str, str] | Iterable[str] | None, impact: str | Impact | None,
    author: str, channels: Iterable[str] | None, draft: bool,
) -> Callable[[Incident], IncidentUpdate]:
    text = _body(body)
    chosen = _channels(app, channels)
    imp = _impact(impact) if impact is not None else None

    def make(inc: Incident) -> IncidentUpdate:
        closing_note = not inc.is_open
        if closing_note and status not in (None, inc.status):
            raise UsageError(f"{inc.id} is already {inc.status}: post a closing note (status {inc.status}), "
                             "or open a new incident")
        new_status = _status(inc.kind, status or inc.status)
        comps = {} if closing_note else _components(app, components, "major_outage")
        upd = _new_update(app, inc, status=new_status, body=text, author=author, components=comps,
                          channels=chosen, draft=draft)
        inc.updates.append(upd)
        if not draft:
            _apply(inc, upd, imp, app.clock.now())
        return upd

    return make


def _apply(inc: Incident, upd: IncidentUpdate, impact: Impact | None, now: datetime) -> None:
    inc.status = upd.status
    if impact is not None:
        inc.impact = impact
    for comp_id in upd.component_statuses:
        if comp_id not in inc.components:
            inc.components.append(comp_id)
    if not inc.is_open and inc.resolved_at is None:  # a closing note keeps the resolution time
        inc.resolved_at = now


def resolve_incident(
    app: App, incident_id: str, *, body: Mapping[str, str] | str, author: str = "staff",
    channels: Iterable[str] | None = None, draft: bool = False,
) -> IncidentUpdate:
    """Resolve (or complete, for a maintenance): every affected component goes back to operational."""
    incident = app.store.get_incident(incident_id)
    final = "completed" if incident.kind == "maintenance" else "resolved"
    # already resolved (by the engine, say): the words are a closing note; the components stay as they are
    comps = {c: "operational" for c in incident.components} if incident.is_open else None
    return update_incident(
        app, incident_id, status=final, body=body, author=author, channels=channels, draft=draft,
        components=comps,
    )


def broadcast(
    app: App, *, body: Mapping[str, str] | str, author: str = "staff", channels: Iterable[str] | None = None,
    name: str = "Notice", draft: bool = False,
) -> Incident:
    """A one-off notice on every (or the chosen) channel; it touches no component status."""
    return open_incident(app, name=name, body=body, author=author, channels=channels, kind="broadcast",
                         impact=Impact.NONE, draft=draft)


def find_update(app: App, update_id: str) -> tuple[Incident, IncidentUpdate]:
    incident_id = update_id.split(".", 1)[0]
    incident = app.store.get_incident(incident_id)
    try:
        return incident, incident.update(update_id)
    except KeyError:
        raise NotFound(f"no update {update_id!r} in {incident_id}") from None


def approve_draft(app: App, update_id: str, *, approver: str) -> IncidentUpdate:
    """Publish a draft: it becomes a normal update with ledger rows, delivered like any other."""
    incident_id, dot, number = update_id.partition(".")
    if not (incident_id and dot and number.isdigit() and incident_id.isalnum() and incident_id.isascii()):
        raise NotFound(f"no draft {limits.printable(update_id)[:60]!r}: an update id looks like inc42.3")

    def make(inc: Incident) -> IncidentUpdate:
        try:
            upd = inc.update(update_id)
        except KeyError:
            raise NotFound(f"no update {update_id!r} in {inc.id}") from None
        if not upd.draft:
            raise UsageError(f"{update_id} is not a draft (already published)")
        upd.draft = False
        upd.approved_by = approver
        upd.created_at = app.clock.now()
        _apply(inc, upd, None, app.clock.now())
        return upd

    return _commit(app, incident_id, make)[1]


def drafts(app: App) -> list[tuple[Incident, IncidentUpdate]]:
    return [(inc, u) for inc in app.store.list_incidents() for u in inc.updates if u.draft]


# ---- reading and rendering -------------------------------------------------------------------------
def notice_for(app: App, incident: Incident, update: IncidentUpdate, channel_name: str) -> Notice:
    """The notice for one channel, with the thread ids of the previous post on that channel."""
    previous: dict[str, str] = {}
    prior = predecessor(app, incident, update, channel_name, posted_only=True)
    if prior is not None:
        previous = {"remote_id": prior.remote_id, "url": prior.url, **prior.extra}
    page_url = app.settings.page.incident_url(incident.id) if incident.kind != "broadcast" else app.settings.page.url
    return Notice(incident=incident, update=update, channel=channel_name, page_url=page_url, previous=previous)


def predecessor(
    app: App, incident: Incident, update: IncidentUpdate, channel_name: str, posted_only: bool = False
) -> Any:
    """The ledger row of the latest earlier published update of this incident on this channel.

    ``posted_only``: skip rows that did not go out (failed), so a reply answers the last real post.
    """
    for earlier in reversed(incident.updates[: update.number - 1]):
        if earlier.draft:
            continue
        row = app.store.ledger.get(notice_id(earlier.id, channel_name))
        if row is not None and (not posted_only or row.state == DeliveryState.POSTED):
            return row
    return None


def preview(
    app: App, incident: Incident, update: IncidentUpdate, channels: Iterable[str] | None = None
) -> dict[str, Rendering]:
    """Each channel's exact rendering, from the channels' own render(): the preview never lies."""
    names = list(channels) if channels is not None else list(app.channels)
    return {n: app.channels[n].render(notice_for(app, incident, update, n)) for n in names if n in app.channels}


def draft_preview(
    app: App, *, name: str, body: Mapping[str, str] | str, status: str = "investigating",
    impact: str = "minor", kind: str = "incident", incident_id: str | None = None,
    channels: Iterable[str] | None = None,
) -> dict[str, Rendering]:
    """Render what an update would look like without storing anything (dry runs, console preview)."""
    text = _body(body)
    if incident_id:
        incident = app.store.get_incident(incident_id)
    else:
        # the id's letters make the marker: a broadcast previews as #BRD0·1, as it will be posted
        incident = Incident(id=f"{KINDS.get(kind, 'inc')}0", name=name or "(untitled)", status=status,
                            impact=_impact(impact), created_at=app.clock.now(), kind=kind)
    number = len(incident.updates) + 1
    upd = IncidentUpdate(id=f"{incident.id}.{number}", incident_id=incident.id, number=number, status=status,
                         body=text, created_at=app.clock.now())
    return preview(app, incident, upd, channels)
