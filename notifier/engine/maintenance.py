"""Maintenance windows in the engine: their edges on the clock, and the alerts they swallow.

A scheduled window is announced ``maintenance.remind_before_minutes`` before it starts (when its
``announce`` asks for it), puts its components under maintenance at ``start`` and gives them back at
``end``; a component still down at the end counts as a real problem from then on. While a window runs,
alerts for its components join groups as usual but open no incident (``grouping.effective`` leaves
those components out); ``note_alert`` logs why.
"""

from __future__ import annotations

from notifier.domain.model import ComponentStatus
from notifier.engine import texts
from notifier.engine.actions import MaintenanceUpdate, SetComponentStatus
from notifier.engine.context import Step
from notifier.engine.state import Group, Window


def note_alert(step: Step, group: Group, comps: dict[str, str], alert: str) -> None:
    """An alert joined ``group``: remember the windows it fell into, and say so (up to the detail limit)."""
    for comp in sorted(set(comps) | step.catalog.expand(comps)):
        win = step.state.running_maintenance(comp)
        if win is None:
            continue
        if win.id not in group.maintenance_ids:
            group.maintenance_ids.append(win.id)
        if group.joined <= step.settings.decision_detail_limit:
            step.decide(
                group.id,
                "maintenance",
                f"{comp} is under maintenance ({win.id}): no incident for it until the window ends",
                alert=alert,
                maintenance=win.id,
            )


def advance(step: Step) -> None:
    """Move every window along the clock: reminder, start, end."""
    for win in step.state.windows.values():
        _remind(step, win)
        if win.state == "scheduled" and step.now >= win.start:
            _start(step, win)
        if win.state == "in_progress" and step.now >= win.end:
            _end(step, win)


def _remind(step: Step, win: Window) -> None:
    remind = step.settings.maintenance.remind_before_minutes * 60
    if (
        win.state == "scheduled"
        and not win.reminded
        and "before" in win.announce
        and win.start - remind <= step.now < win.start
    ):
        win.reminded = True
        _announce(step, win, "before", {})


def _start(step: Step, win: Window) -> None:
    win.state = "in_progress"
    _announce(step, win, "start", {c: ComponentStatus.UNDER_MAINTENANCE.value for c in win.components})
    step.decide(
        None,
        "maintenance",
        f"window {win.id} started: alerts for {', '.join(win.components)} open no incidents",
        maintenance=win.id,
    )


def _end(step: Step, win: Window) -> None:
    win.state = "completed"
    down = step.state.problem_components()
    _announce(step, win, "end", {c: ComponentStatus.OPERATIONAL.value for c in win.components if c not in down})
    for comp in win.components:
        if comp in down:
            step.decide(
                None,
                "maintenance",
                f"{comp} still down when window {win.id} ended: it now counts as a real problem",
                maintenance=win.id,
            )


_EDGE_STATUS = {"before": "scheduled", "start": "in_progress", "end": "completed"}


def _announce(step: Step, win: Window, edge: str, components: dict[str, str]) -> None:
    """Update the window's maintenance record at one edge: on every channel where ``announce`` names the
    edge, else on the status page only."""
    step.touch("window", win.id)
    body = texts.maintenance(win.name, edge)
    channels: list[str] | None = None if edge in win.announce else []
    step.emit(MaintenanceUpdate(win.id, _EDGE_STATUS[edge], body, channels, components))


def cancel(step: Step, window_id: str) -> None:
    """Cancel a scheduled or running window (the service announces the cancellation itself)."""
    win = step.state.windows[window_id]
    if win.state == "in_progress":
        down = step.state.problem_components()
        for comp in win.components:
            if comp not in down:
                step.emit(SetComponentStatus(comp, ComponentStatus.OPERATIONAL.value))
    win.state = "cancelled"
    step.touch("window", win.id)
    step.decide(None, "maintenance", f"window {win.id} cancelled", maintenance=win.id)
