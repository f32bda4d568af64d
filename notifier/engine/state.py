"""The engine's state: plain, JSON-able dataclasses. Times are epoch seconds from the injected clock.

The service stores one JSON document per group, per component and per maintenance window, so a
storm touching one group rewrites one document. Indexes (alert -> group, group key -> group) are
derived on load rather than stored, so they can never disagree with the documents.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from notifier.domain.model import ComponentStatus


@dataclass
class Draft:
    ref: str
    channels: list[str]
    publish_at: float | None  # auto-publish deadline; None: wait for a person
    update_id: str | None = None  # filled in by the service once the draft exists
    done: bool = False


@dataclass
class Group:
    id: str
    key: str
    created: float
    last_alert_at: float
    # active alerts only: "source:fingerprint" -> {component id: status} (kept small: a storm has 10,000)
    alerts: dict[str, dict[str, str]] = field(default_factory=dict)
    load: dict[str, dict[str, int]] = field(default_factory=dict)  # component -> status -> alert count
    components: list[str] = field(default_factory=list)  # every component the group ever touched
    joined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    firing_since: float | None = None  # start of the current uninterrupted problem
    quiet_since: float | None = None  # all alerts resolved since then
    opened: bool = False
    incident_id: str | None = None  # filled in by the service
    told: dict[str, str] = field(default_factory=dict)  # channel -> "posted" | "draft"
    component_status: dict[str, str] = field(default_factory=dict)  # what the engine last wrote
    published: dict[str, Any] = field(default_factory=dict)  # {"impact": .., "components": {..}}
    last_public_at: float | None = None
    public_updates: int = 0
    held: bool = False  # a change waits for the update budget
    flapping: bool = False
    intermittent_sent: bool = False
    drafts: list[Draft] = field(default_factory=list)
    seq: int = 0
    # settling: the effective state last seen, since when it holds, since when it keeps changing
    seen: dict[str, str] = field(default_factory=dict)
    changed_at: float | None = None
    unsettled_since: float | None = None
    comp_quiet: dict[str, float] = field(default_factory=dict)  # component -> its own alerts cleared at
    monitoring_sent: bool = False
    staff_at: float | None = None  # staff posted in this incident (the engine leaves resolving to them)
    staff_status: str | None = None
    staff_hold_logged: bool = False
    adopted: bool = False  # the incident was opened by a person; the engine joined it
    maintenance_ids: list[str] = field(default_factory=list)  # windows that swallowed this group's alerts
    ever_effective: bool = False  # some alert counted outside maintenance

    def next_ref(self) -> str:
        self.seq += 1
        return f"{self.id}.{self.seq}"

    def add_alert(self, alert: str, components: dict[str, str]) -> None:
        self.remove_alert(alert)
        self.alerts[alert] = components
        for comp, status in components.items():
            per = self.load.setdefault(comp, {})
            per[status] = per.get(status, 0) + 1

    def remove_alert(self, alert: str) -> None:
        old = self.alerts.pop(alert, None)
        if old is None:
            return
        for comp, status in old.items():
            per = self.load[comp]
            per[status] -= 1
            if not per[status]:
                del per[status]
            if not per:
                del self.load[comp]

    def current(self) -> dict[str, str]:
        """Worst status per component over the active alerts (kept as counts: a storm stays O(1))."""
        return {comp: max(per, key=lambda s: ComponentStatus(s).severity) for comp, per in self.load.items()}

    def to_dict(self) -> dict[str, Any]:
        # shallow on purpose: asdict() deep-copies every alert of a storm on each save
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["drafts"] = [asdict(d) for d in self.drafts]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Group:
        data = dict(data)
        data["drafts"] = [Draft(**d) for d in data.get("drafts", [])]
        return cls(**data)


@dataclass
class ComponentFlap:
    id: str
    problem: bool = False
    changes: list[float] = field(default_factory=list)
    flapping: bool = False
    score: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ComponentFlap:
        return cls(**data)


@dataclass
class Window:
    """A maintenance window; ``id`` is the maintenance incident's id."""

    id: str
    name: str
    components: list[str]
    start: float
    end: float
    announce: list[str]  # any of "before", "start", "end"
    state: str = "scheduled"  # scheduled | in_progress | completed | cancelled
    reminded: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Window:
        return cls(**data)


@dataclass
class EngineState:
    groups: dict[str, Group] = field(default_factory=dict)
    components: dict[str, ComponentFlap] = field(default_factory=dict)
    windows: dict[str, Window] = field(default_factory=dict)
    next_id: int = 1
    # bookkeeping for the service: what to write back and what to delete
    touched: set[str] = field(default_factory=set)  # "group:<id>", "component:<id>", "window:<id>"
    closed: list[str] = field(default_factory=list)
    alert_index: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)

    def reindex(self) -> None:
        self.alert_index = {a: g.id for g in self.groups.values() for a in g.alerts}
        self.keys = {g.key: g.id for g in self.groups.values()}

    def problem_components(self) -> set[str]:
        return {c for g in self.groups.values() for c in g.load}

    def component(self, comp: str) -> ComponentFlap:
        if comp not in self.components:
            self.components[comp] = ComponentFlap(comp)
        return self.components[comp]

    def running_maintenance(self, comp: str) -> Window | None:
        for win in self.windows.values():
            if win.state == "in_progress" and comp in win.components:
                return win
        return None
