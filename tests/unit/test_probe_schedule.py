"""The probe schedule (pure): a stable per-name phase spreads runs over the interval, and keeps the grid."""

from __future__ import annotations

import math
import statistics

from notifier.probes import schedule

INTERVAL, TICK = 30.0, 5.0
NAMES = [f"h{i}" for i in range(500)] + [f"s{i}" for i in range(100)]


def test_the_phase_is_a_stable_function_of_the_name_within_the_interval() -> None:
    phases = [schedule.phase(name, INTERVAL) for name in NAMES]
    assert all(0 <= p < INTERVAL for p in phases)
    assert phases == [schedule.phase(name, INTERVAL) for name in NAMES]  # sha256, not the per-process hash()
    assert schedule.phase("h1", INTERVAL) != schedule.phase("h2", INTERVAL)


def test_many_probes_spread_evenly_over_the_ticks_of_one_interval() -> None:
    per_tick = [0] * int(INTERVAL / TICK)
    for name in NAMES:
        per_tick[int(schedule.phase(name, INTERVAL) // TICK)] += 1
    assert sum(per_tick) == len(NAMES)
    # 600 probes, 6 ticks: ~100 each (binomial sd ~9); all at once would put 600 in one tick
    assert max(per_tick) < 140 and min(per_tick) > 60, per_tick
    assert statistics.pstdev(per_tick) < 25


def test_first_runs_spread_over_the_current_tick() -> None:
    now = 1_000_000.0
    firsts = [schedule.due_at(name, INTERVAL, 0.0, now, TICK) for name in NAMES]
    assert all(now <= t < now + TICK for t in firsts)
    assert len({round(t, 3) for t in firsts}) > len(NAMES) * 0.9  # not one instant


def test_runs_stay_on_the_grid_even_when_they_start_or_end_late() -> None:
    for name in NAMES[:50]:
        offset = schedule.phase(name, INTERVAL)
        grid = offset + 40_000 * INTERVAL
        for late in (0.0, 0.01, 3.0, 14.9):  # recorded this long after its grid point
            due = schedule.next_due(name, INTERVAL, grid + late, TICK)
            assert math.isclose(due, grid + INTERVAL), (name, late, due)
            assert math.isclose((due - offset) % INTERVAL, 0, abs_tol=1e-6) or math.isclose(
                (due - offset) % INTERVAL, INTERVAL, abs_tol=1e-6)


def test_a_probe_is_due_again_within_one_tick_of_its_interval_whatever_its_phase() -> None:
    """After a run at any moment (a first run, say), the next is at least a tick later and at most an
    interval plus a tick later: a runner ticking every TICK never lets a probe skip an interval."""
    for name in NAMES:
        for last in (1_000_000.0, 1_000_000.0 + schedule.phase(name, INTERVAL), 1_234_567.891):
            due = schedule.next_due(name, INTERVAL, last, TICK)
            assert last + TICK <= due < last + INTERVAL + TICK, (name, last, due)


def test_the_gap_after_a_run_is_at_most_half_a_short_interval() -> None:
    due = schedule.next_due("h1", 4.0, 100.0, TICK)  # a 4 s probe with a 5 s tick: every grid point ≥ 2 s on
    assert 102.0 <= due < 106.0
