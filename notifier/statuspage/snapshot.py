"""The status page's input: one immutable snapshot of everything the page shows.

``build_site`` renders from a ``Snapshot`` only, so tests build one by hand and the generator stays
pure. ``load_snapshot`` is the one place that reads the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo

from notifier.domain.model import ComponentChange, ComponentStatus, Incident

if TYPE_CHECKING:
    from notifier.clock import Clock
    from notifier.config import ComponentSettings, PageSettings

HISTORY_DAYS = 90


@dataclass(frozen=True)
class ProbeDay:
    """One calendar day (page time zone) of a component's probe runs, every location counted."""

    day: date
    runs: int = 0
    failed: int = 0
    slow: int = 0
    answered: int = 0  # runs that got an answer (a latency)
    mean_ms: float | None = None
    max_ms: float | None = None


@dataclass(frozen=True)
class ComponentProbes:
    """What the page shows of one component's probes: days for the bars, recent runs for the sparkline."""

    probe: str  # the probe whose response times the sparkline shows (the component's first)
    days: dict[date, ProbeDay] = field(default_factory=dict)
    recent_ms: list[float | None] = field(default_factory=list)  # oldest first; None: the run failed
    recent_from: float | None = None  # unix seconds of the first and last of them
    recent_to: float | None = None


class ProbeResultsReader(Protocol):
    """Where the page's probe results come from (``notifier.probes.history.PageProbeResults`` in the app)."""

    def read(self, component_ids: list[str], first: date, last: date) -> dict[str, ComponentProbes]:
        """Per component with probes: its days from ``first`` to ``last`` and its recent runs."""
        ...


@dataclass(frozen=True)
class Snapshot:
    page: PageSettings
    components: list[ComponentSettings]
    statuses: dict[str, ComponentStatus]
    history: dict[str, list[ComponentChange]]  # component id -> changes, oldest first
    incidents: list[Incident]  # incidents, maintenances and broadcasts, any order
    extra: dict[str, Any] = field(default_factory=dict)
    # component id -> its probe results; filled only when page.probe_results is on
    probe_results: dict[str, ComponentProbes] = field(default_factory=dict)

    def status_of(self, component_id: str) -> ComponentStatus:
        return self.statuses.get(component_id, ComponentStatus.OPERATIONAL)


def public_incident(incident: Incident, channel: str | None = None) -> Incident | None:
    """The incident as the public may see it: drafts and updates aimed elsewhere left out.

    None when nothing of it is public yet (its only update still waits for approval).
    """
    updates = [
        u
        for u in incident.updates
        if not (u.draft and not u.approved_by) and (channel is None or u.channels is None or channel in u.channels)
    ]
    if incident.updates and not updates:
        return None
    if len(updates) == len(incident.updates):
        return incident
    clone = Incident.from_dict(incident.to_dict())
    clone.updates = [u for u in clone.updates if any(u.id == p.id for p in updates)]
    if updates:
        clone.status = updates[-1].status
    return clone


def load_snapshot(
    store: Any,
    page: PageSettings,
    components: list[ComponentSettings],
    now: datetime,
    channel: str | None = None,
    history_days: int = HISTORY_DAYS,
    probes: ProbeResultsReader | None = None,
) -> Snapshot:
    """Read incidents, statuses and history from ``store`` (a RedisStore) into a Snapshot.

    Hidden (internal) components are left out: the page never shows or names them."""
    components = [c for c in components if not c.hidden]
    ids = [c.id for c in components]
    statuses = store.component_statuses(ids) if ids else {}
    since = now - timedelta(days=history_days + 1)
    history = {cid: store.component_history(cid, since=since) for cid in ids}
    incidents = []
    for incident in store.list_incidents():
        visible = public_incident(incident, channel)
        if visible is not None:
            incidents.append(visible)
    results = {}
    if page.probe_results and probes is not None and ids:
        today = now.astimezone(page_zone(page)).date()
        results = probes.read(ids, today - timedelta(days=history_days - 1), today)
    return Snapshot(page=page, components=list(components), statuses=statuses, history=history, incidents=incidents,
                    probe_results=results)


def page_zone(page: PageSettings) -> Any:
    """The page's time zone; UTC when its name is unknown (as the generator does)."""
    try:
        return ZoneInfo(page.time_zone)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


class SnapshotReader(Protocol):
    """What the statuspage channel reads its input from."""

    def read(self, channel: str | None = None) -> Snapshot:
        """Everything the page shows now, as ``channel`` may show it (None: every public update)."""
        ...


class StoreSnapshots:
    """The SnapshotReader of the app: ``load_snapshot`` from the store, at the clock's now."""

    def __init__(self, store: Any, page: PageSettings, components: list[ComponentSettings], clock: Clock,
                 probes: ProbeResultsReader | None = None) -> None:
        self.store = store
        self.page = page
        self.components = components
        self.clock = clock
        self.probes = probes

    def read(self, channel: str | None = None) -> Snapshot:
        return load_snapshot(self.store, self.page, self.components, self.clock.now(), channel=channel,
                             probes=self.probes)
