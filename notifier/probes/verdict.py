"""Pure probe logic: results -> votes -> quorum -> alert events. No I/O, no clock of its own.

A location *votes* ``down`` after ``retries + 1`` failed runs in a row, ``slow`` after as many slow
(or failed) ones, and ``up`` at the first good run. The probe's state is the worst state that at least
``quorum`` fresh votes support (a down vote also supports slow). A state change emits events:

- entering ``down`` (or ``slow``): a firing event, fingerprint ``probe:<name>:down`` (``:slow``), whose
  ``starts_at`` is when the state began, so repeating it every run is a duplicate the event stream drops;
- leaving it: the resolved event of the same fingerprint, ``ends_at`` the time it ended.

Down and slow are separate alerts because their component statuses differ (``down_status`` and
``slow_status``, carried as the severity that the engine's ``severity.map`` turns into that status).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from notifier.domain.events import AlertEvent
from notifier.domain.model import ComponentStatus, from_iso, to_iso

SOURCE = "probe"
UP, SLOW, DOWN = "up", "slow", "down"
_RANK = {UP: 0, SLOW: 1, DOWN: 2}


@dataclass(frozen=True)
class Result:
    """What one run saw: ok is False for any failure; latency_ms is None when nothing answered."""

    ok: bool
    latency_ms: float | None
    detail: str  # one line a person reads: "HTTP 200, 12 ms, TLS 87 days left" / "connection refused"
    facts: dict[str, str] = field(default_factory=dict)  # status_code, banner, tls_days_left, addresses...

    def outcome(self, slow_ms: float | None) -> str:
        if not self.ok:
            return DOWN
        if slow_ms is not None and self.latency_ms is not None and self.latency_ms > slow_ms:
            return SLOW
        return UP


@dataclass
class LocationState:
    """One location's view of one probe, kept between runs."""

    vote: str = UP
    fails: int = 0  # consecutive failed runs
    slows: int = 0  # consecutive slow-or-failed runs
    last_run: float = 0.0  # unix seconds
    last_outcome: str = ""
    last_detail: str = ""
    last_latency_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> LocationState:
        if not data:
            return cls()
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


def observe(state: LocationState, result: Result, *, retries: int, slow_ms: float | None,
            at: float) -> LocationState:
    """The location's state after one more run (a new object; ``state`` is left alone)."""
    outcome = result.outcome(slow_ms)
    fails = state.fails + 1 if outcome == DOWN else 0
    slows = state.slows + 1 if outcome in (DOWN, SLOW) else 0
    if fails > retries:
        vote = DOWN
    elif slows > retries:
        vote = SLOW
    elif outcome == UP:
        vote = UP
    elif outcome == SLOW and state.vote == DOWN:
        vote = SLOW  # it answers again, slowly
    else:  # a bad run within the retries keeps the previous vote
        vote = state.vote
    return LocationState(vote, fails, slows, at, outcome, result.detail, result.latency_ms)


def tally(votes: dict[str, tuple[str, float]], *, quorum: int, fresh_after: float) -> str:
    """The state at least ``quorum`` locations support; votes older than ``fresh_after`` do not count.

    ``votes`` maps location -> (vote, unix time of the run behind it). A location that stopped probing
    (its worker is gone) neither keeps a component down nor holds it up.
    """
    counted = [vote for vote, when in votes.values() if when >= fresh_after]
    down = sum(1 for v in counted if v == DOWN)
    slow = sum(1 for v in counted if v in (DOWN, SLOW))
    if down >= quorum:
        return DOWN
    if slow >= quorum:
        return SLOW
    return UP


@dataclass
class ProbeState:
    """The probe's agreed state across locations, and since when (ISO time)."""

    state: str = UP
    since: str | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ProbeState:
        if not data:
            return cls()
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class Alerting:
    """What the events say about the probe: its component, statuses as severities, a label set."""

    name: str
    component: str
    kind: str
    target: str
    down_severity: str
    slow_severity: str
    component_label: str = "component"


def transition(previous: ProbeState, new_state: str, *, now: datetime, detail: str,
               alerting: Alerting) -> tuple[ProbeState, list[AlertEvent]]:
    """The next agreed state and the events that say so (firing again while unchanged: a duplicate)."""
    if new_state == previous.state:
        if new_state == UP:
            return previous, []
        since = from_iso(previous.since) or now
        return previous, [_event(alerting, new_state, "firing", since, now, None, previous.detail)]
    events: list[AlertEvent] = []
    if previous.state != UP:
        since = from_iso(previous.since) or now
        events.append(_event(alerting, previous.state, "resolved", since, now, now, detail))
    if new_state != UP:
        events.append(_event(alerting, new_state, "firing", now, now, None, detail))
    return ProbeState(new_state, to_iso(now), detail), events


def _event(a: Alerting, state: str, status: str, starts: datetime, now: datetime,
           ends: datetime | None, detail: str) -> AlertEvent:
    severity = a.down_severity if state == DOWN else a.slow_severity
    what = "is down" if state == DOWN else "is slow"
    if status == "resolved":
        what = "recovered" if state == DOWN else "is fast again"
    return AlertEvent(
        source=SOURCE,
        fingerprint=f"probe:{a.name}:{state}",
        status=status,
        labels={a.component_label: a.component, "probe": a.name, "check": a.kind, "severity": severity,
                "alertname": f"probe {state}"},
        starts_at=starts,
        received_at=now,
        annotations={"target": a.target, "detail": detail[:500]},
        group_key=f"probe:{a.component}",
        severity=severity,
        summary=f"{a.kind} probe {a.name} ({a.target}) {what}: {detail}"[:300],
        ends_at=ends,
    )


def severity_for(status: ComponentStatus, severity_map: dict[str, ComponentStatus]) -> str | None:
    """A severity the engine maps to ``status`` (the first in its map), or None when none does."""
    return next((sev for sev, st in severity_map.items() if st == status), None)
