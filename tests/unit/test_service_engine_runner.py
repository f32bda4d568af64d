"""services/engine_runner.py on the in-memory store: a run consumes events, journals, applies; crashes
between deciding and applying repeat at most the one action in flight."""

from __future__ import annotations

import hashlib
import json

from notifier.domain.model import ComponentStatus
from notifier.engine import actions as act
from notifier.services import engine_runner, incidents
from tests.fakes.memory_app import advance, alert, memory_app, push


def _journal(app) -> list[act.Action]:
    repo = app.store.engine_state
    out = []
    for raw in list(repo.journal):  # the memory repository's list: what a crash left behind
        data = json.loads(raw)
        out.append(engine_runner._ACTION_TYPES[data.pop("type")](**data))
    return out


def _decide_without_applying(app) -> list[act.Action]:
    """What a tick does up to its commit, then the process dies: decisions durable, nothing applied."""
    state = engine_runner.load_state(app)
    actions = engine_runner.build_engine(app).tick(state, app.clock.timestamp())
    return engine_runner.commit_decided(app, state, actions, [])


def test_a_run_consumes_the_events_acknowledges_them_and_opens_one_incident_after_the_confirm_delay() -> None:
    app = memory_app()
    push(app, [alert(app, f"disk{i}") for i in range(50)])
    assert engine_runner.process_events(app) == 50
    assert app.store.events.pending() == 0 and not app.store.events.undelivered()
    (group,) = engine_runner.load_state(app).groups.values()
    assert len(group.alerts) == 50
    assert app.store.list_incidents() == []  # nothing public before the confirm delay
    advance(app, 70)
    (incident,) = app.store.list_incidents()
    assert (incident.components, incident.updates[0].author) == (["imap", "smtp"], "engine")
    assert [r.channel for r in app.store.ledger.rows()] == ["statuspage"]  # the status page confirms first
    assert app.store.component_status("imap") == ComponentStatus.MAJOR_OUTAGE
    assert engine_runner.incident_of(app, group.id) == incident.id
    assert app.store.engine_state.journal_length() == 0
    kinds = [d["kind"] for d in engine_runner.decisions_for(app, incident.id)]
    assert "opened" in kinds and kinds.count("joined") >= 1


def test_a_bad_stream_entry_is_acknowledged_and_logged_not_retried_forever() -> None:
    app = memory_app()
    engine_runner.ensure_consumer_group(app)
    app.store.events.append("{not json")
    assert engine_runner.process_events(app) == 1
    assert app.store.events.pending() == 0
    (decision,) = app.store.engine_state.decisions("_global")
    assert decision["kind"] == "ignored" and "not an AlertEvent" in decision["message"]


def test_a_crash_after_deciding_leaves_the_actions_in_the_journal_and_the_next_run_applies_them_once() -> None:
    app = memory_app()
    push(app, [alert(app, "disk1")])
    engine_runner.process_events(app)
    app.clock.advance(70)
    external = _decide_without_applying(app)
    assert any(isinstance(a, act.OpenIncident) for a in external)
    assert app.store.engine_state.journal_length() == len(external)
    assert app.store.list_incidents() == []  # decided, durable, not applied
    engine_runner.tick(app)  # the next run finishes the journal first
    assert len(app.store.list_incidents()) == 1
    assert app.store.engine_state.journal_length() == 0
    engine_runner.tick(app)
    assert len(app.store.list_incidents()) == 1


def test_a_crash_in_the_middle_of_opening_the_incident_does_not_open_it_twice() -> None:
    app = memory_app()
    push(app, [alert(app, "disk1")])
    engine_runner.process_events(app)
    app.clock.advance(70)
    _decide_without_applying(app)
    repo = app.store.engine_state
    while not isinstance(_journal(app)[0], act.OpenIncident):  # the run applies the actions before it
        engine_runner._apply(app, _journal(app)[0])
        repo.pop_journal()
    head = repo.journal_head()
    assert head is not None
    action = _journal(app)[0]
    assert isinstance(action, act.OpenIncident)
    # the run that died had marked the attempt and opened the incident, then died before mapping it
    repo.mark_journal_attempt(hashlib.sha256(head.encode()).hexdigest(), app.clock.timestamp())
    opened = incidents.open_incident(app, name=action.name, components=action.components, impact=action.impact,
                                     body=action.body, status=action.status, author=engine_runner.AUTHOR,
                                     channels=action.channels, draft=action.draft, names=action.names)
    assert engine_runner.incident_of(app, action.group) is None
    engine_runner.tick(app)
    assert [i.id for i in app.store.list_incidents()] == [opened.id]  # recognised, not repeated
    assert engine_runner.incident_of(app, action.group) == opened.id
    assert repo.journal_length() == 0


def test_a_run_defers_to_the_lock_holder() -> None:
    app = memory_app()
    push(app, [alert(app, "disk1")])
    held = engine_runner.engine_lock(app)
    assert held.acquire(blocking=False)
    assert engine_runner.process_events(app) == 0
    assert app.store.events.undelivered()  # left for the holder, who looks again after releasing
    held.release()
    assert engine_runner.process_events(app) == 1


def test_a_person_resolving_the_incident_lets_the_group_go() -> None:
    app = memory_app()
    push(app, [alert(app, "disk1")])
    engine_runner.process_events(app)
    advance(app, 70)
    (incident,) = app.store.list_incidents()
    incidents.resolve_incident(app, incident.id, body="Fixed by hand")
    advance(app, 5)
    assert engine_runner.load_state(app).groups == {}
    assert any("by a person" in d["message"] for d in engine_runner.decisions_for(app, incident.id))
