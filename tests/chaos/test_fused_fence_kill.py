"""Chaos: a worker SIGKILLed right after the one write that claims and fences a notice (issue 14).

X and Facebook reconcile exactly, so ``deliver`` claims and marks them 'sending' in one ledger write
(``Ledger.claim_sending``) before their request leaves. A worker killed between that write and the
request must leave rows that are reconciled, never re-posted blind: here the request never left, so the
reconcile (a complete timeline search at the fakes) finds nothing, and then, only then, the post is sent.
Counted at the fakes: exactly one post each.

A webhook without ``status_url`` fuses its fence too (``WebhookChannel.fuse_fence``), though it cannot
reconcile: killed after that write, it must be held for a person (its receiver cannot be asked), never
re-sent on its own; the person's ``retry --force`` then delivers it once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from notifier.domain.model import DeliveryState
from notifier.services import delivery, incidents
from notifier.store.local_redis import LocalRedis
from tests.chaos.world import facebook_channel, running, x_channel
from tests.fakes.graph_api import PAGE_ID, FakeGraphApi
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.fakes.x_api import FakeXApi
from tests.support import start_beat, start_worker, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def world(tmp_path: Path, redis_server: LocalRedis, redis_client: redis.Redis,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    with FakeXApi() as fx, FakeGraphApi() as fg, WebhookReceiver() as hook:
        channels = {"x": x_channel(fx, reconcile_settle_seconds=1), "facebook": facebook_channel(fg),
                    "hook": {"type": "webhook", "url": hook.url}}  # no status_url
        with running(tmp_path, redis_server, redis_client, monkeypatch, channels, x=fx, fb=fg,
                     hook=hook) as built:
            yield built


def test_a_kill_right_after_the_fused_claim_and_fence_is_reconciled_and_posted_once(world) -> None:
    app, fx, fg, tmp, client = world["app"], world["x"], world["fb"], world["tmp"], world["client"]
    hook: WebhookReceiver = world["hook"]
    marks = tmp / "failpoints"
    marks.mkdir()
    doomed = start_worker(world["config"], client, tmp / "doomed.log", concurrency=4, pool="threads",
                          extra_env={"NOTIFIER_FAILPOINT": "after_fence", "NOTIFIER_FAILPOINT_DIR": str(marks)})
    world["procs"].append(doomed)
    inc = incidents.open_incident(app, name="Mail delayed", components=["smtp"], body="Investigating.")
    update_id = inc.updates[0].id
    try:  # the worker starts in a few seconds on an idle machine; the deadline is for a loaded one
        wait_for(lambda: len(list(marks.iterdir())) >= 3, timeout=120, what="all three notices frozen after the fence")
    except AssertionError as exc:
        log = (tmp / "doomed.log").read_text(errors="replace")[-3000:] if (tmp / "doomed.log").exists() else ""
        raise AssertionError(f"{exc}; frozen: {sorted(p.name for p in marks.iterdir())}; log: {log}") from None
    rows = {r.channel: r for r in app.store.ledger.rows(update_id=update_id)}
    # one write did both: the first attempt's claim already says the request may be out, with its text
    assert {c: (r.state, r.attempt, bool(r.sending_at), bool(r.rendered)) for c, r in rows.items()} == {
        "x": (DeliveryState.CLAIMED, 1, True, True), "facebook": (DeliveryState.CLAIMED, 1, True, True),
        "hook": (DeliveryState.CLAIMED, 1, True, True)}
    doomed.kill()
    assert fx.posts() == [] and fg.all_posts() == [] and hook.keys() == [], "nothing left before the kill"

    world["procs"] += [start_worker(world["config"], client, tmp / "worker.log", concurrency=4, pool="threads"),
                       start_beat(world["config"], tmp / "beat.log", tmp)]

    def posted() -> bool:
        states = {r.channel: r.state for r in app.store.ledger.rows(update_id=update_id)}
        return states["x"] == states["facebook"] == DeliveryState.POSTED and states["hook"] == DeliveryState.UNKNOWN \
            and "retry --force" in app.store.ledger.get(f"{update_id}:hook").last_error  # type: ignore[union-attr]

    try:  # lease (4 s) + X's settle window (http_timeout + 1 s) + a reconcile: seconds on an idle machine
        wait_for(posted, timeout=120, what="recovery after the kill")
    except AssertionError as exc:
        rows_now = [(r.channel, r.state.value, r.attempt, r.last_error)
                    for r in app.store.ledger.rows(update_id=update_id)]
        logs = {n: (tmp / n).read_text(errors="replace")[-3000:] for n in ("worker.log", "beat.log")
                if (tmp / n).exists()}
        raise AssertionError(f"{exc}; rows: {rows_now}; logs: {logs}") from None
    marker = inc.updates[0].marker
    assert [t.text.count(marker) for t in fx.posts()] == [1], "X has the post exactly once"
    assert [p.message.count(marker) for p in fg.all_posts()] == [1], "Facebook has the post exactly once"
    # and each went through a reconcile first: the timelines were read after the fence, before the post
    assert fx.recorded("GET", "/2/users/") and fg.recorded("GET", f"/v21.0/{PAGE_ID}/posts")
    assert all(r.attempt >= 2 for r in app.store.ledger.rows(update_id=update_id) if r.channel != "hook")
    assert hook.keys() == [], "the webhook, which cannot be asked, was held, not re-sent on its own"

    assert delivery.retry_delivery(app, f"{update_id}:hook", force=True) == "unknown"  # a person checked the room
    wait_for(lambda: app.store.ledger.get(f"{update_id}:hook").state == DeliveryState.POSTED,  # type: ignore[union-attr]
             timeout=120, what="the forced webhook retry")
    assert hook.keys() == [f"{update_id}:hook"], "the receiver has it exactly once"
