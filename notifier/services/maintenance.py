"""Scheduled maintenance: the use-cases the CLI and the staff API share.

A maintenance is an incident of kind ``maintenance`` (what the status page shows) plus a window in the
engine's state (what makes the engine swallow alerts and move the components). The engine's beat tick
starts and ends windows on time; see ``notifier.engine.core`` for what happens at each edge.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from notifier.engine.state import Window
from notifier.errors import NotFound, UsageError
from notifier.services import engine_runner

if TYPE_CHECKING:
    from notifier.app import App
    from notifier.domain.model import Incident

ANNOUNCE = ("scheduled", "before", "start", "end")
DEFAULT_ANNOUNCE = ("scheduled", "start", "end")


def schedule_maintenance(
    app: App,
    name: str,
    components: Iterable[str],
    scheduled_for: datetime,
    scheduled_until: datetime,
    body: dict[str, str] | str,
    announce: Iterable[str] = DEFAULT_ANNOUNCE,
    author: str = "staff",
) -> Incident:
    """Schedule a window; ``announce`` picks the posts: at scheduling, a reminder before, start, end."""
    from notifier.services import incidents

    comps = list(dict.fromkeys(components))
    announce = list(dict.fromkeys(announce))
    bad = [a for a in announce if a not in ANNOUNCE]
    if bad:
        raise UsageError(f"announce: unknown value(s) {', '.join(bad)}; choose from: {', '.join(ANNOUNCE)}")
    if not comps:
        raise UsageError("components: a maintenance needs at least one component")
    if scheduled_for.tzinfo is None or scheduled_until.tzinfo is None:
        raise UsageError(
            "scheduled_for/scheduled_until: give times with a time zone (e.g. 2026-11-24T22:00Z)"
        )
    for key, when in (("scheduled_for", scheduled_for), ("scheduled_until", scheduled_until)):
        if not 2000 <= when.year <= 9000:  # also keeps UTC conversion away from datetime's edges
            raise UsageError(f"{key}: must be a real date (year 2000 to 9000)")
    if scheduled_until <= scheduled_for:
        raise UsageError("scheduled_until: must be after scheduled_for")
    if scheduled_until <= app.clock.now():
        raise UsageError("scheduled_until: the window is already over")
    incident = incidents.open_incident(
        app,
        name=name,
        components=comps,
        impact="none",
        body=body,
        kind="maintenance",
        status="scheduled",
        author=author,
        channels=None if "scheduled" in announce else [],
        scheduled_for=scheduled_for,
        scheduled_until=scheduled_until,
    )
    window = Window(
        incident.id,
        incident.name,
        comps,
        scheduled_for.timestamp(),
        scheduled_until.timestamp(),
        [a for a in announce if a != "scheduled"],
    )
    lock = engine_runner.engine_lock(app, wait=5)
    if not lock.acquire():
        raise UsageError("the engine is busy; try again in a moment")
    try:
        app.store.engine_state.save_window(window)  # bumps the version: cached states are reloaded
    finally:
        engine_runner.release_lock(app, lock)
    return incident


def list_maintenance(app: App, include_done: bool = False) -> list[Window]:
    """Windows by start time; finished and cancelled ones only with ``include_done``."""
    windows = sorted(app.store.engine_state.windows(), key=lambda w: w.start)
    return [w for w in windows if include_done or w.state in ("scheduled", "in_progress")]


def cancel_maintenance(
    app: App, maintenance_id: str, body: dict[str, str] | str | None = None, author: str = "staff"
) -> Window:
    """Cancel a scheduled or running window; its components go back to their real state."""
    from notifier.engine import texts
    from notifier.services import incidents

    lock = engine_runner.engine_lock(app, wait=5)
    if not lock.acquire():
        raise UsageError("the engine is busy; try again in a moment")
    try:
        state = engine_runner.load_state(app)
        window = state.windows.get(maintenance_id)
        if window is None:
            raise NotFound(f"no maintenance window {maintenance_id!r}")
        if window.state not in ("scheduled", "in_progress"):
            raise UsageError(f"{maintenance_id} is already {window.state}")
        engine = engine_runner.build_engine(app)
        actions = engine.cancel_window(state, maintenance_id, app.clock.timestamp())
        engine_runner.commit_decided(app, state, actions, [])
        engine_runner.drain_journal(app)
    finally:
        engine_runner.release_lock(app, lock)
    incidents.resolve_incident(
        app,
        maintenance_id,
        body=body or texts.maintenance(window.name, "cancelled"),
        author=author,
        channels=None if window.announce else [],
    )
    return window
