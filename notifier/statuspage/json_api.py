"""Statuspage-compatible JSON (``api/v2/*.json``) so existing status page consumers work unchanged.

Field names and nesting follow Statuspage's public v2 API: a ``page`` object on every document,
``status.indicator`` in none/minor/major/critical, components (groups are components with
``group: true`` and the ids of their ``components``), incidents with ``incident_updates`` newest
first, maintenances with ``scheduled_for``/``scheduled_until`` and ``impact: "maintenance"``.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Any

from notifier.domain.model import ComponentStatus, Impact, Incident, MaintenanceStatus, to_iso
from notifier.statuspage.snapshot import Snapshot

LIST_LIMIT = 50  # Statuspage lists the 50 most recent incidents/maintenances

_INDICATOR_OF_STATUS = {
    ComponentStatus.OPERATIONAL: "none",
    ComponentStatus.UNDER_MAINTENANCE: "none",
    ComponentStatus.DEGRADED_PERFORMANCE: "minor",
    ComponentStatus.PARTIAL_OUTAGE: "major",
    ComponentStatus.MAJOR_OUTAGE: "critical",
}
_RANK = {"none": 0, "minor": 1, "major": 2, "critical": 3}
DESCRIPTIONS = {
    "none": "All Systems Operational",
    "minor": "Minor Service Outage",
    "major": "Partial System Outage",
    "critical": "Major System Outage",
}
MAINTENANCE_DESCRIPTION = "Service Under Maintenance"
ACTIVE_MAINTENANCE = (MaintenanceStatus.IN_PROGRESS.value, MaintenanceStatus.VERIFYING.value)


def page_indicator(snap: Snapshot) -> tuple[str, bool]:
    """(indicator, under_maintenance): worst of component states and open incidents' impact."""
    indicator = "none"
    for comp in snap.components:
        candidate = _INDICATOR_OF_STATUS[snap.status_of(comp.id)]
        if _RANK[candidate] > _RANK[indicator]:
            indicator = candidate
    for inc in snap.incidents:
        if inc.kind == "incident" and inc.is_open and _RANK[inc.impact.value] > _RANK[indicator]:
            indicator = inc.impact.value
    maintenance = any(snap.status_of(c.id) == ComponentStatus.UNDER_MAINTENANCE for c in snap.components) or any(
        i.kind == "maintenance" and i.status in ACTIVE_MAINTENANCE for i in snap.incidents
    )
    return indicator, maintenance


def group_id(name: str) -> str:
    """A stable id for a component group (Statuspage models a group as a component)."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "group"
    return f"group-{slug}-{hashlib.sha1(name.encode()).hexdigest()[:6]}"  # noqa: S324 - an id, not security


def newest_first(incidents: list[Incident]) -> list[Incident]:
    """Newest first; incidents created at the same instant by their number, highest first."""
    out = sorted(incidents, key=lambda i: i.created_at, reverse=True)
    # ``number`` parses the id; only a tie on created_at needs it (the same order as a (created_at, number) key)
    if any(a.created_at == b.created_at for a, b in zip(out, out[1:], strict=False)):
        return sorted(incidents, key=lambda i: (i.created_at, i.number), reverse=True)
    return out


class JsonApi:
    """Builds every document from one snapshot; ``files()`` maps relative path -> bytes."""

    def __init__(self, snap: Snapshot, now: datetime, indicator: tuple[str, bool] | None = None) -> None:
        """``indicator``: ``page_indicator(snap)`` when the caller has it already."""
        self.snap = snap
        self.now = now
        self._indicator = indicator
        self.language = snap.page.language
        self.by_id = {c.id: c for c in snap.components}
        self.incidents = newest_first([i for i in snap.incidents if i.kind == "incident"])
        self.maintenances = newest_first([i for i in snap.incidents if i.kind == "maintenance"])
        self._created: dict[str, str | None] = {}
        self._updated: dict[str, str | None] = {}
        for comp in snap.components:
            changes = snap.history.get(comp.id) or []
            self._created[comp.id] = to_iso(changes[0].at) if changes else to_iso(now)
            self._updated[comp.id] = to_iso(changes[-1].at) if changes else to_iso(now)

    # ---- objects ---------------------------------------------------------------------------------
    def page(self) -> dict[str, Any]:
        p = self.snap.page
        return {
            "id": p.id,
            "name": p.name,
            "url": p.url.rstrip("/"),
            "time_zone": p.time_zone,
            "updated_at": to_iso(self.now),
        }

    def status(self) -> dict[str, str]:
        indicator, maintenance = self._indicator or page_indicator(self.snap)
        description = DESCRIPTIONS[indicator]
        if indicator == "none" and maintenance:
            description = MAINTENANCE_DESCRIPTION
        return {"indicator": indicator, "description": description}

    def components(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        groups: dict[str, dict[str, Any]] = {}
        position = 0
        for comp in self.snap.components:
            position += 1
            gid = None
            if comp.group:
                gid = group_id(comp.group)
                if gid not in groups:
                    groups[gid] = {
                        "id": gid,
                        "name": comp.group,
                        "status": ComponentStatus.OPERATIONAL.value,
                        "created_at": self._created[comp.id],
                        "updated_at": self._updated[comp.id],
                        "position": position,
                        "description": None,
                        "showcase": False,
                        "start_date": None,
                        "group_id": None,
                        "page_id": self.snap.page.id,
                        "group": True,
                        "only_show_if_degraded": False,
                        "components": [],
                    }
                    out.append(groups[gid])
                    position += 1
                group = groups[gid]
                group["components"].append(comp.id)
                status = self.snap.status_of(comp.id)
                if status.severity > ComponentStatus(group["status"]).severity:
                    group["status"] = status.value
                group["updated_at"] = max(group["updated_at"] or "", self._updated[comp.id] or "")
            out.append(
                {
                    "id": comp.id,
                    "name": comp.name,
                    "status": self.snap.status_of(comp.id).value,
                    "created_at": self._created[comp.id],
                    "updated_at": self._updated[comp.id],
                    "position": position,
                    "description": comp.description or None,
                    "showcase": True,
                    "start_date": None,
                    "group_id": gid,
                    "page_id": self.snap.page.id,
                    "group": False,
                    "only_show_if_degraded": False,
                }
            )
        return out

    def _component_refs(self, ids: list[str]) -> list[dict[str, Any]]:
        refs = []
        for cid in ids:
            comp = self.by_id.get(cid)
            if comp is None:
                continue
            refs.append(
                {
                    "id": cid,
                    "name": comp.name,
                    "status": self.snap.status_of(cid).value,
                    "created_at": self._created[cid],
                    "updated_at": self._updated[cid],
                    "position": 0,
                    "description": comp.description or None,
                    "showcase": True,
                    "start_date": None,
                    "group_id": group_id(comp.group) if comp.group else None,
                    "page_id": self.snap.page.id,
                    "group": False,
                    "only_show_if_degraded": False,
                }
            )
        return refs

    def incident(self, inc: Incident) -> dict[str, Any]:
        updates = []
        for upd in reversed(inc.updates):  # Statuspage lists the newest update first
            updates.append(
                {
                    "id": upd.id,
                    "status": upd.status,
                    "body": upd.text(self.language, self.language),
                    "incident_id": inc.id,
                    "created_at": to_iso(upd.created_at),
                    "updated_at": to_iso(upd.created_at),
                    "display_at": to_iso(upd.created_at),
                    "affected_components": [
                        {"code": cid, "name": self.by_id[cid].name, "old_status": None, "new_status": status}
                        for cid, status in upd.component_statuses.items()
                        if cid in self.by_id
                    ]
                    or None,
                    "deliver_notifications": True,
                    "custom_tweet": None,
                    "tweet_id": None,
                }
            )
        monitoring = next((u.created_at for u in inc.updates if u.status == "monitoring"), None)
        data: dict[str, Any] = {
            "id": inc.id,
            "name": inc.name,
            "status": inc.status,
            "created_at": to_iso(inc.created_at),
            "updated_at": to_iso(inc.updated_at),
            "monitoring_at": to_iso(monitoring),
            "resolved_at": to_iso(inc.resolved_at),
            "impact": inc.impact.value if inc.kind == "incident" else "maintenance",
            "shortlink": self.snap.page.incident_url(inc.id),
            "started_at": to_iso(inc.created_at),
            "page_id": self.snap.page.id,
            "incident_updates": updates,
            "components": self._component_refs(inc.components),
        }
        if inc.kind == "maintenance":
            data["scheduled_for"] = to_iso(inc.scheduled_for)
            data["scheduled_until"] = to_iso(inc.scheduled_until)
            data["scheduled_remind_prior"] = False
            data["scheduled_reminded_at"] = None
            data["impact_override"] = inc.impact.value if inc.impact != Impact.NONE else None
            data["scheduled_auto_in_progress"] = False
            data["scheduled_auto_completed"] = False
        return data

    # ---- documents -------------------------------------------------------------------------------
    def upcoming(self) -> list[Incident]:
        return [m for m in self.maintenances if m.status == MaintenanceStatus.SCHEDULED.value]

    def active(self) -> list[Incident]:
        return [m for m in self.maintenances if m.status in ACTIVE_MAINTENANCE]

    def documents(self) -> dict[str, dict[str, Any]]:
        page = self.page()
        unresolved = [self.incident(i) for i in self.incidents if i.is_open]
        upcoming = [self.incident(m) for m in self.upcoming()]
        active = [self.incident(m) for m in self.active()]
        components = self.components()
        status = self.status()
        return {
            "summary.json": {
                "page": page,
                "components": components,
                "incidents": unresolved,
                "scheduled_maintenances": active + upcoming,
                "status": status,
            },
            "status.json": {"page": page, "status": status},
            "components.json": {"page": page, "components": components},
            "incidents.json": {
                "page": page,
                "incidents": [self.incident(i) for i in self.incidents[:LIST_LIMIT]],
            },
            "incidents/unresolved.json": {"page": page, "incidents": unresolved},
            "scheduled-maintenances.json": {
                "page": page,
                "scheduled_maintenances": [self.incident(m) for m in self.maintenances[:LIST_LIMIT]],
            },
            "scheduled-maintenances/upcoming.json": {"page": page, "scheduled_maintenances": upcoming},
            "scheduled-maintenances/active.json": {"page": page, "scheduled_maintenances": active},
        }

    def files(self) -> dict[str, bytes]:
        return {
            f"api/v2/{name}": json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
            for name, doc in self.documents().items()
        }
