"""services/delivery.py on the in-memory store: claim, send, retry, reconcile, sweep, staff retry."""

from __future__ import annotations

import pytest

from notifier.domain.model import DeliveryState, Receipt
from notifier.errors import OutcomeUnknown, Permanent, Transient, UsageError
from notifier.services import delivery, incidents
from tests.fakes.memory_app import RecordingChannel, memory_app


def _app(x: RecordingChannel):
    app = memory_app(x=x)
    incidents.open_incident(app, name="IMAP down", components=["imap"], body="Looking")
    app.dispatcher.sent.clear()
    return app


def test_a_notice_is_claimed_posted_once_and_never_sent_again() -> None:
    x = RecordingChannel("x")
    app = _app(x)
    assert delivery.deliver(app, "inc1.1:x").state == "posted"
    assert delivery.deliver(app, "inc1.1:x").state == "posted"  # a repeated task finds it posted
    assert x.sent == [("inc1.1", ("[investigating] Looking",))]
    row = app.store.ledger.get("inc1.1:x")
    assert (row.state, row.remote_id, row.attempt, row.rendered) == (
        DeliveryState.POSTED, "x-inc1.1", 1, ["[investigating] Looking"])


def test_a_transient_error_is_retried_after_its_backoff() -> None:
    x = RecordingChannel("x", failures=[Transient("503 from the API", retry_after=7)])
    app = _app(x)
    first = delivery.deliver(app, "inc1.1:x")
    assert (first.state, first.retry_in, first.detail) == ("retry", 7, "503 from the API")
    row = app.store.ledger.get("inc1.1:x")
    assert (row.state, row.next_at, row.sending_at) == (DeliveryState.PENDING, app.clock.timestamp() + 7, None)
    assert delivery.deliver(app, "inc1.1:x").state == "early"  # not due yet: the stray copy ends
    app.clock.advance(7)
    assert delivery.deliver(app, "inc1.1:x").state == "posted"
    assert app.store.ledger.get("inc1.1:x").attempt == 2
    assert len(x.sent) == 1


def test_a_permanent_error_fails_the_notice_and_staff_can_retry_it() -> None:
    x = RecordingChannel("x", failures=[Permanent("401 bad credentials")])
    app = _app(x)
    assert delivery.deliver(app, "inc1.1:x").state == "failed"
    assert app.store.ledger.get("inc1.1:x").last_error == "401 bad credentials"
    app.clock.advance(3600)
    assert delivery.retry_delivery(app, "inc1.1:x") == "failed"
    assert app.dispatcher.sent == [("inc1.1:x", "x", 0)]
    row = app.store.ledger.get("inc1.1:x")
    assert row.state == DeliveryState.PENDING
    assert row.deadline == app.clock.timestamp() + app.settings.delivery.deadline_hours * 3600
    assert delivery.deliver(app, "inc1.1:x").state == "posted"
    with pytest.raises(UsageError, match="already posted"):
        delivery.retry_delivery(app, "inc1.1:x")


def test_an_unknown_outcome_is_reconciled_not_sent_blind() -> None:
    x = RecordingChannel("x", failures=[OutcomeUnknown("timeout after the request left")])
    app = _app(x)
    assert delivery.deliver(app, "inc1.1:x").state == "unknown"
    x.found = Receipt("x-found", "https://x.test/found")
    app.clock.advance(app.settings.delivery.backoff_max)
    outcome = delivery.deliver(app, "inc1.1:x")
    assert (outcome.state, outcome.detail) == ("posted", "found by reconcile")
    assert x.sent == []  # the post the timeout hid was found, not made a second time
    assert app.store.ledger.get("inc1.1:x").remote_id == "x-found"


def test_the_sweeper_takes_back_a_dead_workers_claim_and_requeues_it() -> None:
    x = RecordingChannel("x")
    app = _app(x)
    ledger = app.store.ledger
    now = app.clock.timestamp()
    claim = ledger.claim("inc1.1:x", now, app.settings.delivery.lease_seconds)
    ledger.mark_sending("inc1.1:x", claim.token, now, ["text"])  # ...and the worker died here
    assert delivery.sweep(app) == {"expired": 0, "enqueued": 0, "failed": 0}  # the lease still runs
    app.clock.advance(app.settings.delivery.lease_seconds + 1)
    assert delivery.sweep(app) == {"expired": 1, "enqueued": 1, "failed": 0}
    assert app.dispatcher.sent == [("inc1.1:x", "x", 0)]
    assert ledger.get("inc1.1:x").state == DeliveryState.UNKNOWN  # maybe sent: it will be reconciled first


def test_the_sweeper_fails_a_pending_notice_past_its_deadline() -> None:
    app = _app(RecordingChannel("x"))
    app.clock.advance(app.settings.delivery.deadline_hours * 3600 + 1)
    assert delivery.sweep(app)["failed"] == 1
    assert app.store.ledger.get("inc1.1:x").state == DeliveryState.FAILED


def test_staff_mark_a_post_found_by_hand() -> None:
    app = _app(RecordingChannel("x"))
    delivery.mark_posted(app, "inc1.1:x", url="https://x.test/by-hand")
    row = app.store.ledger.get("inc1.1:x")
    assert (row.state, row.remote_id, row.url) == (DeliveryState.POSTED, "manual", "https://x.test/by-hand")
    with pytest.raises(UsageError, match="already posted"):
        delivery.mark_posted(app, "inc1.1:x")


@pytest.mark.parametrize(("hint", "grows", "low", "high"), [
    # attempt -> (least, most) seconds, base 2, cap 600
    (None, False, [1, 2, 4, 8, 16], [2, 4, 8, 16, 32]),  # plain backoff: 2, 4, 8 ... × U(0.5, 1)
    (30.0, False, [30] * 5, [30] * 5),  # a rate limit's reset: exactly then, however often
    (1.0, True, [1, 1, 2, 4, 8], [1, 2, 4, 8, 16]),  # a refusal's Retry-After: never less, doubling
    (60.0, True, [60, 60, 120, 240, 300], [60, 120, 240, 480, 600]),  # a 429 without a reset, to the cap
])
def test_retry_wait_schedule(hint, grows, low, high) -> None:
    for _ in range(200):  # the jitter is random: every draw stays inside the step's bounds
        waits = [delivery.retry_wait(n, hint, grows, 2.0, 600.0) for n in range(1, 6)]
        assert all(lo <= w <= hi for w, lo, hi in zip(waits, low, high, strict=True)), waits
    assert delivery.retry_wait(40, 1.0, True, 2.0, 600.0) <= 600  # bounded however many attempts
    assert delivery.retry_wait(40, 1.0, True, 2.0, 600.0) >= 300


def test_a_refusal_with_retry_after_backs_off_further_each_time() -> None:
    x = RecordingChannel("x", failures=[Transient("503 from the API", retry_after=1, grows=True)] * 6)
    app = _app(x)
    waits = []
    for _ in range(6):
        outcome = delivery.deliver(app, "inc1.1:x")
        assert outcome.state == "retry"
        waits.append(outcome.retry_in)
        app.clock.advance(outcome.retry_in + 0.001)  # the fake clock keeps microseconds
    assert waits[0] == 1 and waits[-1] >= 16  # 1, 1..2, 2..4, 4..8, 8..16, 16..32: growing, not 1 s for ever
