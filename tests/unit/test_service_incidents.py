"""services/incidents.py on the in-memory store: what each use-case writes and hands to the workers."""

from __future__ import annotations

import pytest

from notifier.domain.model import ComponentStatus, DeliveryState, Receipt
from notifier.errors import UsageError
from notifier.ports import NullDispatcher
from notifier.services import idempotent, incidents
from tests.fakes.memory_app import memory_app


def _sent(app) -> list[str]:
    assert isinstance(app.dispatcher, NullDispatcher)
    return [notice for notice, _, _ in app.dispatcher.sent]


def test_opening_an_incident_creates_one_pending_notice_per_channel_and_queues_them() -> None:
    app = memory_app()
    inc = incidents.open_incident(app, name="IMAP down", components=["imap"], body="We are looking into it")
    assert (inc.id, inc.status, inc.impact.value, inc.components) == ("inc1", "investigating", "critical", ["imap"])
    rows = {r.notice_id: r for r in app.store.ledger.rows()}
    assert set(rows) == {"inc1.1:statuspage", "inc1.1:x"}
    assert {r.state for r in rows.values()} == {DeliveryState.PENDING}
    assert sorted(_sent(app)) == ["inc1.1:statuspage", "inc1.1:x"]
    assert app.store.component_status("imap") == ComponentStatus.MAJOR_OUTAGE
    assert app.store.get_incident("inc1").updates[0].body == {"en": "We are looking into it"}


def test_an_update_and_the_resolution_each_create_their_notices_and_restore_the_components() -> None:
    app = memory_app()
    incidents.open_incident(app, name="IMAP down", components=["imap"], body="Looking", channels=["x"])
    upd = incidents.update_incident(app, "inc1", status="identified", body="Found it", channels=["x"])
    assert upd.id == "inc1.2"
    assert app.store.get_incident("inc1").status == "identified"
    resolved = incidents.resolve_incident(app, "inc1", body="Fixed")
    assert resolved.status == "resolved"
    inc = app.store.get_incident("inc1")
    assert not inc.is_open and inc.resolved_at == app.clock.now()
    assert app.store.component_status("imap") == ComponentStatus.OPERATIONAL
    assert [c.status for c in app.store.component_history("imap")] == [
        ComponentStatus.MAJOR_OUTAGE, ComponentStatus.OPERATIONAL]
    assert sorted(r.notice_id for r in app.store.ledger.rows()) == [
        "inc1.1:x", "inc1.2:x", "inc1.3:statuspage", "inc1.3:x"]
    assert app.store.list_incidents(open_only=True) == []


def test_a_closing_note_on_a_resolved_incident_touches_no_component() -> None:
    app = memory_app()
    incidents.open_incident(app, name="IMAP down", components=["imap"], body="Looking")
    incidents.resolve_incident(app, "inc1", body="Fixed")
    app.store.set_component_status("imap", ComponentStatus.DEGRADED_PERFORMANCE, app.clock.now())
    note = incidents.resolve_incident(app, "inc1", body="Postmortem: a full disk")
    assert note.component_statuses == {}
    assert app.store.component_status("imap") == ComponentStatus.DEGRADED_PERFORMANCE
    with pytest.raises(UsageError, match="already resolved"):
        incidents.update_incident(app, "inc1", status="investigating", body="again?")


def test_a_draft_has_no_notices_until_it_is_approved() -> None:
    app = memory_app()
    incidents.open_incident(app, name="IMAP down", components=["imap"], body="Looking", draft=True)
    assert app.store.ledger.rows() == [] and _sent(app) == []
    assert app.store.component_status("imap") == ComponentStatus.OPERATIONAL
    assert [u.id for _, u in incidents.drafts(app)] == ["inc1.1"]
    published = incidents.approve_draft(app, "inc1.1", approver="alice")
    assert (published.draft, published.approved_by) == (False, "alice")
    assert sorted(r.notice_id for r in app.store.ledger.rows()) == ["inc1.1:statuspage", "inc1.1:x"]
    with pytest.raises(UsageError, match="not a draft"):
        incidents.approve_draft(app, "inc1.1", approver="alice")


def test_an_idempotency_key_returns_the_earlier_write_instead_of_a_second_one() -> None:
    app = memory_app()
    token = idempotent.current_op.set("key-1")
    try:
        first = incidents.open_incident(app, name="IMAP down", components=["imap"], body="Looking")
        again = incidents.open_incident(app, name="IMAP down", components=["imap"], body="Looking")
    finally:
        idempotent.current_op.reset(token)
    assert again.id == first.id == "inc1"
    assert [i.id for i in app.store.list_incidents()] == ["inc1"]
    assert len(app.store.ledger.rows()) == 2
    assert app.store.op_incident("key-1") == "inc1"
    # the repeat hands the notices to the workers again (the ledger keeps them from going out twice)
    assert sorted(_sent(app)) == ["inc1.1:statuspage", "inc1.1:statuspage", "inc1.1:x", "inc1.1:x"]
    assert incidents.update_incident(app, "inc1", body="More").id == "inc1.2"  # without the key: a new write
    assert len(app.store.get_incident("inc1").updates) == 2


def test_a_rejected_update_writes_nothing() -> None:
    app = memory_app()
    incidents.open_incident(app, name="IMAP down", components=["imap"], body="Looking")
    with pytest.raises(UsageError, match="unknown component"):
        incidents.update_incident(app, "inc1", body="x", components=["nope"])
    assert len(app.store.get_incident("inc1").updates) == 1
    assert len(app.store.ledger.rows()) == 2


def test_the_next_notice_threads_under_the_last_posted_one() -> None:
    app = memory_app()
    incidents.open_incident(app, name="IMAP down", components=["imap"], body="Looking", channels=["x"])
    incidents.update_incident(app, "inc1", body="Found it", channels=["x"])
    inc = app.store.get_incident("inc1")
    assert incidents.notice_for(app, inc, inc.updates[1], "x").previous == {}  # nothing posted yet
    app.store.ledger.mark_posted("inc1.1:x", Receipt("111", "https://x.test/111", {"thread": "t1"}), 1.0)
    assert incidents.notice_for(app, inc, inc.updates[1], "x").previous == {
        "remote_id": "111", "url": "https://x.test/111", "thread": "t1"}
