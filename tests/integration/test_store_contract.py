"""The store ports' contract: the SAME cases against the in-memory store and the Redis store.

The services' unit tests run on ``MemoryStore``; these cases keep it from drifting from ``RedisStore``
(the incident unit of work, the ledger's state machine, the event stream's consumer group, the engine
state repository and its lock). The Redis half needs a redis-server and carries the integration mark.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from notifier.clock import FakeClock
from notifier.domain.model import (
    ComponentChange,
    ComponentStatus,
    DeliveryState,
    Impact,
    Incident,
    IncidentUpdate,
    Receipt,
)
from notifier.engine.state import EngineState, Group, Window
from notifier.errors import NotFound
from notifier.ports import NewNotice, UpdateCommit
from notifier.store.memory import MemoryStore
from notifier.store.redis_store import RedisStore

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest) -> Any:
    if request.param == "memory":
        return MemoryStore(FakeClock(T0), prefix="c:")
    return RedisStore(request.getfixturevalue("redis_client"), prefix="c:")


def _incident(store: Any, kind: str = "inc") -> Incident:
    return Incident(id=store.next_id(kind), name="IMAP down", status="investigating", impact=Impact.MAJOR,
                    created_at=T0, components=["imap"])


def _publish(store: Any, incident_id: str | None, new: Incident | None, channels: list[str],
             status: str = "investigating", op: str | None = None) -> UpdateCommit:
    def prepare(incident: Incident | None) -> UpdateCommit:
        inc = incident or new
        assert inc is not None
        number = len(inc.updates) + 1
        upd = IncidentUpdate(id=f"{inc.id}.{number}", incident_id=inc.id, number=number, status=status,
                             body={"en": "text"}, created_at=T0, component_statuses={"imap": "major_outage"})
        inc.updates.append(upd)
        inc.status = status
        notices = [NewNotice(f"{upd.id}:{c}", c, upd.id, inc.id, 100.0, 10_000.0) for c in channels]
        change = ComponentChange("imap", ComponentStatus.MAJOR_OUTAGE, T0, inc.id)
        return UpdateCommit(inc, upd, [change] if number == 1 else [], notices, op=op, op_ttl=60 if op else 0)

    return store.commit_update(incident_id, prepare)


# ---- incidents and the unit of work -----------------------------------------------------------------
def test_a_new_incident_is_written_with_its_update_component_change_and_ledger_rows(store: Any) -> None:
    commit = _publish(store, None, _incident(store), ["x", "statuspage"], op="op1")
    stored = store.get_incident(commit.incident.id)
    assert [u.id for u in stored.updates] == ["inc1.1"]
    assert [i.id for i in store.list_incidents(open_only=True)] == ["inc1"]
    assert store.component_status("imap") == ComponentStatus.MAJOR_OUTAGE
    assert [c.status for c in store.component_history("imap")] == [ComponentStatus.MAJOR_OUTAGE]
    assert sorted(r.notice_id for r in store.ledger.rows()) == ["inc1.1:statuspage", "inc1.1:x"]
    assert store.ledger.due(100.0) == ["inc1.1:statuspage", "inc1.1:x"]
    assert store.op_incident("op1") == "inc1"
    assert store.op_incident("other") is None


def test_an_update_appends_and_a_resolution_leaves_the_open_index(store: Any) -> None:
    _publish(store, None, _incident(store), ["x"])
    _publish(store, "inc1", None, ["x"], status="resolved")
    stored = store.get_incident("inc1")
    assert [u.number for u in stored.updates] == [1, 2]
    assert store.list_incidents(open_only=True) == []
    assert [i.id for i in store.list_incidents()] == ["inc1"]
    assert [r.notice_id for r in store.ledger.rows(incident_id="inc1")] == ["inc1.2:x", "inc1.1:x"]


def test_an_already_committed_update_writes_nothing(store: Any) -> None:
    _publish(store, None, _incident(store), ["x"])

    def prepare(incident: Incident | None) -> UpdateCommit:
        assert incident is not None
        notice = NewNotice("inc1.9:x", "x", "inc1.9", "inc1", 100.0, 10_000.0)
        return UpdateCommit(incident, incident.updates[0], notices=[notice], already=True)

    store.commit_update("inc1", prepare)
    assert store.ledger.get("inc1.9:x") is None


def test_an_unknown_incident_is_not_found(store: Any) -> None:
    with pytest.raises(NotFound):
        store.get_incident("inc404")
    with pytest.raises(NotFound):
        _publish(store, "inc404", None, ["x"])


def test_component_status_changes_only_when_it_differs(store: Any) -> None:
    assert store.set_component_status("dns", ComponentStatus.MAJOR_OUTAGE, T0) is True
    assert store.set_component_status("dns", ComponentStatus.MAJOR_OUTAGE, T0 + timedelta(minutes=1)) is False
    assert store.set_component_status("dns", ComponentStatus.OPERATIONAL, T0 + timedelta(minutes=2)) is True
    since = store.component_history("dns", since=T0 + timedelta(minutes=1))
    assert [c.status for c in since] == [ComponentStatus.MAJOR_OUTAGE, ComponentStatus.OPERATIONAL]
    assert store.component_statuses() == {"dns": ComponentStatus.OPERATIONAL}


# ---- the delivery ledger's state machine ------------------------------------------------------------
def _row(store: Any) -> Any:
    _publish(store, None, _incident(store), ["x"])
    return store.ledger


def test_claim_sending_claims_and_fences_in_one_step(store: Any) -> None:
    """Issue 14: the claim and the 'sending' fence as one write; a crash after it is a reconcile."""
    ledger = _row(store)
    assert ledger.fuses_fence
    claim = ledger.claim_sending("inc1.1:x", 100.0, 30, ["first text"])
    assert (claim.mode, claim.attempt, claim.fenced) == ("send", 1, ("first text",))
    row = ledger.get("inc1.1:x")
    assert (row.state, row.sending_at, row.rendered) == (DeliveryState.CLAIMED, 100.0, ["first text"])
    busy = ledger.claim_sending("inc1.1:x", 101.0, 30, ["other"])
    assert (busy.mode, busy.until, busy.fenced) == ("busy", 130.0, None)
    # the worker died after the write: the lease runs out and the row may be out there, so it is reconciled
    assert ledger.expire("inc1.1:x", 131.0) == "unknown"
    again = ledger.claim_sending("inc1.1:x", 131.0, 30, ["other"])
    assert (again.mode, again.attempt, again.fenced) == ("reconcile", 2, None)  # not fenced: look first
    # reconcile found nothing, the request then failed provably unsent: pending, its text kept for the retry
    assert ledger.mark_sending("inc1.1:x", again.token, 132.0, ["first text"])
    assert ledger.release("inc1.1:x", again.token, DeliveryState.PENDING, 133.0, 133.0, "429")
    retry = ledger.claim_sending("inc1.1:x", 134.0, 30, ["a newer rendering"])
    assert (retry.mode, retry.fenced) == ("send", ("first text",))  # a retry publishes the same text
    assert ledger.get("inc1.1:x").rendered == ["first text"]
    assert ledger.mark_posted("inc1.1:x", Receipt("42", ""), 135.0) == "posted"
    assert ledger.claim_sending("inc1.1:x", 136.0, 30, ["x"]).mode == "posted"


def test_claim_send_post_and_nothing_after(store: Any) -> None:
    ledger = _row(store)
    claim = ledger.claim("inc1.1:x", 100.0, 30)
    assert (claim.mode, claim.attempt, claim.held) == ("send", 1, True)
    busy = ledger.claim("inc1.1:x", 101.0, 30)
    assert (busy.mode, busy.until) == ("busy", 130.0)
    assert ledger.mark_sending("inc1.1:x", "not-the-token", 101.0, ["text"]) is False
    assert ledger.mark_sending("inc1.1:x", claim.token, 101.0, ["text"]) is True
    assert ledger.mark_posted("inc1.1:x", Receipt("42", "https://x.test/42", {"k": "v"}), 102.0) == "posted"
    assert ledger.mark_posted("inc1.1:x", Receipt("43", ""), 103.0) == "already"
    row = ledger.get("inc1.1:x")
    assert (row.state, row.remote_id, row.extra, row.rendered, row.posted_at) == (
        DeliveryState.POSTED, "42", {"k": "v"}, ["text"], 102.0)
    assert ledger.claim("inc1.1:x", 200.0, 30).mode == "posted"
    assert ledger.release("inc1.1:x", "", DeliveryState.PENDING, 200.0, 200.0, "again") is False
    assert ledger.due(1e9) == []
    assert ledger.mark_posted("inc9.1:x", Receipt("1", ""), 1.0) == "missing"
    assert ledger.claim("inc9.1:x", 1.0, 30).mode == "missing"


def test_a_transient_failure_waits_for_its_backoff_then_counts_the_attempt(store: Any) -> None:
    ledger = _row(store)
    claim = ledger.claim("inc1.1:x", 100.0, 30)
    assert ledger.release("inc1.1:x", claim.token, DeliveryState.PENDING, 101.0, 110.0, "503") is True
    assert ledger.due(105.0) == [] and ledger.due(110.0) == ["inc1.1:x"]
    early = ledger.claim("inc1.1:x", 105.0, 30)
    assert (early.mode, early.until) == ("early", 110.0)
    again = ledger.claim("inc1.1:x", 110.0, 30)
    assert (again.mode, again.attempt) == ("send", 2)
    row = ledger.get("inc1.1:x")
    assert (row.state, row.last_error, row.sending_at) == (DeliveryState.CLAIMED, "503", None)


def test_an_expired_claim_is_pending_if_never_sent_and_unknown_if_maybe_sent(store: Any) -> None:
    ledger = _row(store)
    _publish(store, "inc1", None, ["x"])
    first = ledger.claim("inc1.1:x", 100.0, 30)
    ledger.claim("inc1.2:x", 100.0, 30)
    ledger.mark_sending("inc1.1:x", first.token, 100.0, ["text"])
    assert ledger.expire("inc1.1:x", 120.0) == ""  # the lease still runs
    assert sorted(ledger.expire_claims(131.0)) == [("inc1.1:x", "unknown"), ("inc1.2:x", "pending")]
    assert ledger.expire_claims(132.0) == []
    reconcile = ledger.claim("inc1.1:x", 131.0, 30)
    assert (reconcile.mode, reconcile.attempt) == ("reconcile", 2)
    assert ledger.claim("inc1.2:x", 131.0, 30).mode == "send"
    row = ledger.get("inc1.1:x")
    assert row.sending_at == 100.0 and "lease expired" in row.last_error


def test_release_without_a_token_moves_only_a_row_nobody_holds_from_the_expected_state(store: Any) -> None:
    ledger = _row(store)
    claim = ledger.claim("inc1.1:x", 100.0, 30)
    assert ledger.release("inc1.1:x", "", DeliveryState.FAILED, 110.0, None, "by hand") is False  # held
    assert ledger.release("inc1.1:x", "wrong", DeliveryState.FAILED, 110.0, None, "x") is False
    assert ledger.release("inc1.1:x", claim.token, DeliveryState.FAILED, 110.0, None, "400 bad") is True
    assert ledger.release("inc1.1:x", "", DeliveryState.PENDING, 120.0, 120.0, "retry",
                          expect=DeliveryState.UNKNOWN) is False
    ledger.set_deadline("inc1.1:x", 99_999.0)
    assert ledger.release("inc1.1:x", "", DeliveryState.PENDING, 120.0, 120.0, "retry",
                          expect=DeliveryState.FAILED) is True
    row = ledger.get("inc1.1:x")
    assert (row.state, row.next_at, row.deadline, row.last_error) == (DeliveryState.PENDING, 120.0, 99_999.0, "retry")
    assert ledger.due(120.0) == ["inc1.1:x"]
    ledger.release("inc1.1:x", "", DeliveryState.UNKNOWN, 121.0, None, "wait for a person")
    assert ledger.get("inc1.1:x").next_at == float("inf")
    assert ledger.due(1e12) == []
    assert ledger.claim("inc1.1:x", 1e12, 30).mode == "early"


def test_a_release_for_an_op_records_the_op_only_when_the_row_moved(store: Any) -> None:
    ledger = _row(store)
    kw: dict[str, Any] = {"keep_sending": False, "op": "op1", "result": "first", "ttl": 60}
    assert ledger.release_for_op("inc1.1:x", DeliveryState.PENDING, 110.0, 110.0, "retry",
                                 expect=DeliveryState.FAILED, **kw) is False  # it is pending, not failed
    assert ledger.op_result("op1", 110.0) is None
    assert ledger.release_for_op("inc1.1:x", DeliveryState.FAILED, 110.0, None, "by hand",
                                 expect=DeliveryState.PENDING, **kw) is True
    assert ledger.op_result("op1", 110.0) == "first"
    assert ledger.op_result("op2", 110.0) is None
    row = ledger.get("inc1.1:x")
    assert (row.state, row.last_error) == (DeliveryState.FAILED, "by hand")
    assert ledger.due(1e12) == []


def test_a_release_for_an_op_recorded_already_moves_nothing_and_returns_that_result(store: Any) -> None:
    """Two requests with one op (a stalled one and its retry) both passed their ``op_result`` look-up;
    the first released. The second, even where its expected state holds (main: it moved the row back and
    overwrote the op's result), moves nothing and gets the first one's result."""
    ledger = _row(store)
    kw: dict[str, Any] = {"keep_sending": False, "op": "op1", "ttl": 60}
    assert ledger.release_for_op("inc1.1:x", DeliveryState.FAILED, 110.0, None, "first",
                                 expect=DeliveryState.PENDING, result="first", **kw) is True
    assert ledger.release_for_op("inc1.1:x", DeliveryState.PENDING, 111.0, 111.0, "second",
                                 expect=DeliveryState.FAILED, result="second", **kw) == "first"
    row = ledger.get("inc1.1:x")
    assert (row.state, row.last_error) == (DeliveryState.FAILED, "first")
    assert ledger.op_result("op1", 111.0) == "first"
    assert ledger.due(1e12) == []


def test_a_commit_writes_the_other_incidents_it_brings_in_the_same_transaction(store: Any) -> None:
    _publish(store, None, _incident(store), ["x"])
    other = Incident(id=store.next_id("inc"), name="Mail", status="investigating", impact=Impact.MAJOR,
                     created_at=T0, components=["smtp"])
    store.save_incident(other)

    def prepare(incident: Incident | None) -> UpdateCommit:
        assert incident is not None
        upd = IncidentUpdate(id="inc1.2", incident_id="inc1", number=2, status="resolved", body={"en": "merged"},
                             created_at=T0)
        incident.updates.append(upd)
        incident.status = "resolved"
        target = store.get_incident(other.id)
        target.components.append("imap")
        return UpdateCommit(incident, upd, op="op9", op_ttl=60, also=[target])

    store.commit_update("inc1", prepare, also_watch=[other.id])
    assert store.get_incident(other.id).components == ["smtp", "imap"]
    assert not store.get_incident("inc1").is_open
    assert store.op_incident("op9") == "inc1"


def test_ledger_rows_filter_newest_first_and_bookkeeping_fields(store: Any) -> None:
    _publish(store, None, _incident(store), ["x", "statuspage"])
    _publish(store, None, _incident(store), ["x"])
    ledger = store.ledger
    ledger.task_seen("inc2.1:x", 150.0)
    ledger.touch_enqueued("inc2.1:x", 160.0)
    assert [r.notice_id for r in ledger.rows(channel="x")] == ["inc2.1:x", "inc1.1:x"]
    assert [r.notice_id for r in ledger.rows(update_id="inc1.1")] == ["inc1.1:x", "inc1.1:statuspage"]
    assert len(ledger.rows(limit=2)) == 2
    assert ledger.rows(state="posted") == []
    row = ledger.get("inc2.1:x")
    assert (row.task_seen_at, row.enqueued_at, row.attempt) == (150.0, 160.0, 0)


def test_claim_records_the_task_sighting_and_a_retry_release_its_expected_task_in_the_same_write(
        store: Any) -> None:
    ledger = _row(store)
    claim = ledger.claim("inc1.1:x", 100.0, 30)
    assert ledger.get("inc1.1:x").task_seen_at == 100.0
    assert ledger.claim("inc1.1:x", 101.0, 30).mode == "busy"
    assert ledger.get("inc1.1:x").task_seen_at == 101.0  # a busy copy is a live task too
    assert ledger.release("inc1.1:x", claim.token, DeliveryState.PENDING, 102.0, 110.0, "503",
                          enqueued_at=110.0) is True
    assert ledger.get("inc1.1:x").enqueued_at == 110.0
    assert ledger.release("inc1.1:x", "stale", DeliveryState.PENDING, 103.0, 120.0, "x", enqueued_at=120.0) is False
    assert ledger.get("inc1.1:x").enqueued_at == 110.0  # a release that did not move the row writes nothing
    ledger.touch_enqueued("inc1.1:x", 130.0, seen=125.0)
    ledger.touch_enqueued_many(["inc1.1:x"], 140.0)
    row = ledger.get("inc1.1:x")
    assert (row.enqueued_at, row.task_seen_at) == (140.0, 125.0)
    ledger.mark_posted("inc1.1:x", Receipt("r1", "https://x/r1"), 150.0)
    ledger.claim("inc1.1:x", 160.0, 30)
    assert ledger.get("inc1.1:x").task_seen_at == 125.0  # a posted row is not written by a stray task


# ---- the event stream -------------------------------------------------------------------------------
def _event(n: int) -> tuple[str, str]:
    return f"e{n}", json.dumps({"n": n})


def test_accept_drops_what_was_seen(store: Any) -> None:
    events = store.events
    assert events.accept([_event(1), _event(2)], 600) == {1, 2}
    assert events.accept([_event(2), _event(3)], 600) == {2}
    assert events.length() == 3


def test_a_consumer_reads_new_entries_then_its_own_pending_ones_until_acknowledged(store: Any) -> None:
    events = store.events
    events.ensure_group()
    events.ensure_group()  # twice is fine
    events.accept([_event(1), _event(2), _event(3)], 600)
    assert events.undelivered()
    first = events.read("w1", 2, 60_000)
    assert [json.loads(f["event"])["n"] for _, f in first] == [1, 2]
    assert events.pending() == 2 and events.undelivered()
    assert events.read("w1", 2, 60_000) == first  # its own pending entries first: it crashed before the ack
    assert events.read("w2", 5, 60_000)[0][1] == {"event": json.dumps({"n": 3})}  # not idle yet: new ones
    assert not events.undelivered()
    events.ack([i for i, _ in first])
    assert events.pending() == 1
    assert events.read("w1", 2, 60_000) == []


def test_a_dead_consumers_entries_are_claimed_by_the_next(store: Any) -> None:
    events = store.events
    events.ensure_group()
    events.accept([_event(1)], 600)
    (entry,) = events.read("dead", 10, 0)
    events.accept([_event(2)], 600)
    assert events.read("alive", 10, 0) == [entry]
    events.ack([entry[0]])
    assert [json.loads(f["event"])["n"] for _, f in events.read("alive", 10, 0)] == [2]


def test_trim_keeps_everything_unacknowledged(store: Any) -> None:
    events = store.events
    events.ensure_group()
    events.accept([_event(n) for n in range(6)], 600)
    read = events.read("w", 4, 60_000)
    events.ack([i for i, _ in read[:2]])
    events.trim(100)
    assert events.length() == 6  # not long enough yet
    events.trim(3)
    assert events.length() == 4  # the two acknowledged ones went; pending and unread stayed
    events.ack([i for i, _ in read[2:]])
    events.trim(1)
    assert events.length() == 2  # the unread ones stay


# ---- the engine state repository ----------------------------------------------------------------------
def test_one_commit_saves_documents_decisions_journal_and_acks(store: Any) -> None:
    repo, events = store.engine_state, store.events
    events.ensure_group()
    events.accept([_event(1)], 600)
    ((entry_id, _),) = events.read("w", 10, 60_000)
    assert repo.version() is None
    state = EngineState(next_id=5)
    state.groups["g1"] = Group(id="g1", key="k1", created=1.0, last_alert_at=1.0)
    state.touched.add("group:g1")
    repo.commit(state, [("g1", {"at": 1.0, "kind": "joined"}), ("_global", {"at": 2.0, "kind": "ignored"})],
                ['{"type": "OpenIncident"}'], [entry_id], global_cap=1000)
    assert events.pending() == 0
    assert state.touched == set()
    loaded = repo.load()
    assert (list(loaded.groups), loaded.next_id, loaded.keys) == (["g1"], 5, {"k1": "g1"})
    assert repo.decisions("g1") == [{"at": 1.0, "kind": "joined"}]
    assert repo.journal_head() == '{"type": "OpenIncident"}' and repo.journal_length() == 1
    version = repo.version()
    state.closed.append("g1")
    repo.commit(state, [("_global", {"at": 3.0})], [], [], global_cap=1)
    assert repo.load().groups == {}
    assert repo.decisions("_global") == [{"at": 3.0}]
    assert repo.version() != version


def test_the_journal_pops_with_its_attempt_marker(store: Any) -> None:
    repo = store.engine_state
    repo.commit(EngineState(), [], ["a", "b"], [], global_cap=10)
    repo.mark_journal_attempt("digest-a", 100.5)
    assert repo.journal_attempt() == {"digest": "digest-a", "at": "100.5"}
    repo.pop_journal()
    assert (repo.journal_head(), repo.journal_attempt()) == ("b", {})
    repo.pop_journal()
    assert repo.journal_head() is None


def test_maps_drafts_windows_and_logs(store: Any) -> None:
    repo = store.engine_state
    repo.link("g1", "inc1", draft=("g1:1", "inc1.1"))
    repo.link("g2", "inc2")
    assert (repo.incident_of("g1"), repo.group_of("inc1"), repo.draft("g1:1")) == ("inc1", "g1", "inc1.1")
    repo.relink("g2", "inc2", "inc1")
    assert (repo.incident_of("g2"), repo.group_of("inc1"), repo.group_of("inc2")) == ("inc1", "g2", None)
    repo.unlink("g1", "inc1")
    assert (repo.incident_of("g1"), repo.incident_groups()) == (None, {})
    repo.remember_draft("g2:3", "inc1.3")
    assert repo.draft("g2:3") == "inc1.3" and repo.draft("nope") is None
    before = repo.version()
    repo.save_window(Window("mnt1", "Upgrade", ["imap"], 100.0, 200.0, ["start"]))
    assert [w.id for w in repo.windows()] == ["mnt1"] and repo.version() != before
    repo.record("mnt1", {"at": 1.0, "kind": "maintenance"})
    assert repo.decisions("mnt1") == [{"at": 1.0, "kind": "maintenance"}]
    assert repo.decisions("none") == []


def test_the_run_lock_is_held_by_one_and_renewed_only_by_its_holder(store: Any) -> None:
    repo = store.engine_state
    mine, theirs = repo.lock(30), repo.lock(30)
    assert mine.acquire(blocking=False) is True
    assert theirs.acquire(blocking=False) is False
    assert mine.reacquire()
    with pytest.raises(Exception):  # noqa: B017 - redis-py's LockNotOwnedError, or the memory store's
        theirs.reacquire()
    mine.release()
    assert theirs.acquire(blocking=False) is True
    with pytest.raises(Exception):  # noqa: B017
        mine.release()
    theirs.release()

# -- commit_update(op=...): the store's half of "at most one commit per Idempotency-Key" (the API's half:
# test_api_idempotency_race). A guarded commit whose op has landed (before it, or while its ``prepare``
# ran) writes nothing and returns the commit that landed, ``already`` set.


def _opener(store: Any, op: str, during: Any = None, fp: str = "") -> Any:
    """A ``prepare`` opening a new incident with one update of ``op`` and one ledger row; ``during()``
    runs inside it (another request's commit, landing under this one's transaction)."""
    new = Incident(id=store.next_id("brd"), name="Notice", status="broadcast", impact=Impact.NONE,
                   created_at=T0, kind="broadcast")

    def prepare(incident: Incident | None) -> UpdateCommit:
        if during is not None:
            during()
        inc = incident or new
        upd = IncidentUpdate(id=f"{inc.id}.1", incident_id=inc.id, number=1, status="broadcast",
                             body={"en": "once"}, created_at=T0, op_id=op)
        inc.updates = [upd]
        return UpdateCommit(inc, upd, notices=[NewNotice(f"{upd.id}:x", "x", upd.id, inc.id, 100.0, 10_000.0)],
                            op=op, op_ttl=60, **({"op_fp": fp} if fp else {}))

    return prepare


def test_a_guarded_commit_whose_op_landed_writes_nothing_and_returns_that_commit(store: Any) -> None:
    first = store.commit_update(None, _opener(store, "op1"), op="op1")
    assert not first.already and store.op_incident("op1") == "brd1"
    late = store.commit_update(None, _opener(store, "op1"), op="op1")  # brd2 would be its incident
    assert late.already and late.incident.id == "brd1" and late.update.id == "brd1.1"
    assert [i.id for i in store.list_incidents()] == ["brd1"]
    assert [r.notice_id for r in store.ledger.rows()] == ["brd1.1:x"]
    other = store.commit_update(None, _opener(store, "op2"), op="op2")  # another op is another write
    assert not other.already and other.incident.id == "brd3"


def test_an_op_keeps_the_fingerprint_of_the_request_that_made_it(store: Any) -> None:
    """The staff API's 422 for a key reused with another body, once the first request's lease ran out,
    reads the fingerprint kept with the op (``incidents._commit``): by look-up and from the guard."""
    first = store.commit_update(None, _opener(store, "op1", fp="fp-a"), op="op1")
    assert not first.already and store.op_commit("op1") == ("brd1", "fp-a")
    assert store.op_incident("op1") == "brd1"
    late = store.commit_update(None, _opener(store, "op1", fp="fp-b"), op="op1")
    assert late.already and (late.incident.id, late.op_fp) == ("brd1", "fp-a")  # the landed commit's
    assert store.op_commit("other") is None


@pytest.mark.integration
def test_op_keeps_a_bare_incident_id_that_the_previous_version_reads(redis_client: Any) -> None:
    """Rolling upgrade: ``op:<op>`` stays the bare incident id (what the previous version's API and
    workers read); the fingerprint is a key of its own. An op the previous version wrote (no
    fingerprint) is still replayed, by any request with the key."""
    store = RedisStore(redis_client, prefix="c:")
    store.commit_update(None, _opener(store, "op1", fp="fp-a"), op="op1")
    assert (redis_client.get("c:op:op1"), redis_client.get("c:op:op1:fp")) == ("brd1", "fp-a")
    old = store.commit_update(None, _opener(store, "op2"), op="op2")  # as the previous version wrote it
    assert redis_client.get("c:op:op2") == old.incident.id and redis_client.get("c:op:op2:fp") is None
    again = store.commit_update(None, _opener(store, "op2", fp="fp-z"), op="op2")
    assert again.already and (again.incident.id, again.op_fp) == (old.incident.id, "")


@pytest.mark.integration
def test_a_commit_of_the_op_landing_under_the_guarded_transaction_aborts_it(redis_client: Any) -> None:
    store = RedisStore(redis_client, prefix="c:")
    landed: list[UpdateCommit] = []

    def retry_commits() -> None:  # once: the retry's commit, between the guard's GET and its EXEC
        if not landed:
            landed.append(store.commit_update(None, _opener(store, "op1"), op="op1"))

    held = store.commit_update(None, _opener(store, "op1", during=retry_commits), op="op1")
    (retry,) = landed
    assert not retry.already and retry.incident.id == "brd2"
    assert held.already and held.incident.id == "brd2"  # the EXEC aborted; the re-run found the retry's
    assert [i.id for i in store.list_incidents()] == ["brd2"]
    assert [r.notice_id for r in store.ledger.rows()] == ["brd2.1:x"]
