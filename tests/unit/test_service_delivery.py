"""services/delivery.py on the in-memory store: claim, send, retry, reconcile, sweep, staff retry."""

from __future__ import annotations

import pytest

from notifier.domain.model import DeliveryState, Receipt
from notifier.errors import NotReplicated, OutcomeUnknown, Permanent, Transient, UsageError
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


class _ShortReplicas:
    """The in-memory ledger with WAIT falling short, as ReplicatedLedger reports it: the fence gives the
    row back as pending due in ``fence_retry`` s and raises; a 'posted' stays written and raises."""

    fence_retry = 5.0

    def __init__(self, ledger, fence: bool = True, posted: bool = True) -> None:
        self.ledger, self.fence, self.posted = ledger, fence, posted

    def __getattr__(self, name: str):
        return getattr(self.ledger, name)

    def mark_sending(self, notice_id: str, token: str, now: float, rendered: list[str]) -> bool:
        marked = self.ledger.mark_sending(notice_id, token, now, rendered)
        if marked and self.fence:
            self.ledger.release(notice_id, token, DeliveryState.PENDING, now, now + self.fence_retry, "not sent",
                                enqueued_at=now + self.fence_retry)
            exc = NotReplicated("only 0 of redis.min_replicas=1 replicas confirmed the write within 300 ms")
            exc.retry_after = self.fence_retry
            raise exc
        return marked

    def mark_posted(self, notice_id: str, receipt: Receipt, now: float) -> str:
        result = self.ledger.mark_posted(notice_id, receipt, now)
        if self.posted:
            raise NotReplicated("only 0 of redis.min_replicas=1 replicas confirmed the write within 300 ms")
        return result


def test_an_unreplicated_fence_sends_nothing_and_comes_back_in_seconds() -> None:
    x = RecordingChannel("x")
    app = _app(x)
    short = _ShortReplicas(app.store.ledger, posted=False)
    app.store.ledger = short
    outcome = delivery.deliver(app, "inc1.1:x")
    assert (outcome.state, outcome.retry_in) == ("retry", 5.0), outcome
    assert "replicas" in outcome.detail
    assert x.sent == []
    row = short.get("inc1.1:x")
    assert (row.state, row.sending_at, row.next_at) == (DeliveryState.PENDING, None, app.clock.timestamp() + 5)
    short.fence = False  # the replica is back
    app.clock.advance(5)
    assert delivery.deliver(app, "inc1.1:x").state == "posted"
    assert len(x.sent) == 1


def test_a_post_whose_ledger_row_is_not_replicated_yet_is_posted_once() -> None:
    x = RecordingChannel("x")
    app = _app(x)
    app.store.ledger = _ShortReplicas(app.store.ledger, fence=False)
    outcome = delivery.deliver(app, "inc1.1:x")
    assert outcome.state == "posted" and outcome.retry_in is None and "replicas" in outcome.detail, outcome
    assert delivery.deliver(app, "inc1.1:x").state == "posted"  # on the master: a repeated task sends nothing
    assert len(x.sent) == 1


class _CountingLedger:
    """The in-memory ledger, counting which transitions ``deliver`` used."""

    def __init__(self, ledger) -> None:
        self.ledger, self.calls = ledger, []

    def __getattr__(self, name: str):
        attr = getattr(self.ledger, name)
        if callable(attr):
            return lambda *a, **k: (self.calls.append(name), attr(*a, **k))[1]
        return attr


@pytest.mark.parametrize(("exact", "fuse", "calls"), [
    (True, None, ["claim_sending", "mark_posted"]),  # X, Facebook: exact, so one write, then send
    (False, True, ["claim_sending", "mark_posted"]),  # a webhook (with or without status_url): one write too
    (False, None, ["claim", "mark_sending", "mark_posted"]),  # e-mail, Apprise: claim, then fence
    (True, False, ["claim", "mark_sending", "mark_posted"]),  # a channel may refuse it
])
def test_a_channel_that_fuses_its_fence_claims_and_fences_in_one_write(exact: bool, fuse: bool | None,
                                                                        calls: list[str]) -> None:
    x = RecordingChannel("x")
    x.exact_reconcile, x.fuse_fence = exact, fuse
    app = _app(x)
    counting = _CountingLedger(app.store.ledger)
    app.store.ledger = counting
    assert delivery.deliver(app, "inc1.1:x").state == "posted"
    assert [c for c in counting.calls if c not in ("get", "get_many")] == calls
    assert x.sent == [("inc1.1", ("[investigating] Looking",))]
    row = counting.get("inc1.1:x")
    assert (row.rendered, row.attempt, row.sending_at is not None) == (["[investigating] Looking"], 1, True)


def test_a_ledger_whose_fence_does_more_than_the_write_is_never_fused() -> None:
    from notifier.store.ledger import Ledger
    from notifier.store.redis_store import ReplicatedLedger

    class _Scripts:
        def register_script(self, _source: str) -> None:
            return None

    assert Ledger(_Scripts(), "p:").fuses_fence
    assert not ReplicatedLedger(_Scripts(), "p:", replication=None).fuses_fence  # type: ignore[arg-type]


def test_which_built_channels_claim_and_fence_in_one_write() -> None:
    import redis

    from notifier.bootstrap import build
    from notifier.config_loader import parse_settings

    settings = parse_settings("""
components: [{id: imap, name: IMAP}]
channels:
  hook: {type: webhook, url: "http://hooks.invalid/in"}
  checked: {type: webhook, url: "http://hooks.invalid/in", status_url: "http://hooks.invalid/status"}
  x: {type: x, user_token: "${X_TOKEN}"}
  out: {type: outbox, path: /nonexistent/outbox.jsonl}
""", "test", env={"X_TOKEN": "t"})
    app = build(settings, redis_client=redis.Redis(host="unused.invalid"))  # build() makes no Redis call
    assert {name: ch.fuses_fence for name, ch in app.channels.items()} == {
        "hook": True, "checked": True, "x": True, "out": False}
    assert (app.channel("hook").exact_reconcile, app.channel("checked").exact_reconcile) == (False, True)


def test_a_keyed_retry_whose_op_another_request_released_meanwhile_answers_as_that_one() -> None:
    """Two staff retries with one Idempotency-Key (a stalled request and the client's retry): B looks the
    op up and reads the row before A releases it, A releases and records the op, then B releases. B
    moves nothing and answers as A did (main: "changed while we looked", a 422 kept under the key)."""
    from notifier.services import idempotent

    x = RecordingChannel("x", failures=[Permanent("401 bad credentials")])
    app = _app(x)
    assert delivery.deliver(app, "inc1.1:x").state == "failed"
    ledger, set_deadline = app.store.ledger, app.store.ledger.set_deadline
    a_ran: list[str] = []
    armed = [True]

    def a_releases_first(*args: object, **kwargs: object) -> None:
        if armed.pop() if armed else False:  # B is past its op look-up and its row read: A runs now, whole
            a_ran.append(delivery.retry_delivery(app, "inc1.1:x"))
        set_deadline(*args, **kwargs)

    ledger.set_deadline = a_releases_first
    token = idempotent.current_op.set("op-of-the-key")
    try:
        b = delivery.retry_delivery(app, "inc1.1:x")
    finally:
        idempotent.current_op.reset(token)
    assert a_ran == ["failed"] and b == "failed"
    assert ledger.get("inc1.1:x").state == DeliveryState.PENDING
    assert app.dispatcher.sent == [("inc1.1:x", "x", 0)]  # handed to the workers once, by A


def test_a_keyed_retry_whose_op_another_body_recorded_is_refused_not_answered_with_that_one() -> None:
    """The key of a committed staff retry reused with another body (the first request died before its
    answer was kept, its lease ran out): Claimed, which the staff API answers 422; nothing moves again.
    (Main: the first retry's answer, for a request it was not made for.)"""
    from notifier.services import idempotent

    x = RecordingChannel("x", failures=[Permanent("401 bad credentials")])
    app = _app(x)
    assert delivery.deliver(app, "inc1.1:x").state == "failed"

    def keyed(fingerprint: str, force: bool) -> str:
        tokens = (idempotent.current_op.set("op-of-the-key"),
                  idempotent.current_record.set(idempotent.Record("rec", fingerprint)))
        try:
            return delivery.retry_delivery(app, "inc1.1:x", force=force)
        finally:
            idempotent.current_op.reset(tokens[0])
            idempotent.current_record.reset(tokens[1])

    assert keyed("fp-a", force=False) == "failed"
    with pytest.raises(idempotent.Claimed) as refused:
        keyed("fp-b", force=True)
    assert refused.value.found == {"state": "done", "fp": "fp-a"}
    assert keyed("fp-a", force=False) == "failed"  # the first request's retry: its answer
    assert app.dispatcher.sent == [("inc1.1:x", "x", 0)]
