"""The engine against a real redis-server: stream -> process_events -> incidents, ledger rows, state."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest

from notifier.services import engine_runner as engine
from notifier.services import maintenance
from tests.integration.engine_app import advance, alert, make_app, push
from tests.integration.engine_fixtures import app_fixture, redis_url_fixture  # noqa: F401 (fixtures)

pytestmark = pytest.mark.integration


def test_storm_in_the_stream_becomes_one_incident_with_ledger_rows(app):
    push(app, [alert(app, f"disk{i}") for i in range(2000)])
    assert engine.process_events(app) == 2000
    assert app.store.list_incidents() == []  # nothing public before the confirm delay
    advance(app, 70)
    (incident,) = app.store.list_incidents()
    assert incident.components == ["imap", "smtp"]
    assert [r.channel for r in app.store.ledger.rows()] == ["statuspage"]  # status page first
    assert app.store.component_status("imap").value == "major_outage"
    advance(app, 120)
    assert sorted(r.channel for r in app.store.ledger.rows()) == ["statuspage", "x"]
    assert len(app.store.list_incidents()) == 1
    # everything was acknowledged, nothing left pending
    assert app.store.redis.xpending(app.settings.redis.key_prefix + "events", "engine")["pending"] == 0
    push(app, [alert(app, f"disk{i}", status="resolved") for i in range(2000)])
    engine.process_events(app)
    advance(app, 310, step=10)
    (incident,) = app.store.list_incidents()
    assert incident.status == "resolved"
    assert app.store.component_status("imap").value == "operational"
    assert len(app.store.ledger.rows()) == 4


def test_state_persists_across_engine_instances(app):
    push(app, [alert(app, "a"), alert(app, "b", group_key=None, component="dns")])
    engine.process_events(app)
    state = engine.load_state(app)
    assert sorted(len(g.alerts) for g in state.groups.values()) == [1, 1]
    assert set(state.alert_index) == {"alertmanager:a", "alertmanager:b"}
    raw = app.store.redis.hgetall(app.settings.redis.key_prefix + "engine:groups")
    assert len(raw) == 2 and all(json.loads(v)["firing_since"] for v in raw.values())


def test_crashed_consumer_entries_are_claimed_and_processed(app):
    engine.ensure_consumer_group(app)
    push(app, [alert(app, "a")])
    stream = app.settings.redis.key_prefix + "events"
    # a consumer that read and died before acknowledging
    app.store.redis.xreadgroup("engine", "dead-worker", {stream: ">"}, count=10)
    push(app, [alert(app, "b")])  # a newer event arrives meanwhile
    assert app.store.redis.xpending(stream, "engine")["pending"] == 1
    # only the lock holder reads, so the dead run's entry is taken over at once, before the newer one
    assert engine.process_events(app, max_events=1) == 1
    assert app.store.redis.xpending(stream, "engine")["pending"] == 0
    assert engine.process_events(app) == 1
    assert len(engine.load_state(app).groups) == 1


def test_two_workers_at_once_never_double_apply(app, redis_url, tmp_path):
    other = make_app(redis_url, tmp_path, prefix=app.settings.redis.key_prefix)
    other.clock = app.clock
    push(app, [alert(app, f"a{i}") for i in range(300)])
    counts: list[int] = []
    threads = [threading.Thread(target=lambda a=a: counts.append(engine.process_events(a))) for a in (app, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    engine.process_events(app)
    app.clock.advance(200)
    threads = [threading.Thread(target=engine.tick, args=(a,)) for a in (app, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    engine.tick(app)
    assert len(app.store.list_incidents()) == 1
    state = engine.load_state(app)
    (group,) = state.groups.values()
    assert group.joined == 300


def test_approval_draft_auto_published(redis_url, tmp_path):
    app = make_app(redis_url, tmp_path, approval="approve", prefix="appr:")
    push(app, [alert(app, "a")])
    engine.process_events(app)
    advance(app, 200)
    (incident,) = app.store.list_incidents()
    drafts = [u for u in incident.updates if u.draft]
    assert [u.channels for u in drafts] == [["x"]]
    assert [r.channel for r in app.store.ledger.rows()] == ["statuspage"]
    advance(app, 600, step=30)
    incident = app.store.get_incident(incident.id)
    assert not any(u.draft for u in incident.updates)
    assert incident.updates[1].approved_by == "engine:auto-publish"
    assert sorted(r.channel for r in app.store.ledger.rows()) == ["statuspage", "x"]


def test_maintenance_window_through_the_service(app):
    now = app.clock.now()
    inc = maintenance.schedule_maintenance(
        app,
        "Storage upgrade",
        ["imap"],
        now + timedelta(minutes=5),
        now + timedelta(minutes=65),
        "New disks.",
    )
    assert [w.id for w in maintenance.list_maintenance(app)] == [inc.id]
    advance(app, 400, step=20)
    assert app.store.component_status("imap").value == "under_maintenance"
    push(app, [alert(app, "a", group_key=None, component="imap")])
    engine.process_events(app)
    advance(app, 1200, step=60)
    assert [i.id for i in app.store.list_incidents()] == [inc.id]
    advance(app, 3000, step=60)
    mnt = app.store.get_incident(inc.id)
    assert mnt.status == "completed"
    # imap was still down when the window ended: a real incident opens
    kinds = sorted(i.kind for i in app.store.list_incidents())
    assert kinds == ["incident", "maintenance"]
    log = engine.decisions_for(app, mnt.id)
    assert any("still down" in d["message"] for d in log)


def test_acknowledged_events_are_trimmed_unread_ones_kept(app):
    engine_settings = engine.engine_settings(app)
    engine_settings.stream.trim_above = 10
    stream = app.settings.redis.key_prefix + "events"
    push(app, [alert(app, f"a{i}") for i in range(30)])
    assert engine.process_events(app, max_events=20) == 20
    engine.tick(app)  # reads the last 10, then trims what it acknowledged
    assert app.store.redis.xlen(stream) == 0
    push(app, [alert(app, f"b{i}") for i in range(30)])
    # a second consumer group must keep everything it has not read
    app.store.redis.xgroup_create(stream, "audit", id="$")
    push(app, [alert(app, f"c{i}") for i in range(5)])
    engine.tick(app)
    ids = [i for i, _ in app.store.redis.xrange(stream)]
    assert len(ids) == 5  # the engine read all 65; "audit" has not read the last 5


def test_incident_resolved_by_a_person_is_let_go(app):
    from notifier.services import incidents

    push(app, [alert(app, "a")])
    engine.process_events(app)
    advance(app, 200)
    (incident,) = app.store.list_incidents()
    incidents.resolve_incident(app, incident.id, body="Fixed by hand.", author="alice")
    advance(app, 10)
    assert engine.load_state(app).groups == {}
    assert any(d["kind"] == "detached" for d in engine.decisions_for(app, incident.id))
    # the alert keeps firing (Alertmanager repeats it): a new group, and after the delay a new incident
    push(app, [alert(app, "a")])
    engine.process_events(app)
    advance(app, 200)
    assert len(app.store.list_incidents()) == 2
    assert not any(d["kind"] == "not-applied" for d in engine.decisions_for(app, incident.id))


def test_busy_lock_defers_to_the_holder_who_rechecks_the_stream(app):
    engine.ensure_consumer_group(app)
    push(app, [alert(app, "a")])
    assert engine._undelivered(app)
    held = engine._lock(app)
    assert held.acquire(blocking=False)
    try:
        assert engine.process_events(app) == 0  # does not wait for the holder
    finally:
        held.release()
    # the holder's re-check after releasing sees the event nobody has been given yet
    assert engine._undelivered(app)
    assert engine.process_events(app) == 1
    assert not engine._undelivered(app)


def test_a_run_that_lost_the_engine_lock_stops_before_deciding_more(app) -> None:
    """Review finding: a run outliving its lock applied a journal action a second run applied too."""
    from notifier.services.engine_runner import LockLost, _hold, _lock

    mine = _lock(app)
    assert mine.acquire(blocking=False)
    app.extras["engine_lock"] = mine
    _hold(app)  # still ours: renewed
    app.store.redis.delete(app.store.key("engine", "lock"))  # it expired ...
    theirs = _lock(app)
    assert theirs.acquire(blocking=False)  # ... and another worker took it
    with pytest.raises(LockLost):
        _hold(app)
    app.extras.pop("engine_lock")
    theirs.release()
