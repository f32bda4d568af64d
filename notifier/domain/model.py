"""The domain model, in Statuspage's words so that its users and tools feel at home.

Pure data: no I/O, no clock reads, no framework imports. Times are timezone-aware UTC datetimes
supplied by the caller (a service that holds a clock). Everything serialises to plain JSON-able
dicts through ``to_dict``/``from_dict`` so that the Redis store, the Celery payloads (ids only) and
the status page JSON can share one shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class ComponentStatus(StrEnum):
    OPERATIONAL = "operational"
    DEGRADED_PERFORMANCE = "degraded_performance"
    PARTIAL_OUTAGE = "partial_outage"
    MAJOR_OUTAGE = "major_outage"
    UNDER_MAINTENANCE = "under_maintenance"

    @property
    def severity(self) -> int:
        """Higher is worse; maintenance ranks between degraded and partial outage for colouring."""
        return _COMPONENT_SEVERITY[self]


_COMPONENT_SEVERITY = {
    ComponentStatus.OPERATIONAL: 0,
    ComponentStatus.UNDER_MAINTENANCE: 1,
    ComponentStatus.DEGRADED_PERFORMANCE: 2,
    ComponentStatus.PARTIAL_OUTAGE: 3,
    ComponentStatus.MAJOR_OUTAGE: 4,
}


class Impact(StrEnum):
    NONE = "none"
    MINOR = "minor"
    MAJOR = "major"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return list(Impact).index(self)


_IMPACT_OF_STATUS = {  # Statuspage's own correspondence between component status and incident impact
    "operational": Impact.NONE,
    "under_maintenance": Impact.NONE,
    "degraded_performance": Impact.MINOR,
    "partial_outage": Impact.MAJOR,
    "major_outage": Impact.CRITICAL,
}


def impact_of(components: dict[str, str]) -> Impact:
    """The impact an incident has when its components are in these statuses (the worst one wins)."""
    return max((_IMPACT_OF_STATUS[s] for s in components.values()), key=lambda i: i.rank, default=Impact.NONE)


class IncidentStatus(StrEnum):
    INVESTIGATING = "investigating"
    IDENTIFIED = "identified"
    MONITORING = "monitoring"
    RESOLVED = "resolved"


class MaintenanceStatus(StrEnum):
    SCHEDULED = "scheduled"
    IN_PROGRESS = "in_progress"
    VERIFYING = "verifying"
    COMPLETED = "completed"


class DeliveryState(StrEnum):
    """States of one ledger row (one notice). See ``notifier.store.ledger`` for the transitions."""

    PENDING = "pending"
    CLAIMED = "claimed"
    POSTED = "posted"
    UNKNOWN = "unknown"
    FAILED = "failed"


# Key in a posted row's receipt extra: the channel refused the post as a duplicate and its id was never
# found, so the row is posted but unverified (shown as ``posted-unverified``).
UNVERIFIED = "unverified"


def utcnow() -> datetime:
    """Only for defaults at the edges (CLI, API); services take time from their injected clock."""
    return datetime.now(UTC)


def to_iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def from_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


@dataclass(frozen=True)
class Component:
    id: str
    name: str
    group: str | None = None
    description: str = ""
    position: int = 0


@dataclass(frozen=True)
class ComponentChange:
    """One entry of a component's status history (kept forever: uptime bars need 90+ days)."""

    component_id: str
    status: ComponentStatus
    at: datetime
    incident_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "component_id": self.component_id,
            "status": self.status.value,
            "at": to_iso(self.at),
            "incident_id": self.incident_id,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ComponentChange:
        at = from_iso(data["at"])
        assert at is not None
        return cls(data["component_id"], ComponentStatus(data["status"]), at, data.get("incident_id"))


@dataclass
class IncidentUpdate:
    """One message in an incident's public thread.

    ``body`` maps a language code (``en``, ``de``) to the text; channels pick their language and fall
    back to the page's default language.
    """

    id: str  # globally unique, e.g. "inc42.3"; a notice id is f"{update.id}:{channel}"
    incident_id: str
    number: int  # 1-based position in the incident's thread
    status: str  # IncidentStatus or MaintenanceStatus value
    body: dict[str, str]
    created_at: datetime
    author: str = "system"
    component_statuses: dict[str, str] = field(default_factory=dict)
    channels: list[str] | None = None  # None: every configured channel
    draft: bool = False  # a draft waits for a publisher's approval; it has no ledger rows yet
    approved_by: str | None = None
    op_id: str = ""  # the operation that wrote it: a re-run after a lost EXEC reply finds it, no duplicate

    @property
    def marker(self) -> str:
        """Short, unique per update; lets reconcile find a post and defeats duplicate-content checks."""
        return marker_for(self.incident_id, self.number)

    def text(self, language: str, fallback: str = "en") -> str:
        return self.body.get(language) or self.body.get(fallback) or next(iter(self.body.values()), "")

    def to_dict(self) -> dict[str, Any]:
        # written out, in the fields' order (the JSON is as before): ``asdict`` deep-copies every value
        # through its recursive copier, ~34 against ~4 µs here, and a broadcast needs this twice (issue 14)
        return {
            "id": self.id, "incident_id": self.incident_id, "number": self.number, "status": self.status,
            "body": dict(self.body), "created_at": to_iso(self.created_at), "author": self.author,
            "component_statuses": dict(self.component_statuses),
            "channels": list(self.channels) if self.channels is not None else None,
            "draft": self.draft, "approved_by": self.approved_by, "op_id": self.op_id,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IncidentUpdate:
        data = dict(data)
        data["created_at"] = from_iso(data["created_at"])
        return cls(**data)


@dataclass
class Incident:
    """One thread of public communication; also used for maintenances and one-off broadcasts.

    ``kind`` is ``incident``, ``maintenance`` or ``broadcast``. A broadcast is a one-update incident
    that never touches component status.
    """

    id: str  # "inc42", "mnt7", "brd3"
    name: str
    status: str
    impact: Impact
    created_at: datetime
    kind: str = "incident"
    components: list[str] = field(default_factory=list)
    updates: list[IncidentUpdate] = field(default_factory=list)
    resolved_at: datetime | None = None
    scheduled_for: datetime | None = None
    scheduled_until: datetime | None = None
    # the name in other languages (the engine writes one per page language); ``name`` is the fallback
    names: dict[str, str] = field(default_factory=dict)

    def title(self, language: str) -> str:
        """The incident's name in ``language``, else its ``name``."""
        return self.names.get(language) or self.name

    @property
    def is_open(self) -> bool:
        return self.status not in (IncidentStatus.RESOLVED.value, MaintenanceStatus.COMPLETED.value)

    @property
    def number(self) -> int:
        return int("".join(ch for ch in self.id if ch.isdigit()) or 0)

    @property
    def updated_at(self) -> datetime:
        return self.updates[-1].created_at if self.updates else self.created_at

    def update(self, update_id: str) -> IncidentUpdate:
        for upd in self.updates:
            if upd.id == update_id:
                return upd
        raise KeyError(update_id)

    def update_for_op(self, op: str | None) -> IncidentUpdate | None:
        """The update an idempotent write with this op made, if it is in this incident."""
        return next((u for u in self.updates if u.op_id == op), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "impact": self.impact.value,
            "created_at": to_iso(self.created_at),
            "kind": self.kind,
            "components": list(self.components),
            "updates": [u.to_dict() for u in self.updates],
            "resolved_at": to_iso(self.resolved_at),
            "scheduled_for": to_iso(self.scheduled_for),
            "scheduled_until": to_iso(self.scheduled_until),
            "names": dict(self.names),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Incident:
        created = from_iso(data["created_at"])
        assert created is not None
        return cls(
            id=data["id"],
            name=data["name"],
            status=data["status"],
            impact=Impact(data["impact"]),
            created_at=created,
            kind=data.get("kind", "incident"),
            components=list(data.get("components", [])),
            updates=[IncidentUpdate.from_dict(u) for u in data.get("updates", [])],
            resolved_at=from_iso(data.get("resolved_at")),
            scheduled_for=from_iso(data.get("scheduled_for")),
            scheduled_until=from_iso(data.get("scheduled_until")),
            names=dict(data.get("names") or {}),
        )


def marker_for(incident_id: str, number: int) -> str:
    """``#INC42·3``: a hashtag (so the whole incident is one click on X) plus the update number."""
    prefix = "".join(ch for ch in incident_id if ch.isalpha()).upper() or "N"
    digits = "".join(ch for ch in incident_id if ch.isdigit())
    return f"#{prefix}{digits}\u00b7{number}"


@dataclass(frozen=True)
class Notice:
    """One update as it leaves for one channel. What a channel renders and sends."""

    incident: Incident
    update: IncidentUpdate
    channel: str
    page_url: str = ""  # the incident's permanent status page URL ("" when there is no page)
    previous: dict[str, str] = field(default_factory=dict)  # thread ids so far on this channel

    @property
    def id(self) -> str:
        return notice_id(self.update.id, self.channel)

    @property
    def marker(self) -> str:
        return self.update.marker


def notice_id(update_id: str, channel: str) -> str:
    return f"{update_id}:{channel}"


@dataclass(frozen=True)
class Receipt:
    """What a channel returns once a post exists: enough to thread, edit, link and reconcile."""

    remote_id: str
    url: str = ""
    extra: dict[str, str] = field(default_factory=dict)  # e.g. {"thread_ids": "1,2,3"}

    def to_dict(self) -> dict[str, Any]:
        return {"remote_id": self.remote_id, "url": self.url, "extra": dict(self.extra)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Receipt:
        return cls(str(data["remote_id"]), data.get("url", ""), dict(data.get("extra") or {}))
