"""90-day bars: a day's colour is its worst state; minutes per state; uptime weighting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from notifier.domain.model import ComponentChange, ComponentStatus
from notifier.statuspage.uptime import compute_bars, with_uptime

S = ComponentStatus
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def ch(status: ComponentStatus, at: datetime) -> ComponentChange:
    return ComponentChange("c", status, at)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("changes", "day", "worst", "minutes"),
    [
        # (history, day of November checked, expected colour, expected minutes per state)
        ([], 20, S.OPERATIONAL, {}),
        (
            [ch(S.DEGRADED_PERFORMANCE, at(20, 10)), ch(S.OPERATIONAL, at(20, 10, 30))],
            20,
            S.DEGRADED_PERFORMANCE,
            {S.DEGRADED_PERFORMANCE: 30},
        ),
        # worst wins although degraded lasted longer
        (
            [
                ch(S.DEGRADED_PERFORMANCE, at(20, 8)),
                ch(S.MAJOR_OUTAGE, at(20, 10)),
                ch(S.OPERATIONAL, at(20, 10, 5)),
            ],
            20,
            S.MAJOR_OUTAGE,
            {S.DEGRADED_PERFORMANCE: 120, S.MAJOR_OUTAGE: 5},
        ),
        # an outage across midnight counts on both days
        (
            [ch(S.PARTIAL_OUTAGE, at(20, 23)), ch(S.OPERATIONAL, at(21, 1))],
            20,
            S.PARTIAL_OUTAGE,
            {S.PARTIAL_OUTAGE: 60},
        ),
        (
            [ch(S.PARTIAL_OUTAGE, at(20, 23)), ch(S.OPERATIONAL, at(21, 1))],
            21,
            S.PARTIAL_OUTAGE,
            {S.PARTIAL_OUTAGE: 60},
        ),
        # a whole day inside a longer outage
        (
            [ch(S.MAJOR_OUTAGE, at(18, 12)), ch(S.OPERATIONAL, at(21, 0))],
            19,
            S.MAJOR_OUTAGE,
            {S.MAJOR_OUTAGE: 1440},
        ),
        (
            [ch(S.UNDER_MAINTENANCE, at(22, 2)), ch(S.OPERATIONAL, at(22, 4))],
            22,
            S.UNDER_MAINTENANCE,
            {S.UNDER_MAINTENANCE: 120},
        ),
        # still down now: today counts up to now (12:00)
        ([ch(S.MAJOR_OUTAGE, at(24, 11))], 24, S.MAJOR_OUTAGE, {S.MAJOR_OUTAGE: 60}),
        # down since this very moment: today is already red, with 0 minutes so far
        ([ch(S.MAJOR_OUTAGE, NOW)], 24, S.MAJOR_OUTAGE, {S.MAJOR_OUTAGE: 0}),
        # a change before the window opens sets the state the window starts in
        (
            [ch(S.PARTIAL_OUTAGE, NOW - timedelta(days=200)), ch(S.OPERATIONAL, at(1, 6))],
            1,
            S.PARTIAL_OUTAGE,
            {S.PARTIAL_OUTAGE: 360},
        ),
    ],
)
def test_day_colour_and_minutes(
    changes: list[ComponentChange], day: int, worst: ComponentStatus, minutes: dict[ComponentStatus, int]
) -> None:
    bars = compute_bars(changes, NOW, ZoneInfo("UTC"))
    assert len(bars.days) == 90 and bars.days[-1].day.isoformat() == "2026-11-24"
    entry = next(d for d in bars.days if d.day.isoformat() == f"2026-11-{day:02d}")
    assert entry.worst == worst
    assert entry.minutes == minutes


def test_uptime_weights_partial_at_30_percent_and_runs_merge_clean_days() -> None:
    changes = [ch(S.MAJOR_OUTAGE, at(20, 0)), ch(S.PARTIAL_OUTAGE, at(20, 1)), ch(S.OPERATIONAL, at(20, 2))]
    bars = compute_bars(changes, NOW, ZoneInfo("UTC"))
    total = (NOW - datetime(2026, 8, 27, tzinfo=UTC)).total_seconds() / 60
    assert bars.uptime_percent == pytest.approx(100 * (1 - (60 + 0.3 * 60) / total))
    assert bars.bad_days == 1
    assert [(r.length, r.worst) for r in bars.runs] == [
        (85, S.OPERATIONAL),
        (1, S.MAJOR_OUTAGE),
        (4, S.OPERATIONAL),
    ]


def test_days_follow_the_page_time_zone() -> None:
    # 23:30 UTC on the 20th is 00:30 on the 21st in Berlin
    changes = [ch(S.MAJOR_OUTAGE, at(20, 23, 30)), ch(S.OPERATIONAL, at(20, 23, 50))]
    bars = compute_bars(changes, NOW, ZoneInfo("Europe/Berlin"))
    bad = [d.day.isoformat() for d in bars.days if not d.clean]
    assert bad == ["2026-11-21"]


def test_bars_reused_later_the_same_day_get_the_uptime_of_the_later_time() -> None:
    """What the render cache relies on: for a component that is operational, only the percentage moves."""
    tz = ZoneInfo("Europe/Berlin")
    changes = [ch(S.MAJOR_OUTAGE, at(23, 1)), ch(S.OPERATIONAL, at(23, 9)), ch(S.PARTIAL_OUTAGE, at(24, 2)),
               ch(S.OPERATIONAL, at(24, 3))]
    early = compute_bars(changes, at(24, 4), tz)
    late = compute_bars(changes, at(24, 20), tz)
    assert late.uptime_percent != early.uptime_percent
    assert with_uptime(early, at(24, 20), tz) == late
