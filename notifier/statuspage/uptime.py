"""90-day uptime bars from a component's status history.

A day's colour is the worst state the component was in during that day; its title lists the
minutes spent in each non-operational state. Days are calendar days in the page's time zone.
Consecutive clean days are merged into one run so that 50 components x 90 days stays small.
With probe results (``page.probe_results``), a day also counts its probe runs and failed runs; a day
with failed runs is never merged, so its title can say how many failed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, tzinfo

from notifier.domain.model import ComponentChange, ComponentStatus

OK = ComponentStatus.OPERATIONAL
# Statuspage's weighting: a partial outage counts 30 % against uptime, a major outage fully.
_DOWNTIME_WEIGHT = {ComponentStatus.PARTIAL_OUTAGE: 0.3, ComponentStatus.MAJOR_OUTAGE: 1.0}


@dataclass
class Day:
    day: date
    worst: ComponentStatus = OK
    minutes: dict[ComponentStatus, int] = field(default_factory=dict)
    probe_runs: int = 0
    probe_failed: int = 0

    @property
    def clean(self) -> bool:
        return self.worst == OK


@dataclass
class Run:
    """One bar segment: ``length`` consecutive days (>1 only for clean days)."""

    first: date
    length: int
    worst: ComponentStatus
    minutes: dict[ComponentStatus, int]
    probe_runs: int = 0
    probe_failed: int = 0


@dataclass
class Bars:
    days: list[Day]
    runs: list[Run]
    uptime_percent: float
    bad_days: int
    probe_runs: int = 0  # over the whole window; 0 without probe results
    probe_failed: int = 0
    weighted_minutes: float = 0.0  # downtime, weighted: what uptime_percent is derived from


def _uptime(weighted: float, window_start: datetime, now: datetime) -> float:
    total = max((now - window_start).total_seconds() / 60, 1)
    return max(0.0, 100.0 * (1 - weighted / total))


def with_uptime(bars: Bars, now: datetime, tz: tzinfo) -> Bars:
    """``bars`` (computed earlier the same day, no outage since) with the uptime percentage as of ``now``."""
    first = bars.days[0].day
    window_start = datetime(first.year, first.month, first.day, tzinfo=tz)
    return replace(bars, uptime_percent=_uptime(bars.weighted_minutes, window_start, now))


def _intervals(
    changes: Iterable[ComponentChange], start: datetime, end: datetime
) -> list[tuple[datetime, datetime, ComponentStatus]]:
    """(from, to, status) pieces covering [start, end); before the first change: operational."""
    out = []
    current, since = OK, start
    for change in changes:
        if change.at >= end:
            break
        if change.at > since:
            out.append((since, change.at, current))
            since = change.at
        current = change.status
    if since < end:
        out.append((since, end, current))
    return out


def compute_bars(changes: list[ComponentChange], now: datetime, tz: tzinfo, days: int = 90,
                 probe_days: Mapping[date, tuple[int, int]] | None = None) -> Bars:
    """Bars for the ``days`` calendar days ending with today (in ``tz``); changes oldest first.

    ``probe_days``: day -> (probe runs, failed runs) of the component's probes, when the page shows them.
    """
    today = now.astimezone(tz).date()
    first = today - timedelta(days=days - 1)
    window_start = datetime(first.year, first.month, first.day, tzinfo=tz)
    result = [Day(first + timedelta(days=i)) for i in range(days)]
    for entry in result:
        entry.probe_runs, entry.probe_failed = (probe_days or {}).get(entry.day, (0, 0))
    weighted = 0.0
    for begin, finish, status in _intervals(changes, window_start, now):
        if status == OK:
            continue
        cursor = max(begin, window_start)
        while cursor < finish:
            local = cursor.astimezone(tz)
            next_midnight = datetime(local.year, local.month, local.day, tzinfo=tz) + timedelta(days=1)
            piece_end = min(finish, next_midnight)
            index = (local.date() - first).days
            if 0 <= index < days:
                entry = result[index]
                mins = (piece_end - cursor).total_seconds() / 60
                entry.minutes[status] = entry.minutes.get(status, 0) + round(mins)
                if status.severity > entry.worst.severity:
                    entry.worst = status
                weighted += mins * _DOWNTIME_WEIGHT.get(status, 0.0)
            cursor = piece_end
    # A component that is down right now colours today even if the change is seconds old.
    current = next((c.status for c in reversed(changes) if c.at <= now), OK)
    if current.severity > result[-1].worst.severity:
        result[-1].worst = current
        result[-1].minutes.setdefault(current, 0)
    runs: list[Run] = []
    for entry in result:
        if entry.clean and not entry.probe_failed and runs and runs[-1].worst == OK and not runs[-1].probe_failed:
            runs[-1].length += 1
            runs[-1].probe_runs += entry.probe_runs
        else:
            runs.append(Run(entry.day, 1, entry.worst, dict(entry.minutes), entry.probe_runs, entry.probe_failed))
    return Bars(
        days=result,
        runs=runs,
        uptime_percent=_uptime(weighted, window_start, now),
        bad_days=sum(1 for d in result if not d.clean),
        probe_runs=sum(d.probe_runs for d in result),
        probe_failed=sum(d.probe_failed for d in result),
        weighted_minutes=weighted,
    )
