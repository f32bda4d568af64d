"""The delivery state machine on a fake clock, with a scripted channel (a hand-written fake of the
channel port) and a real Redis. Each scenario drives ``deliver`` the way the worker task would."""

from __future__ import annotations

from typing import ClassVar

import pytest

from notifier.bootstrap import build
from notifier.channels.base import Channel, Rendering
from notifier.clock import FakeClock
from notifier.config_loader import parse_settings
from notifier.domain.model import DeliveryState, Notice, Receipt
from notifier.errors import CannotReconcile, OutcomeUnknown, Permanent, Transient, UsageError
from notifier.ports import NullDispatcher
from notifier.services import delivery, incidents

pytestmark = pytest.mark.integration


class ScriptedChannel(Channel):
    """Raises the queued errors in order, then succeeds; remembers what it posted."""

    type_name = "scripted"
    script: ClassVar[list[Exception]] = []
    posted: ClassVar[list[tuple[str, str]]] = []
    found: ClassVar[dict[str, Receipt]] = {}
    reconcilable: ClassVar[bool] = True
    renders: ClassVar[int] = 0

    def render(self, notice: Notice) -> Rendering:
        type(self).renders += 1
        return Rendering(parts=(f"{notice.update.text('en')} {notice.marker}",), language="en")

    def send(self, notice: Notice, rendering: Rendering) -> Receipt:
        if self.script:
            raise self.script.pop(0)
        self.posted.append((notice.id, rendering.text))
        return Receipt(remote_id=f"r{len(self.posted)}", url=f"https://s/{len(self.posted)}",
                       extra={"thread": notice.previous.get("remote_id", "root")})

    def reconcile(self, notice: Notice, since: float | None = None) -> Receipt | None:
        if not self.reconcilable:
            raise CannotReconcile("no way to ask")
        return self.found.get(notice.id)


class OrderedChannel(ScriptedChannel):
    type_name = "ordered"
    ordered = True


class QueueDispatcher(NullDispatcher):
    """NullDispatcher whose queues hold what a test says (``backlogs``; a channel not in it: empty)."""

    def __init__(self) -> None:
        super().__init__()
        self.backlogs: dict[str, int | None] = {}

    def backlog(self, channel: str) -> int | None:
        return self.backlogs.get(channel, 0)


FAKE_TYPES: dict[str, type[Channel]] = {"scripted": ScriptedChannel, "ordered": OrderedChannel}


@pytest.fixture
def env(redis_server):
    ScriptedChannel.script, ScriptedChannel.posted, ScriptedChannel.found = [], [], {}
    ScriptedChannel.reconcilable, ScriptedChannel.renders = True, 0
    settings = parse_settings(
        f"redis: {{url: '{redis_server.url}'}}\ncomponents: [{{id: imap, name: IMAP}}]\n"
        "delivery: {deadline_hours: 1, backoff_base: 2, backoff_max: 60}\n", "t", {})
    # the fake types are not in the registry the config loader validates against: their channel
    # settings are made here, and the composition root gets the classes through channel_types
    settings.channels = {name: cls.settings_model(type=cls.type_name)
                         for name, cls in (("s", ScriptedChannel), ("o", OrderedChannel))}
    clock = FakeClock()
    dispatcher = QueueDispatcher()
    app = build(settings, clock=clock, dispatcher=dispatcher, channel_types=FAKE_TYPES, redis_url=redis_server.url)
    return app, clock, dispatcher


def state(app, nid: str) -> DeliveryState:
    return app.store.ledger.get(nid).state


def test_transient_errors_back_off_then_post_once(env) -> None:
    app, clock, _ = env
    ScriptedChannel.script = [Transient("HTTP 503"), Transient("rate limited", retry_after=30)]
    inc = incidents.open_incident(app, name="IMAP", components=["imap"], body="down", channels=["s"])
    nid = f"{inc.updates[0].id}:s"
    first = delivery.deliver(app, nid)
    assert first.state == "retry" and 1 <= first.retry_in <= 2  # 2 s × U(0.5, 1)
    assert delivery.deliver(app, nid).state == "early"  # not due yet: nothing is sent
    clock.advance(first.retry_in + 0.001)
    second = delivery.deliver(app, nid)
    assert second.retry_in == 30  # the channel's own Retry-After wins over our backoff
    clock.advance(30)
    assert delivery.deliver(app, nid).state == "posted"
    assert delivery.deliver(app, nid).state == "posted"  # a redelivered task does nothing
    assert [p[0] for p in ScriptedChannel.posted] == [nid]
    assert ScriptedChannel.renders == 1, "the text is rendered once and reused on every attempt"


def test_a_notice_whose_incident_is_gone_fails_with_the_reason(env) -> None:
    """``deliver`` reads the row and the incident named by the notice id together; a missing incident
    still fails the row (never sent)."""
    app, _, _ = env
    inc = incidents.open_incident(app, name="IMAP", components=["imap"], body="down", channels=["s"])
    nid = f"{inc.updates[0].id}:s"
    app.store.redis.delete(app.store.key("incident", inc.id))
    assert delivery.deliver(app, nid).state == "failed"
    row = app.store.ledger.get(nid)
    assert row.state == DeliveryState.FAILED and row.last_error == "its incident or update no longer exists"
    assert ScriptedChannel.posted == []


def test_the_rows_own_incident_wins_over_the_one_its_id_names(env) -> None:
    """The incident read with the row (named by the notice id) is used only if the row names it too."""
    app, _, _ = env
    first = incidents.open_incident(app, name="IMAP", components=["imap"], body="first down", channels=["s"])
    other = incidents.open_incident(app, name="IMAP", components=["imap"], body="other down", channels=["s"])
    nid = f"{first.updates[0].id}:s"
    app.store.redis.hset(app.store.ledger.row_key(nid),
                         mapping={"incident_id": other.id, "update_id": other.updates[0].id})
    assert delivery.deliver(app, nid).state == "posted"
    assert ScriptedChannel.posted[0][0] == f"{other.updates[0].id}:s"
    assert "other down" in ScriptedChannel.posted[0][1]


def test_an_updates_notices_are_read_together_and_each_sent_from_that_read(env) -> None:
    """``read_many`` (what the worker's update task does first): every row and their incident in one
    pipeline; a notice without a row reads as None; ``deliver`` then sends from it."""
    app, _, _ = env
    inc = incidents.open_incident(app, name="IMAP", components=["imap"], body="down", channels=["s", "o"])
    ids = [f"{inc.updates[0].id}:s", f"{inc.updates[0].id}:o", f"{inc.updates[0].id}:gone"]
    reads = delivery.read_many(app, ids)
    assert [r.notice_id if r else None for r, _ in reads] == [ids[0], ids[1], None]
    assert reads[0][1] is not None and reads[0][1].id == inc.id and reads[1][1] is reads[0][1]
    assert reads[2] == (None, None)
    assert [delivery.deliver(app, nid, read).state for nid, read in zip(ids, reads, strict=True)] == \
        ["posted", "posted", "skipped"]
    assert sorted(p[0] for p in ScriptedChannel.posted) == sorted(ids[:2])


def test_deadline_turns_endless_transient_errors_into_failed(env) -> None:
    app, clock, _ = env
    ScriptedChannel.script = [Transient("HTTP 503") for _ in range(100)]
    inc = incidents.open_incident(app, name="IMAP", components=["imap"], body="down", channels=["s"])
    nid = f"{inc.updates[0].id}:s"
    outcome = delivery.deliver(app, nid)
    while outcome.state == "retry":
        clock.advance(outcome.retry_in + 0.001)  # timedelta keeps only microseconds
        outcome = delivery.deliver(app, nid)
    assert outcome.state == "failed"
    row = app.store.ledger.get(nid)
    assert row.state == DeliveryState.FAILED and "gave up after 1 h" in row.last_error
    assert "notifier deliveries retry" in row.last_error
    assert ScriptedChannel.posted == []
    delivery.retry_delivery(app, nid)  # staff: the channel works again
    ScriptedChannel.script = []
    assert delivery.deliver(app, nid).state == "posted"


def test_permanent_error_fails_at_once_with_the_reason(env) -> None:
    app, _, _ = env
    ScriptedChannel.script = [Permanent("token expired: renew channels.s.token")]
    inc = incidents.open_incident(app, name="IMAP", components=["imap"], body="down", channels=["s"])
    nid = f"{inc.updates[0].id}:s"
    assert delivery.deliver(app, nid).state == "failed"
    assert app.store.ledger.get(nid).last_error == "token expired: renew channels.s.token"


def test_unknown_outcome_is_reconciled_never_reposted_blind(env) -> None:
    app, clock, _ = env
    ScriptedChannel.script = [OutcomeUnknown("timed out after sending")]
    inc = incidents.open_incident(app, name="IMAP", components=["imap"], body="down", channels=["s"])
    nid = f"{inc.updates[0].id}:s"
    outcome = delivery.deliver(app, nid)
    assert outcome.state == "unknown" and state(app, nid) == DeliveryState.UNKNOWN
    ScriptedChannel.found[nid] = Receipt("remote-7", "https://s/7")  # it did arrive
    clock.advance(outcome.retry_in + 0.001)  # timedelta keeps only microseconds
    assert delivery.deliver(app, nid).state == "posted"
    assert ScriptedChannel.posted == [] and app.store.ledger.get(nid).remote_id == "remote-7"


def test_unknown_with_nothing_found_is_sent_once(env) -> None:
    app, clock, _ = env
    ScriptedChannel.script = [OutcomeUnknown("HTTP 500")]
    inc = incidents.open_incident(app, name="IMAP", components=["imap"], body="down", channels=["s"])
    nid = f"{inc.updates[0].id}:s"
    clock.advance(delivery.deliver(app, nid).retry_in + 0.001)
    assert delivery.deliver(app, nid).state == "posted"
    assert [p[0] for p in ScriptedChannel.posted] == [nid]


def test_channel_that_cannot_reconcile_holds_for_a_person(env) -> None:
    app, clock, _ = env
    ScriptedChannel.script = [OutcomeUnknown("timeout")]
    ScriptedChannel.reconcilable = False
    inc = incidents.open_incident(app, name="IMAP", components=["imap"], body="down", channels=["s"])
    nid = f"{inc.updates[0].id}:s"
    clock.advance(delivery.deliver(app, nid).retry_in + 0.001)
    assert delivery.deliver(app, nid).state == "held"
    assert state(app, nid) == DeliveryState.UNKNOWN and app.store.ledger.due(clock.timestamp() + 1e6) == []
    with pytest.raises(UsageError, match="no notice"):
        delivery.retry_delivery(app, "inc99.1:s")
    delivery.retry_delivery(app, nid, force=True)
    assert delivery.deliver(app, nid).state == "posted"


def test_ordered_channel_waits_for_the_previous_post_and_threads(env) -> None:
    app, _, _ = env
    inc = incidents.open_incident(app, name="IMAP", components=["imap"], body="down", channels=["o"])
    upd = incidents.update_incident(app, inc.id, status="identified", body="found", channels=["o"])
    first, second = f"{inc.updates[0].id}:o", f"{upd.id}:o"
    assert delivery.deliver(app, second).state == "deferred"
    assert delivery.deliver(app, first).state == "posted"
    assert delivery.deliver(app, second).state == "posted"
    assert app.store.ledger.get(second).extra == {"thread": "r1"}  # it replied to the first post


def test_sweeper_recovers_lost_tasks_and_dead_claims(env) -> None:
    app, clock, dispatcher = env
    inc = incidents.open_incident(app, name="IMAP", components=["imap"], body="down", channels=["s"])
    nid = f"{inc.updates[0].id}:s"
    dispatcher.sent.clear()  # the task message was lost
    assert delivery.sweep(app)["enqueued"] == 0  # too fresh: its task may still be queued
    clock.advance(app.settings.delivery.requeue_after + 1)
    assert delivery.sweep(app)["enqueued"] == 1 and dispatcher.sent[-1][0] == nid
    app.store.ledger.claim(nid, clock.timestamp(), app.settings.delivery.lease_seconds)  # then the worker died
    clock.advance(app.settings.delivery.lease_seconds + 1)
    result = delivery.sweep(app)
    assert result["expired"] == 1 and result["enqueued"] == 1
    assert state(app, nid) == DeliveryState.PENDING  # it never marked sending: provably not sent


def test_drafts_have_no_deliveries_until_approved(env) -> None:
    app, _, dispatcher = env
    inc = incidents.open_incident(app, name="IMAP", components=["imap"], body="down", channels=["s"], draft=True)
    assert app.store.ledger.rows() == [] and dispatcher.sent == []
    assert app.store.component_status("imap").value == "operational"  # a draft changes nothing public
    incidents.approve_draft(app, inc.updates[0].id, approver="alice")
    assert [r.notice_id for r in app.store.ledger.rows()] == [f"{inc.updates[0].id}:s"]
    assert app.store.component_status("imap").value == "major_outage"
    assert app.store.get_incident(inc.id).updates[0].approved_by == "alice"


def test_a_reply_answers_the_last_post_that_went_out(env) -> None:
    app, _, _ = env
    inc = incidents.open_incident(app, name="IMAP", components=["imap"], body="down", channels=["o"])
    second = incidents.update_incident(app, inc.id, status="identified", body="found", channels=["o"])
    third = incidents.update_incident(app, inc.id, status="monitoring", body="fixed", channels=["o"])
    assert delivery.deliver(app, f"{inc.updates[0].id}:o").state == "posted"
    ScriptedChannel.script = [Permanent("rejected")]
    assert delivery.deliver(app, f"{second.id}:o").state == "failed"
    assert delivery.deliver(app, f"{third.id}:o").state == "posted"
    assert app.store.ledger.get(f"{third.id}:o").extra == {"thread": "r1"}


def test_staff_retry_of_a_dead_claim_that_was_sending_reconciles_instead_of_reposting(env) -> None:
    """Review finding: retry on a claimed row whose worker died after sending used to post blind."""
    app, clock, _ = env
    inc = incidents.open_incident(app, name="IMAP", components=["imap"], body="down", channels=["s"])
    nid = f"{inc.updates[0].id}:s"
    claim = app.store.ledger.claim(nid, clock.timestamp(), app.settings.delivery.lease_seconds)
    app.store.ledger.mark_sending(nid, claim.token, clock.timestamp(), ["down #INC1·1"])  # then SIGKILL
    ScriptedChannel.found[nid] = Receipt("remote-1", "https://s/1")  # the post did go out
    with pytest.raises(UsageError, match="being sent right now"):
        delivery.retry_delivery(app, nid)  # the lease still runs: hands off
    clock.advance(app.settings.delivery.lease_seconds + 1)
    assert delivery.retry_delivery(app, nid) == "unknown"
    assert delivery.deliver(app, nid).state == "posted"
    assert ScriptedChannel.posted == [] and app.store.ledger.get(nid).remote_id == "remote-1"


def test_a_token_less_release_never_moves_a_live_claim_or_an_unexpected_state(env) -> None:
    """Review finding: the sweeper's deadline check could fail a row a worker had just claimed and sent."""
    app, clock, _ = env
    inc = incidents.open_incident(app, name="IMAP", components=["imap"], body="down", channels=["s"])
    nid = f"{inc.updates[0].id}:s"
    ledger = app.store.ledger
    claim = ledger.claim(nid, clock.timestamp(), 60)
    ledger.mark_sending(nid, claim.token, clock.timestamp(), ["x"])
    now = clock.timestamp()
    assert not ledger.release(nid, "", DeliveryState.FAILED, now, None, "deadline", expect=DeliveryState.PENDING)
    assert not ledger.release(nid, "", DeliveryState.FAILED, now, None, "override")  # live claim
    row = ledger.get(nid)
    assert row.state == DeliveryState.CLAIMED and row.sending_at


def test_a_waiting_ordered_notice_runs_one_chain_not_one_per_sweep(env) -> None:
    """Review finding: every sweep started another self-repeating wait chain."""
    app, clock, dispatcher = env
    inc = incidents.open_incident(app, name="IMAP", components=["imap"], body="down", channels=["o"])
    upd = incidents.update_incident(app, inc.id, status="identified", body="found", channels=["o"])
    second = f"{upd.id}:o"
    clock.advance(app.settings.delivery.requeue_after + 1)
    dispatcher.sent.clear()
    for _ in range(5):
        assert delivery.deliver(app, second).state == "deferred"  # the task's own chain ...
        delivery.sweep(app)
        clock.advance(1)
    assert [n for n, _, _ in dispatcher.sent].count(second) == 0  # ... and the sweeper adds none


def test_unknown_rows_wait_for_next_at_and_stray_tasks_end_instead_of_multiplying(env) -> None:
    app, clock, _ = env
    ScriptedChannel.script = [OutcomeUnknown("timed out after sending"), Transient("rate limited", retry_after=30)]
    inc = incidents.open_incident(app, name="IMAP", components=["imap"], body="down", channels=["s"])
    nid = f"{inc.updates[0].id}:s"
    first = delivery.deliver(app, nid)
    assert first.state == "unknown" and first.retry_in is not None
    # a second copy of the task (sweeper, redelivery) before next_at: no reconcile, and no new chain
    stray = delivery.deliver(app, nid)
    assert stray.state == "early" and state(app, nid) == DeliveryState.UNKNOWN
    clock.advance(first.retry_in + 0.001)
    second = delivery.deliver(app, nid)  # reconcile (nothing found), resend refused: retry in 30 s
    assert second.retry_in == 30
    far = delivery.deliver(app, nid)  # 30 s early: a stray copy ends here
    assert far.state == "early" and far.retry_in is None
    clock.advance(29)
    near = delivery.deliver(app, nid)  # a moment early (the scheduled task, say): it comes back
    assert near.state == "early" and near.retry_in is not None and near.retry_in <= 2
    clock.advance(1.001)
    assert delivery.deliver(app, nid).state == "posted"
    assert [p[0] for p in ScriptedChannel.posted] == [nid]


def test_the_sweeper_re_enqueues_only_a_task_that_is_provably_gone(env) -> None:
    """Issue 10 item 3: a late task behind a backlog, or one that ran a moment ago, is not doubled;
    with the queue empty and no task seen, it is re-enqueued once per ``requeue_after``."""
    app, clock, dispatcher = env
    grace = app.settings.delivery.requeue_after
    backlog: dict[str, int | None] = {"s": 7}
    dispatcher.backlogs = backlog
    inc = incidents.open_incident(app, name="IMAP", components=["imap"], body="down", channels=["s"])
    nid = f"{inc.updates[0].id}:s"
    dispatcher.sent.clear()
    clock.advance(grace + 1)
    assert delivery.sweep(app)["enqueued"] == 0  # late, but 7 tasks wait in its queue: not lost
    backlog["s"] = None
    assert delivery.sweep(app)["enqueued"] == 0  # cannot tell: no guess
    backlog["s"] = 0
    ScriptedChannel.script = [Transient("HTTP 503", retry_after=1)]
    delivery.deliver(app, nid)  # a task for it ran just now (and scheduled its retry)
    dispatcher.sent.clear()
    clock.advance(grace / 2)
    assert delivery.sweep(app)["enqueued"] == 0  # seen a moment ago: alive
    clock.advance(grace)
    assert delivery.sweep(app)["enqueued"] == 1 and [n for n, _, _ in dispatcher.sent] == [nid]
    for _ in range(5):  # the same sweep repeated within the bound adds nothing
        assert delivery.sweep(app)["enqueued"] == 0
    assert len(dispatcher.sent) == 1
