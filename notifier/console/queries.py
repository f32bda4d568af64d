"""Read models for the console pages: what the dashboard and the timeline show, gathered from the store.

Only reads. Kept apart from the views so that a page handler stays a few lines.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from notifier.domain.model import ComponentStatus, Incident, IncidentUpdate, notice_id

STATE_LABELS = {
    "pending": "Pending",
    "claimed": "Sending",
    "posted": "Posted",
    "posted-unverified": "Posted, unverified",
    "unknown": "Unknown",
    "failed": "Failed",
}


@dataclass
class ComponentRow:
    id: str
    name: str
    group: str
    status: str


@dataclass
class UpdateView:
    update: IncidentUpdate
    deliveries: list[Any] = field(default_factory=list)  # LedgerRow, newest first per channel


@dataclass
class IncidentView:
    incident: Incident
    latest: UpdateView | None
    drafts: list[IncidentUpdate] = field(default_factory=list)


def components(app: Any) -> list[ComponentRow]:
    configured = app.settings.components
    states = app.store.component_statuses([c.id for c in configured]) if configured else {}
    return [
        ComponentRow(c.id, c.name, c.group or "", str(states.get(c.id, ComponentStatus.OPERATIONAL)))
        for c in configured
    ]


def deliveries(app: Any, updates: list[IncidentUpdate]) -> dict[str, list[Any]]:
    """Ledger rows of these updates by update id, in one pipelined round trip.

    Reads rows by their notice ids (update id x channel) instead of filtering the ledger's index, so a
    dashboard with many open incidents stays cheap however long the delivery history grows.
    """
    ledger = app.store.ledger
    wanted: list[tuple[str, str]] = []
    for update in updates:
        names = update.channels if update.channels is not None else list(app.channels)
        wanted.extend((update.id, notice_id(update.id, name)) for name in sorted(names))
    out: dict[str, list[Any]] = {u.id: [] for u in updates}
    if not wanted:
        return out
    for (update_id, _), row in zip(wanted, ledger.get_many([nid for _, nid in wanted]), strict=True):
        if row is not None:
            out[update_id].append(row)
    return out


def _incident_view(app: Any, incident: Incident) -> IncidentView:
    published = [u for u in incident.updates if not u.draft]
    latest = None
    if published:
        latest = UpdateView(published[-1], deliveries(app, published[-1:])[published[-1].id])
    return IncidentView(incident, latest, [u for u in incident.updates if u.draft])


def dashboard(app: Any) -> dict[str, Any]:
    """Components, open incidents with their delivery states, drafts, maintenance, recent history."""
    # Every open thread, however old (a long maintenance must not drop off the page); few recent others.
    current = app.store.list_incidents(open_only=True)
    open_incidents = [_incident_view(app, i) for i in current if i.kind == "incident"]
    maintenance = sorted(
        (_incident_view(app, i) for i in current if i.kind == "maintenance"),
        key=lambda v: (v.incident.scheduled_for or v.incident.created_at),
    )
    drafts = [(i, u) for i in current for u in i.updates if u.draft]
    recent = [i for i in app.store.list_incidents(limit=25) if not i.is_open or i.kind == "broadcast"][:10]
    return {
        "components": components(app),
        "open_incidents": open_incidents,
        "maintenance": maintenance,
        "drafts": drafts,
        "recent": recent,
    }


def decisions(app: Any, incident_id: str) -> list[dict[str, Any]] | None:
    """The incident engine's decision log for this incident (oldest first), or None without an engine.

    Entries are ``{"at": unix seconds, "kind": "joined"|"suppressed"|..., "message": ..., "alert": ...}``.
    """
    try:
        module = importlib.import_module("notifier.services.engine_runner")
    except ImportError:
        return None
    reader = getattr(module, "decisions_for", None)
    if reader is None:
        return None
    return [dict(d) for d in reader(app, incident_id)]


def timeline(app: Any, incident_id: str) -> dict[str, Any]:
    incident = app.store.get_incident(incident_id)
    rows = deliveries(app, [u for u in incident.updates if not u.draft])
    updates = [UpdateView(u, rows.get(u.id, [])) for u in reversed(incident.updates)]
    return {"incident": incident, "updates": updates, "decisions": decisions(app, incident_id)}
