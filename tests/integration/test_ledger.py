"""The ledger's transitions against a real Redis (the Lua scripts are the thing under test)."""

from __future__ import annotations

import threading

import pytest

from notifier.domain.model import DeliveryState, Receipt
from notifier.store.ledger import Ledger

pytestmark = pytest.mark.integration


@pytest.fixture
def ledger(redis_client) -> Ledger:
    led = Ledger(redis_client, "t:")
    pipe = redis_client.pipeline()
    led.create_in(pipe, "inc1.1:x", "x", "inc1.1", "inc1", now=100.0, deadline=10_000.0)
    pipe.execute()
    return led


def test_only_one_of_many_concurrent_claims_wins(ledger: Ledger) -> None:
    results = []
    barrier = threading.Barrier(16)

    def grab() -> None:
        barrier.wait()
        results.append(ledger.claim("inc1.1:x", now=101.0, lease=10))

    threads = [threading.Thread(target=grab) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [c.mode for c in results].count("send") == 1
    assert {c.mode for c in results} == {"send", "busy"}


def test_posted_is_final_and_a_second_claim_does_nothing(ledger: Ledger) -> None:
    claim = ledger.claim("inc1.1:x", 101.0, 10)
    assert ledger.mark_sending("inc1.1:x", claim.token, 101.5, ["text"])
    assert ledger.mark_posted("inc1.1:x", Receipt("42", "https://x/42"), 102.0) == "posted"
    assert ledger.claim("inc1.1:x", 200.0, 10).mode == "posted"
    assert ledger.mark_posted("inc1.1:x", Receipt("43"), 103.0) == "already"
    row = ledger.get("inc1.1:x")
    assert row is not None and row.remote_id == "42" and row.state == DeliveryState.POSTED


def test_expired_claim_never_sent_goes_back_to_pending(ledger: Ledger) -> None:
    ledger.claim("inc1.1:x", 101.0, 10)
    assert ledger.expire_claims(105.0) == []  # lease still running
    assert ledger.expire_claims(112.0) == [("inc1.1:x", "pending")]
    assert ledger.claim("inc1.1:x", 113.0, 10).mode == "send"


def test_expired_claim_after_sending_becomes_unknown_and_is_reconciled(ledger: Ledger) -> None:
    claim = ledger.claim("inc1.1:x", 101.0, 10)
    ledger.mark_sending("inc1.1:x", claim.token, 101.0, ["text"])
    assert ledger.expire_claims(112.0) == [("inc1.1:x", "unknown")]
    again = ledger.claim("inc1.1:x", 113.0, 10)
    assert again.mode == "reconcile" and again.attempt == 2


def test_a_lost_claim_cannot_send_or_release(ledger: Ledger) -> None:
    old = ledger.claim("inc1.1:x", 101.0, 10)
    ledger.expire_claims(112.0)
    new = ledger.claim("inc1.1:x", 113.0, 10)
    assert not ledger.mark_sending("inc1.1:x", old.token, 113.5, ["t"])
    assert not ledger.release("inc1.1:x", old.token, DeliveryState.FAILED, 114.0, None, "late")
    assert ledger.mark_sending("inc1.1:x", new.token, 114.0, ["t"])


def test_retry_waits_until_next_at(ledger: Ledger) -> None:
    claim = ledger.claim("inc1.1:x", 101.0, 10)
    ledger.release("inc1.1:x", claim.token, DeliveryState.PENDING, 102.0, 130.0, "HTTP 503")
    early = ledger.claim("inc1.1:x", 110.0, 10)
    assert early.mode == "early" and early.until == 130.0
    assert ledger.due(120.0) == [] and ledger.due(131.0) == ["inc1.1:x"]
    assert ledger.claim("inc1.1:x", 131.0, 10).mode == "send"


def test_rows_filter(ledger: Ledger, redis_client) -> None:
    pipe = redis_client.pipeline()
    ledger.create_in(pipe, "inc1.1:y", "y", "inc1.1", "inc1", now=100.0, deadline=10_000.0)
    ledger.create_in(pipe, "inc2.1:x", "x", "inc2.1", "inc2", now=101.0, deadline=10_000.0)
    pipe.execute()
    assert [r.notice_id for r in ledger.rows(channel="x")] == ["inc2.1:x", "inc1.1:x"]
    assert {r.notice_id for r in ledger.rows(incident_id="inc1")} == {"inc1.1:x", "inc1.1:y"}
    assert [r.notice_id for r in ledger.rows(update_id="inc2.1")] == ["inc2.1:x"]


def test_fencing_a_presumed_dead_send_cannot_overwrite_its_successor(ledger: Ledger) -> None:
    """A send outlives its lease (the case the per-request deadline exists to prevent, fenced here as
    well): its row expired to unknown and a second worker holds it, reconciling. Whatever the late first
    sender then reports, only the truth of a post may land; no stale move can reset the row."""
    nid = "inc1.1:x"
    stale = ledger.claim(nid, 101.0, 10)
    assert ledger.mark_sending(nid, stale.token, 101.5, ["text"])
    assert ledger.expire_claims(112.0) == [(nid, "unknown")]
    fresh = ledger.claim(nid, 113.0, 10)
    assert fresh.mode == "reconcile" and fresh.token != stale.token
    before = ledger.get(nid)
    assert before is not None
    # the late answers of the stale sender: a retry (which would clear sending_at: "provably not sent",
    # so a blind re-post), an unknown, a failure, and a second mark_sending. All refused, none changes the row.
    assert not ledger.release(nid, stale.token, DeliveryState.PENDING, 114.0, 114.0, "late 429")
    assert not ledger.release(nid, stale.token, DeliveryState.UNKNOWN, 114.0, 120.0, "late timeout",
                              keep_sending=True)
    assert not ledger.release(nid, stale.token, DeliveryState.FAILED, 114.0, None, "late 403")
    assert not ledger.mark_sending(nid, stale.token, 114.0, ["other text"])
    assert ledger.get(nid) == before
    # a late success is the truth and is recorded (a post that exists is never forgotten) ...
    assert ledger.mark_posted(nid, Receipt("42", "https://x/42"), 115.0) == "posted"
    # ... and then fences the successor: it cannot send again or move the posted row
    assert not ledger.mark_sending(nid, fresh.token, 116.0, ["text"])
    assert not ledger.release(nid, fresh.token, DeliveryState.PENDING, 116.0, 116.0, "reconcile found nothing")
    assert ledger.claim(nid, 200.0, 10).mode == "posted"
    row = ledger.get(nid)
    assert row is not None and row.state == DeliveryState.POSTED and row.remote_id == "42"
