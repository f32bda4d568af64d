"""Read models for the console pages: what the dashboard and the timeline show, gathered from the store.

Only reads. Kept apart from the views so that a page handler stays a few lines.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from notifier.domain.model import ComponentStatus, Incident, IncidentUpdate

STATE_LABELS = {
    "pending": "Pending",
    "claimed": "Sending",
    "posted": "Posted",
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


def deliveries_for(app: Any, update_id: str) -> list[Any]:
    rows = app.store.ledger.rows(update_id=update_id)
    return sorted(rows, key=lambda r: r.channel)


def _incident_view(app: Any, incident: Incident) -> IncidentView:
    published = [u for u in incident.updates if not u.draft]
    latest = UpdateView(published[-1], deliveries_for(app, published[-1].id)) if published else None
    return IncidentView(incident, latest, [u for u in incident.updates if u.draft])


def dashboard(app: Any) -> dict[str, Any]:
    """Components, open incidents with their delivery states, drafts, maintenance, recent history."""
    everything = app.store.list_incidents(limit=200)
    open_incidents = [_incident_view(app, i) for i in everything if i.is_open and i.kind == "incident"]
    maintenance = sorted(
        (_incident_view(app, i) for i in everything if i.is_open and i.kind == "maintenance"),
        key=lambda v: (v.incident.scheduled_for or v.incident.created_at),
    )
    drafts = [(i, u) for i in everything for u in i.updates if u.draft]
    recent = [i for i in everything if not (i.is_open and i.kind in ("incident", "maintenance"))][:10]
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
        module = importlib.import_module("notifier.services.engine")
    except ImportError:
        return None
    reader = getattr(module, "decisions_for", None)
    if reader is None:
        return None
    return [dict(d) for d in reader(app, incident_id)]


def timeline(app: Any, incident_id: str) -> dict[str, Any]:
    incident = app.store.get_incident(incident_id)
    updates = [UpdateView(u, deliveries_for(app, u.id)) for u in reversed(incident.updates)]
    return {"incident": incident, "updates": updates, "decisions": decisions(app, incident_id)}
