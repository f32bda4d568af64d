"""What the pure engine core asks the outside world to do.

The core never performs I/O: it returns a list of these, and ``notifier.services.engine`` applies them
in order through the incident services and the store. ``group`` is the engine's group id; the service
maps it to the incident id it got back when it applied ``OpenIncident``. ``ref`` names one public
update within a group so that a later ``ApproveDraft`` can find the draft the service created.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class OpenIncident:
    group: str
    ref: str
    name: str
    components: dict[str, str]
    impact: str
    body: dict[str, str]
    channels: list[str]
    draft: bool = False
    status: str = "investigating"
    names: dict[str, str] = field(default_factory=dict)  # the name per language


@dataclass(frozen=True)
class PostUpdate:
    group: str
    ref: str
    status: str
    body: dict[str, str]
    components: dict[str, str]
    impact: str
    channels: list[str]
    draft: bool = False
    reason: str = ""  # "catch-up", "change", "intermittent", "budget-flush"


@dataclass(frozen=True)
class ResolveIncident:
    group: str
    ref: str
    body: dict[str, str]
    channels: list[str]


@dataclass(frozen=True)
class SetComponentStatus:
    component: str
    status: str
    group: str | None = None


@dataclass(frozen=True)
class ApproveDraft:
    group: str
    ref: str


@dataclass(frozen=True)
class MaintenanceUpdate:
    maintenance: str  # the maintenance incident's id
    status: str  # MaintenanceStatus value
    body: dict[str, str]
    channels: list[str] | None  # None: every channel; []: status page record only
    components: dict[str, str] = field(default_factory=dict)  # status changes that go with it


@dataclass(frozen=True)
class Decision:
    """One line of the decision log: why something happened, or why it did not."""

    group: str | None  # None: not tied to a group (e.g. an unrouted alert)
    at: float
    kind: str  # joined, opened, suppressed, held, published, resolved, flapping, maintenance, ...
    message: str
    alert: str | None = None
    maintenance: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Action = (
    OpenIncident
    | PostUpdate
    | ResolveIncident
    | SetComponentStatus
    | ApproveDraft
    | MaintenanceUpdate
    | Decision
)

PUBLIC = (OpenIncident, PostUpdate, ResolveIncident)
