"""The ``engine:`` section of the YAML configuration, typed.

``Settings.engine`` stays a plain dict in ``notifier/config.py`` (each part validates its own section);
``check_engine`` validates it here and reports problems with ``engine.<...>`` key paths, including the
cross-checks a lone model cannot do (routes naming unknown components, unknown channels).
See docs/engine.md for every key with its default.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from notifier.domain.model import ComponentStatus
from notifier.errors import ConfigProblem


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RouteSettings(_Strict):
    """One label matcher: every ``match`` label equal AND every ``match_re`` label fully matching."""

    name: str | None = None
    match: dict[str, str] = {}
    match_re: dict[str, str] = {}
    components: list[str] = Field(min_length=1)
    # Overrides the severity mapping for alerts this route matches
    status: ComponentStatus | None = None

    @field_validator("match_re")
    @classmethod
    def _compiles(cls, value: dict[str, str]) -> dict[str, str]:
        for label, pattern in value.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"label {label!r}: bad regular expression: {exc}") from exc
        return value

    def matches(self, labels: dict[str, str]) -> bool:
        for key, want in self.match.items():
            if labels.get(key) != want:
                return False
        return all(re.fullmatch(p, labels.get(k, "")) for k, p in self.match_re.items())


class RoutingSettings(_Strict):
    mode: Literal["first", "all"] = "first"
    # An alert carrying this label with a configured component id goes straight to that component
    component_label: str | None = "component"
    routes: list[RouteSettings] = []


class SeveritySettings(_Strict):
    map: dict[str, ComponentStatus] = {
        "critical": ComponentStatus.MAJOR_OUTAGE,
        "error": ComponentStatus.PARTIAL_OUTAGE,
        "major": ComponentStatus.PARTIAL_OUTAGE,
        "warning": ComponentStatus.DEGRADED_PERFORMANCE,
        "minor": ComponentStatus.DEGRADED_PERFORMANCE,
        "info": ComponentStatus.DEGRADED_PERFORMANCE,
    }
    default: ComponentStatus = ComponentStatus.PARTIAL_OUTAGE

    @field_validator("map")
    @classmethod
    def _lower(cls, value: dict[str, ComponentStatus]) -> dict[str, ComponentStatus]:
        return {k.lower(): v for k, v in value.items()}


class GroupingSettings(_Strict):
    window_seconds: float = Field(300, ge=0)
    # related components: "component" = the same component only; "group" = same component group too
    related: Literal["component", "group"] = "group"


class ConfirmSettings(_Strict):
    seconds: float = Field(180, ge=0, description="a problem must last this long before any post")
    component_status_seconds: float = Field(60, ge=0, description="when component status changes")


class ResolveSettings(_Strict):
    seconds: float = Field(300, ge=0, description="quiet period before an incident resolves")
    # a component whose own alerts all cleared goes back to operational on the page after this
    component_seconds: float = Field(120, ge=0, description="per-component quiet period")
    # once staff posted in an incident, the engine leaves it in monitoring for a person to resolve;
    # it resolves it itself only after this long without alerts (None: never)
    staff_auto_resolve_seconds: float | None = Field(6 * 3600, ge=0)


class SettleSettings(_Strict):
    # changes within this window become one update; a post describes a state that held this long
    seconds: float = Field(30, ge=0, description="a state must hold this long before it is posted")
    # a state that keeps changing is posted anyway once it has been unsettled this long
    max_wait_seconds: float = Field(300, gt=0)


class FlapSettings(_Strict):
    enabled: bool = True
    window_seconds: float = Field(3600, gt=0, description="state changes older than this are forgotten")
    max_changes: int = Field(20, ge=2, description="the score counts at most this many recent changes")
    high: float = Field(40, gt=0, le=100, description="percent: start flapping at or above")
    low: float = Field(20, ge=0, le=100, description="percent: stop flapping below")
    open_incident: bool = True

    @model_validator(mode="after")
    def _hysteresis(self) -> FlapSettings:
        if self.low >= self.high:
            raise ValueError("flap.low must be below flap.high (hysteresis)")
        return self


class BudgetSettings(_Strict):
    interval_seconds: float = Field(900, ge=0, description="at most one routine update per interval")


class ChannelEngineSettings(_Strict):
    confirm_seconds: float | None = Field(None, ge=0, description="overrides confirm.seconds here")


class MaintenanceSettings(_Strict):
    remind_before_minutes: float = Field(60, gt=0)


class StreamSettings(_Strict):
    batch: int = Field(500, ge=1, le=10000)
    lock_seconds: float = Field(60, gt=0)
    # Reads happen under the engine lock, and a run that lost the lock stops before committing, so another
    # consumer's pending entries belong to a run that ended: take them over at once, keeping event order.
    claim_idle_seconds: float = Field(0, ge=0, description="XAUTOCLAIM entries idle this long")
    trim_above: int = Field(10000, ge=0, description="drop acknowledged events once the stream is longer")


class EngineSettings(_Strict):
    enabled: bool = True
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    severity: SeveritySettings = Field(default_factory=SeveritySettings)
    grouping: GroupingSettings = GroupingSettings()  # type: ignore[call-arg]
    confirm: ConfirmSettings = ConfirmSettings()  # type: ignore[call-arg]
    resolve: ResolveSettings = ResolveSettings()  # type: ignore[call-arg]
    settle: SettleSettings = SettleSettings()  # type: ignore[call-arg]
    # seconds between the beat's engine ticks (the settle, confirm and resolve timers' resolution)
    tick_seconds: float = Field(5, gt=0, le=60)
    flap: FlapSettings = FlapSettings()  # type: ignore[call-arg]
    budget: BudgetSettings = BudgetSettings()  # type: ignore[call-arg]
    channels: dict[str, ChannelEngineSettings] = {}
    maintenance: MaintenanceSettings = MaintenanceSettings()  # type: ignore[call-arg]
    stream: StreamSettings = StreamSettings()  # type: ignore[call-arg]
    # how many alerts per group are logged one by one; the rest are counted per reason
    decision_detail_limit: int = Field(50, ge=0)

    def confirm_for(self, channel: str) -> float:
        override = self.channels.get(channel)
        if override is not None and override.confirm_seconds is not None:
            return override.confirm_seconds
        return self.confirm.seconds


def parse_engine(raw: dict[str, Any] | None) -> EngineSettings:
    """Validate without cross-checks (raises pydantic.ValidationError)."""
    return EngineSettings.model_validate(raw or {})


def check_engine(
    raw: dict[str, Any] | None,
    component_ids: set[str],
    channel_names: set[str],
    lines: dict[tuple[str, ...], int] | None = None,
) -> list[ConfigProblem]:
    """Every problem of the ``engine:`` section, each with its ``engine.<...>`` key path."""
    lines = lines or {}

    def line(path: tuple[str, ...]) -> int | None:
        for cut in range(len(path), 0, -1):
            if path[:cut] in lines:
                return lines[path[:cut]]
        return None

    problems: list[ConfigProblem] = []
    try:
        parse_engine(raw)
    except ValidationError as exc:
        for err in exc.errors():
            path = ("engine", *(str(p) for p in err["loc"]))
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown key (check its spelling against docs/engine.md)"
            problems.append(ConfigProblem(".".join(path), msg, line(path)))
    # cross-checks read the raw section, so they are reported even when other keys are broken
    section: dict[str, Any] = raw if isinstance(raw, dict) else {}
    routing = _mapping(section.get("routing"))
    found = routing.get("routes")
    routes: list[Any] = found if isinstance(found, list) else []
    for i, route in enumerate(routes):
        comps = route.get("components") if isinstance(route, dict) else None
        for j, comp in enumerate(comps if isinstance(comps, list) else []):
            if comp not in component_ids:
                path = ("engine", "routing", "routes", str(i), "components", str(j))
                problems.append(ConfigProblem(".".join(path), f"unknown component {comp!r}", line(path)))
    for name in _mapping(section.get("channels")):
        if name not in channel_names:
            path = ("engine", "channels", str(name))
            problems.append(ConfigProblem(".".join(path), f"no channel named {name!r}", line(path)))
    return problems


def check_timers(
    raw: dict[str, Any] | None, heartbeat_seconds: float, stale_after_minutes: float
) -> list[ConfigProblem]:
    """The beat's intervals against each other and the delays they drive (run on a valid config)."""
    try:
        settings = parse_engine(raw)
    except ValidationError:
        return []  # already reported by check_engine
    problems: list[ConfigProblem] = []
    tick = settings.tick_seconds
    if settings.settle.seconds and tick > settings.settle.seconds:
        problems.append(ConfigProblem(
            "engine.tick_seconds",
            f"{tick:g}s is longer than engine.settle.seconds ({settings.settle.seconds:g}s): a settled state "
            "would wait for the next tick; lower tick_seconds or raise settle.seconds", None))
    if heartbeat_seconds < tick:
        problems.append(ConfigProblem(
            "page.heartbeat_seconds",
            f"{heartbeat_seconds:g}s is shorter than engine.tick_seconds ({tick:g}s): the page would be "
            "republished more often than anything can change it; raise heartbeat_seconds", None))
    if heartbeat_seconds >= stale_after_minutes * 60:
        problems.append(ConfigProblem(
            "page.heartbeat_seconds",
            f"{heartbeat_seconds:g}s is not below page.stale_after_minutes ({stale_after_minutes:g} min): "
            "visitors would see the stale warning while all is well; lower heartbeat_seconds", None))
    return problems


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
