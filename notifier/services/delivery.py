"""Delivering one notice: the ledger state machine, run by the worker's task (and nothing else).

``deliver`` is safe to run any number of times, concurrently, for the same notice: the atomic claim
lets one run hold it, a posted row is never sent again, and an outcome that might have reached the
channel (timeout, 5xx, a worker killed after ``mark_sending``) is reconciled, never re-posted blind.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from notifier.app import App
from notifier.channels import deadline
from notifier.channels.base import Channel, Rendering
from notifier.domain.model import UNVERIFIED, DeliveryState, Incident, Notice, Receipt
from notifier.errors import (
    CannotReconcile,
    DeliveryError,
    DuplicateRefused,
    NotFound,
    NotReplicated,
    OutcomeUnknown,
    Permanent,
    ReconcileIncomplete,
    Transient,
    UsageError,
)
from notifier.failpoints import failpoint
from notifier.services import idempotent
from notifier.services.incidents import notice_for, predecessor

if TYPE_CHECKING:
    from notifier.store.ledger import Claim, LedgerRow

log = logging.getLogger(__name__)

EARLY_GRACE = 2.0  # a task at most this early for its row's next_at waits for it; an earlier one ends
ORDER_WAIT = 2.0  # seconds between looks at whether the previous update on an ordered channel is out
REPLICATION_WAIT = 5.0  # a 'sending' fence too few replicas confirmed: the next attempt, at the latest


@dataclass(frozen=True)
class Outcome:
    """What happened; ``retry_in`` (seconds) tells the task when to run again, if ever."""

    state: str  # posted | failed | retry | unknown | held | busy | early | deferred | skipped
    retry_in: float | None = None
    detail: str = ""


def retry_wait(attempt: int, hint: float | None, grows: bool, base: float, cap: float) -> float:
    """Seconds until a row's next try after its ``attempt``-th failed one (pure; unit-tested).

    No hint: ``base`` doubling per attempt × U(0.5, 1), at most ``cap``. A hint alone (a rate limit's reset) is
    waited exactly. A hint that ``grows`` (a Retry-After on a refusal, a 429 without a reset) is the least
    wait and doubles per attempt, jittered upwards, to ``cap``.
    """
    if hint is None:
        return min(cap, base * (2 ** max(attempt - 1, 0))) * random.uniform(0.5, 1.0)
    hint = max(hint, 0.5)
    if not grows:
        return min(hint, cap)
    ceiling = min(cap, hint * (2 ** min(max(attempt - 1, 0), 32)))
    return max(min(hint, cap), ceiling * random.uniform(0.5, 1.0))


def deliver(app: App, notice_id: str, read: tuple[LedgerRow | None, Incident | None] | None = None) -> Outcome:
    """Send one notice (claim, fence, send, record) or say why not. ``read``: its row and incident as
    ``read_many`` returned them a moment ago (the claim below re-checks the row atomically)."""
    ledger = app.store.ledger
    failpoint("before_claim")
    row, incident = read if read is not None else read_many(app, [notice_id])[0]
    if row is None:
        return Outcome("skipped", detail="no such notice")
    if row.state in (DeliveryState.POSTED, DeliveryState.FAILED):
        return Outcome(row.state.value)
    now = app.clock.timestamp()
    started = time.monotonic()  # the lease claimed below runs from ``now``: its end on the monotonic clock
    # task_seen_at (the sweeper's proof that this row's task is alive) is written by ``claim`` below, or
    # with ``touch_enqueued`` by a deferral: one write per task instead of one more before every claim
    channel = app.channels.get(row.channel)
    if channel is None:
        reason = f"channel {row.channel!r} is not configured (or disabled) any more; re-enable it and run " \
                 f"`notifier deliveries retry {notice_id}`"
        ledger.release(notice_id, "", DeliveryState.FAILED, now, None, reason, keep_sending=True)
        return Outcome("failed", detail=reason)
    try:
        if incident is None:
            incident = app.store.get_incident(row.incident_id)
        update = incident.update(row.update_id)
    except (NotFound, KeyError):
        ledger.release(notice_id, "", DeliveryState.FAILED, now, None, "its incident or update no longer exists",
                       keep_sending=True)
        return Outcome("failed")

    if channel.ordered:
        prior = predecessor(app, incident, update, row.channel)
        if prior is not None and prior.state not in (DeliveryState.POSTED, DeliveryState.FAILED):
            if now > row.deadline:
                reason = f"the previous update ({prior.notice_id}) never went out on this channel"
                if ledger.release(notice_id, "", DeliveryState.FAILED, now, None, reason, keep_sending=True,
                                  expect=DeliveryState.PENDING):
                    return Outcome("failed", detail=reason)
            # one waiting chain per notice: the sweeper leaves it alone while this task comes back
            ledger.touch_enqueued(notice_id, now + ORDER_WAIT, seen=now)
            return Outcome("deferred", retry_in=ORDER_WAIT, detail=f"waiting for {prior.notice_id}")
    notice = notice_for(app, incident, update, row.channel)

    lease = app.settings.delivery.lease_seconds
    rendering: Rendering | None = None
    if channel.fuses_fence and ledger.fuses_fence:
        # Claim and fence in one write (issue 14): a crash after it is reconciled (``Channel.fuse_fence``).
        # Rendered first, so the fence can carry the text.
        rendering = _rendering(channel, notice, row)
        claim = ledger.claim_sending(notice_id, now, lease, list(rendering.parts))
    else:
        claim = ledger.claim(notice_id, now, lease)
    if claim.mode in ("posted", "failed", "missing"):
        return Outcome(claim.mode)
    if claim.mode == "busy":  # someone holds it; if they died, the lease runs out and we come back
        return Outcome("busy", retry_in=max(claim.until - now, 0) + 1)
    if claim.mode == "early":
        # Not due: whoever set next_at scheduled a task for then, and the row is in the due index for the
        # sweeper. A task that comes long before that is a stray copy; it ends here instead of starting
        # another chain (tasks multiplied per retry otherwise). One just a moment early comes back.
        wait = max(claim.until - now, 0.5)
        return Outcome("early", retry_in=wait if wait <= EARLY_GRACE else None, detail="not due yet")
    # Every HTTP request from here on ends within task_time_limit of the claim, so before its lease does
    # (config makes lease_seconds > task_time_limit; the difference is the margin for the ledger write
    # after the answer). Under the thread pool nothing else can stop a send: Celery's hard time limit
    # kills only a process. A request still running then is cut: its outcome is unknown, reconciled
    # under a later claim. A request not yet started is not sent (transient).
    window = app.settings.delivery.task_time_limit - (time.monotonic() - started)
    with deadline.send_window(window):
        return _held(app, notice_id, row, channel, notice, claim, now, rendering)


def _rendering(channel: Channel, notice: Notice, row: LedgerRow) -> Rendering:
    """What an earlier attempt fenced (a retry publishes the same text), else a fresh rendering."""
    if row.rendered:
        return Rendering(parts=tuple(row.rendered), language=channel.language)
    return channel.render(notice)


def _incident_of(notice_id: str) -> str:
    """Notice ids are ``<incident id>.<update number>:<channel>``: the incident id, or '' for another scheme."""
    return notice_id.rpartition(":")[0].rpartition(".")[0]


def read_many(app: App, notice_ids: list[str]) -> list[tuple[LedgerRow | None, Incident | None]]:
    """The ledger rows of these notices (one update's, as a worker gets them) and their incident, in one
    round trip per incident (issue 14: one read per update instead of one per notice).

    The incident read with a row is used only when the row names that incident. Otherwise (another id
    scheme, an incident that is gone) it is None and ``deliver`` reads it, or reports it missing, by
    ``get_incident``."""
    by_incident: dict[str, list[int]] = {}
    for i, nid in enumerate(notice_ids):
        by_incident.setdefault(_incident_of(nid), []).append(i)
    out: list[tuple[LedgerRow | None, Incident | None]] = [(None, None)] * len(notice_ids)
    for guess, places in by_incident.items():
        ids = [notice_ids[i] for i in places]
        if not guess:
            rows, incident = app.store.ledger.get_many(ids), None
        else:
            rows, incident = app.store.rows_with_incident(ids, guess)
        for i, row in zip(places, rows, strict=True):
            out[i] = (row, incident if row is not None and row.incident_id == guess else None)
    return out


def _held(app: App, notice_id: str, row: LedgerRow, channel: Channel, notice: Notice, claim: Claim,
          now: float, rendering: Rendering | None = None) -> Outcome:
    """The rest of ``deliver`` while we hold the claim: reconcile if it may be out, else fence and send
    (a claim from ``claim_sending`` is fenced already)."""
    ledger = app.store.ledger
    failpoint("after_claim")
    if claim.fenced is not None:
        failpoint("after_fence")
        return _send(app, notice_id, row, channel, notice, claim,
                     Rendering(parts=claim.fenced, language=channel.language))

    if claim.mode == "reconcile" and not channel.idempotent:
        try:
            # the whole range since the request may have left; ReconcileIncomplete when it cannot be covered
            found = channel.reconcile(notice, since=row.sending_at)
        except CannotReconcile as exc:
            ledger.release(notice_id, claim.token, DeliveryState.UNKNOWN, now, None, exc.reason, keep_sending=True)
            return Outcome("held", detail=exc.reason)
        except DeliveryError as exc:
            return _retry(app, notice_id, claim.token, claim.attempt, row.deadline, exc, DeliveryState.UNKNOWN)
        if found is not None:
            return _record_posted(app, notice_id, found, "found by reconcile")

    if rendering is None:
        rendering = _rendering(channel, notice, row)
    try:
        fenced = ledger.mark_sending(notice_id, claim.token, app.clock.timestamp(), list(rendering.parts))
    except NotReplicated as exc:
        # nothing was sent, and the ledger gave the row back as pending, due again in seconds (a replica
        # partitioned away, or a failover under way): come back then, instead of hanging or leaving it to
        # the sweeper. A fence that could not even be released keeps its claim: that task ends as busy.
        log.warning("notice %s not sent: %s", notice_id, exc)
        return Outcome("retry", retry_in=exc.retry_after or REPLICATION_WAIT, detail=str(exc))
    if not fenced:
        return Outcome("busy", retry_in=1, detail="lost the claim before sending")
    failpoint("after_fence")
    return _send(app, notice_id, row, channel, notice, claim, rendering)


def _send(app: App, notice_id: str, row: LedgerRow, channel: Channel, notice: Notice, claim: Claim,
          rendering: Rendering) -> Outcome:
    """Fenced: the request may leave. Send it and record what the channel answered."""
    ledger = app.store.ledger
    try:
        receipt = channel.send(notice, rendering)
    except Permanent as exc:
        ledger.release(notice_id, claim.token, DeliveryState.FAILED, app.clock.timestamp(), None, exc.reason)
        log.warning("notice %s failed permanently: %s", notice_id, exc.reason)
        return Outcome("failed", detail=exc.reason)
    except Transient as exc:
        return _retry(app, notice_id, claim.token, claim.attempt, row.deadline, exc, DeliveryState.PENDING)
    except DuplicateRefused as exc:
        # the refusal is evidence the post exists; its lookup failed, so record it unverified and stop
        reason = f"posted-unverified: {exc.reason}; the platform refused it as a duplicate, so it is out " \
                 f"there, but its id could not be found. Check the account; `notifier deliveries mark-posted " \
                 f"{notice_id} URL` records it"
        ledger.mark_posted(notice_id, Receipt(remote_id="", url="", extra={UNVERIFIED: reason[:500]}),
                           app.clock.timestamp())
        log.warning("notice %s: %s", notice_id, reason)
        return Outcome("posted", detail=reason)
    except OutcomeUnknown as exc:
        return _retry(app, notice_id, claim.token, claim.attempt, row.deadline, exc, DeliveryState.UNKNOWN)
    except Exception as exc:  # a bug in a channel: we cannot know whether it posted, so reconcile later
        log.exception("channel %s crashed sending %s", row.channel, notice_id)  # details in the log only
        unknown = OutcomeUnknown(f"the channel crashed ({exc.__class__.__name__}); see the worker log")
        return _retry(app, notice_id, claim.token, claim.attempt, row.deadline, unknown, DeliveryState.UNKNOWN)
    failpoint("after_send")
    return _record_posted(app, notice_id, receipt)


def _record_posted(app: App, notice_id: str, receipt: Receipt, detail: str = "") -> Outcome:
    """'posted' in the ledger. It is on the master even when too few replicas confirm it: the task ends
    (no retry could do better); if a failover then loses it, the new master has the replicated
    'sending' fence, and the notice is reconciled once its claim runs out, never sent blind."""
    try:
        app.store.ledger.mark_posted(notice_id, receipt, app.clock.timestamp())
    except NotReplicated as exc:
        log.warning("notice %s posted; its ledger row is not yet on the replicas: %s", notice_id, exc)
        return Outcome("posted", detail=f"{detail}; {exc}" if detail else str(exc))
    return Outcome("posted", detail=detail)


def _retry(
    app: App, notice_id: str, token: str, attempt: int, deadline: float, exc: DeliveryError, state: DeliveryState
) -> Outcome:
    now = app.clock.timestamp()
    conf = app.settings.delivery
    hint = exc.retry_after if isinstance(exc, Transient | ReconcileIncomplete) else None
    wait = retry_wait(attempt, hint, isinstance(exc, Transient) and exc.grows, conf.backoff_base, conf.backoff_max)
    ledger = app.store.ledger
    if now + wait > deadline:
        hours = app.settings.delivery.deadline_hours
        reason = f"gave up after {hours:g} h; last error: {exc.reason}. Fix the channel, then run " \
                 f"`notifier deliveries retry {notice_id}`"
        if state == DeliveryState.UNKNOWN:  # it may be out there: keep it unknown for a person to check
            ledger.release(notice_id, token, state, now, None, reason, keep_sending=True)
            return Outcome("held", detail=reason)
        ledger.release(notice_id, token, DeliveryState.FAILED, now, None, reason)
        return Outcome("failed", detail=reason)
    ledger.release(notice_id, token, state, now, now + wait, exc.reason, keep_sending=state == DeliveryState.UNKNOWN,
                   enqueued_at=now + wait)  # the countdown task is expected then
    return Outcome("retry" if state == DeliveryState.PENDING else "unknown", retry_in=wait, detail=exc.reason)


# ---- periodic and staff operations ------------------------------------------------------------------
def sweep(app: App) -> dict[str, int]:
    """Beat's safety net: expire dead claims, and enqueue every due row whose task is provably gone.

    A task is provably gone when (a) its claim expired (the worker died holding it), or (b) all of:
    the time its task was expected (``enqueued_at``: enqueue time, or the end of its countdown) is more
    than ``requeue_after`` ago; no task for the row reached a worker (``task_seen_at``) within the last
    ``requeue_after``; and the channel's broker queue is empty, so the task is not merely waiting behind
    a backlog (a worker killed with prefetched or countdown tasks loses them until the broker's
    visibility timeout). A late task is therefore never doubled; a stray copy that does come back finds
    the row posted, busy or not yet due and ends (``claim`` honours ``next_at``).
    """
    ledger = app.store.ledger
    grace = app.settings.delivery.requeue_after
    now = app.clock.timestamp()
    expired = dict(ledger.expire_claims(now))
    enqueued = 0
    failed = 0
    backlogs: dict[str, int | None] = {}
    queued: list[str] = []
    due = ledger.due(now)
    for nid, row in zip(due, ledger.get_many(due), strict=True):  # one round trip for all due rows
        if row is None or row.state in (DeliveryState.POSTED, DeliveryState.FAILED, DeliveryState.CLAIMED):
            continue
        if row.state == DeliveryState.PENDING and now > row.deadline:
            # only if it is still pending: a worker may have claimed (and sent) it since we read it
            if ledger.release(nid, "", DeliveryState.FAILED, now, None, f"deadline passed before it could be "
                              f"sent; last error: {row.last_error or 'none'}", keep_sending=True,
                              expect=DeliveryState.PENDING):
                failed += 1
            continue
        if nid not in expired:
            if row.enqueued_at > now - grace or row.task_seen_at > now - grace:
                continue  # its task is not late yet, or one ran a moment ago: it is alive
            if row.channel not in backlogs:
                backlogs[row.channel] = getattr(app.dispatcher, "backlog", lambda _c: 0)(row.channel)
            if backlogs[row.channel] != 0:
                continue  # tasks are still waiting in the queue (or we cannot tell): late is not lost
        app.dispatcher.deliver(nid, row.channel)
        queued.append(nid)
        enqueued += 1
    ledger.touch_enqueued_many(queued, now)  # one round trip; a sweep killed before it just enqueues again
    return {"expired": len(expired), "enqueued": enqueued, "failed": failed}


def retry_delivery(app: App, notice_id: str, force: bool = False) -> str:
    """Staff: try a failed (or held unknown) notice again.

    A notice that may have gone out (it was marked sending) is reconciled first, whatever state it is in;
    ``force`` sends it without asking the channel, for when a person has checked that it is not there.
    Returns "unknown" when it will be reconciled, else the state it was in.

    Under a staff API ``Idempotency-Key`` the row's move and the key are one atomic ledger step
    (``release_for_op``): a repeat after a crash answers as the first request did and moves nothing.
    """
    ledger = app.store.ledger
    now = app.clock.timestamp()
    op = idempotent.current_op.get()
    record = idempotent.current_record.get()
    fingerprint = record.fingerprint if record is not None and op else ""  # the request's, kept with the op
    if op:
        earlier = ledger.op_result(op, now)
        if earlier is not None:
            return _retried_before(app, notice_id, earlier, fingerprint)
    ledger.expire(notice_id, now)  # a claim whose worker died counts as what it was: sent or not
    row = ledger.get(notice_id)
    if row is None:
        raise NotFound(f"no notice {notice_id!r}; `notifier deliveries` lists them")
    if row.state == DeliveryState.POSTED:
        raise UsageError(f"{notice_id} is already posted ({row.url or row.remote_id}); nothing to retry")
    if row.state == DeliveryState.CLAIMED:
        raise UsageError(f"{notice_id} is being sent right now; wait a moment and look again")
    maybe_sent = row.sending_at is not None
    reconcile = maybe_sent and not force  # it may be out there: look for it before anything is sent again
    was = "unknown" if reconcile else row.state.value
    ledger.set_deadline(notice_id, now + app.settings.delivery.deadline_hours * 3600)
    if reconcile:
        new_state, error, keep = DeliveryState.UNKNOWN, "retry requested by staff: reconciling first", True
    else:
        new_state, error, keep = DeliveryState.PENDING, f"retry requested by staff ({row.last_error})", False
    if op:
        moved = ledger.release_for_op(notice_id, new_state, now, now, error, keep_sending=keep, expect=row.state,
                                      op=op, result=json.dumps({"was": was, "at": now, "fp": fingerprint}),
                                      ttl=idempotent.KEEP_SECONDS)
        if isinstance(moved, str):  # a concurrent request with the op (a stalled one, its retry) released first
            return _retried_before(app, notice_id, moved, fingerprint)
    else:
        moved = ledger.release(notice_id, "", new_state, now, now, error, keep_sending=keep, expect=row.state)
    if not moved:
        raise UsageError(f"{notice_id} changed while we looked (now {ledger.get(notice_id).state.value}); "  # type: ignore[union-attr]
                         "look again with `notifier deliveries`")
    failpoint("retry_after_release")
    app.dispatcher.deliver(notice_id, row.channel)
    ledger.touch_enqueued(notice_id, now)
    return was


def _retried_before(app: App, notice_id: str, recorded: str, fingerprint: str = "") -> str:
    """A repeat of a committed retry: its first answer. The row is handed to the workers again only if
    the first request died before it did so (nothing enqueued it since the retry moved it). Claimed (the
    staff API's 422) when the retry that recorded the op was another request (``fingerprint``: this
    one's; the key reused for another notice or body once the first request's lease ran out)."""
    first = json.loads(recorded)
    idempotent.same_request(str(first.get("fp") or ""), fingerprint)
    row = app.store.ledger.get(notice_id)
    if row is not None and row.state in (DeliveryState.PENDING, DeliveryState.UNKNOWN) \
            and row.enqueued_at < float(first["at"]):
        app.dispatcher.deliver(notice_id, row.channel)
        app.store.ledger.touch_enqueued(notice_id, app.clock.timestamp())
    return str(first["was"])


def mark_posted(app: App, notice_id: str, url: str = "") -> None:
    """Staff: a person checked the channel and the post is there (for channels that cannot reconcile)."""
    row = app.store.ledger.get(notice_id)
    if row is None:
        raise NotFound(f"no notice {notice_id!r}; `notifier deliveries` lists them")
    if row.state == DeliveryState.POSTED:
        raise UsageError(f"{notice_id} is already posted")
    app.store.ledger.mark_posted(notice_id, Receipt(remote_id="manual", url=url), app.clock.timestamp())
