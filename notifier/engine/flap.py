"""Icinga-style flap detection, adapted to events that arrive only on state changes.

Icinga keeps the last 20 check results and weights each state change from 0.8 (oldest) to 1.2
(newest), so recent changes count more; the score is the weighted sum as a percent of the maximum.
We only see transitions (an alert fires, an alert resolves), so every observation is a change; we
keep the last ``max_changes`` of them, and forget changes older than ``window_seconds`` so that a
spike "several times a day" never looks like flapping. Hysteresis: flapping starts at ``high`` and
ends only below ``low``.
"""

from __future__ import annotations

from notifier.engine.settings import FlapSettings
from notifier.engine.state import ComponentFlap


def score(changes: list[float], now: float, settings: FlapSettings) -> float:
    recent = [t for t in changes if now - t <= settings.window_seconds][-settings.max_changes :]
    n = settings.max_changes
    # newest change sits in the newest slot (weight 1.2); older ones step down towards 0.8
    total = 0.0
    for age, _ in enumerate(reversed(recent)):
        slot = n - 1 - age
        total += 0.8 + 0.4 * slot / (n - 1)
    return round(100.0 * total / n, 2)


def observe(comp: ComponentFlap, problem: bool | None, now: float, settings: FlapSettings) -> bool | None:
    """Record a transition (``problem`` is the new state, None for a mere re-score).

    Returns True when flapping starts, False when it ends, None when nothing changed.
    """
    if problem is not None and problem != comp.problem:
        comp.problem = problem
        comp.changes.append(now)
    comp.changes = [t for t in comp.changes if now - t <= settings.window_seconds][-settings.max_changes :]
    comp.score = score(comp.changes, now, settings)
    if not settings.enabled:
        return None
    if not comp.flapping and comp.score >= settings.high:
        comp.flapping = True
        return True
    if comp.flapping and comp.score < settings.low:
        comp.flapping = False
        return False
    return None
