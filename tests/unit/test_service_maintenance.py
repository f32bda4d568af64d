"""services/maintenance.py on the in-memory store: scheduling writes the incident and the engine's window,
the engine's tick starts and ends it, cancelling closes both."""

from __future__ import annotations

from datetime import timedelta

import pytest

from notifier.domain.model import ComponentStatus
from notifier.errors import NotFound, UsageError
from notifier.services import engine_runner, maintenance
from tests.fakes.memory_app import advance, memory_app


def _schedule(app, announce=maintenance.DEFAULT_ANNOUNCE, minutes_ahead: int = 10):
    start = app.clock.now() + timedelta(minutes=minutes_ahead)
    return maintenance.schedule_maintenance(app, "Mail upgrade", ["imap"], start, start + timedelta(minutes=30),
                                            "We upgrade the mail servers", announce=announce)


def test_scheduling_opens_a_maintenance_and_stores_its_window() -> None:
    app = memory_app()
    inc = _schedule(app)
    assert (inc.id, inc.kind, inc.status) == ("mnt1", "maintenance", "scheduled")
    assert app.store.component_status("imap") == ComponentStatus.OPERATIONAL  # not before it starts
    (window,) = maintenance.list_maintenance(app)
    assert (window.id, window.components, window.state, window.announce) == ("mnt1", ["imap"], "scheduled",
                                                                             ["start", "end"])
    assert sorted(r.channel for r in app.store.ledger.rows()) == ["statuspage", "x"]  # announced at once
    assert "mnt1" in engine_runner.load_state(app, cached=True).windows  # the version bump reloads it


def test_the_engine_starts_and_ends_the_window_on_time() -> None:
    app = memory_app()
    _schedule(app)
    advance(app, 11 * 60, step=60)
    assert maintenance.list_maintenance(app)[0].state == "in_progress"
    assert app.store.component_status("imap") == ComponentStatus.UNDER_MAINTENANCE
    assert app.store.get_incident("mnt1").status == "in_progress"
    advance(app, 31 * 60, step=60)
    assert maintenance.list_maintenance(app) == []
    assert [w.state for w in maintenance.list_maintenance(app, include_done=True)] == ["completed"]
    assert app.store.component_status("imap") == ComponentStatus.OPERATIONAL
    assert app.store.get_incident("mnt1").status == "completed"


def test_cancelling_closes_the_window_and_the_maintenance() -> None:
    app = memory_app()
    _schedule(app, announce=["start", "end"])
    assert app.store.ledger.rows() == []  # not announced at scheduling
    window = maintenance.cancel_maintenance(app, "mnt1")
    assert window.id == "mnt1"
    assert [w.state for w in maintenance.list_maintenance(app, include_done=True)] == ["cancelled"]
    assert app.store.get_incident("mnt1").status == "completed"
    with pytest.raises(UsageError, match="already cancelled"):
        maintenance.cancel_maintenance(app, "mnt1")
    with pytest.raises(NotFound):
        maintenance.cancel_maintenance(app, "mnt9")


def test_scheduling_while_the_engine_runs_is_refused_and_writes_no_window() -> None:
    app = memory_app()
    held = engine_runner.engine_lock(app)
    assert held.acquire(blocking=False)
    with pytest.raises(UsageError, match="engine is busy"):
        _schedule(app)
    assert maintenance.list_maintenance(app, include_done=True) == []


@pytest.mark.parametrize(
    ("shift_start", "length", "message"),
    [(10, -5, "must be after"), (-60, 30, "already over"), (10, 30, "unknown value")],
)
def test_bad_windows_are_refused(shift_start: int, length: int, message: str) -> None:
    app = memory_app()
    start = app.clock.now() + timedelta(minutes=shift_start)
    announce = ["never"] if message == "unknown value" else list(maintenance.DEFAULT_ANNOUNCE)
    with pytest.raises(UsageError, match=message):
        maintenance.schedule_maintenance(app, "Upgrade", ["imap"], start, start + timedelta(minutes=length), "x",
                                         announce=announce)
    assert app.store.list_incidents() == []
