"""Chaos: one channel refuses everything (a webhook receiver answering 503 with ``Retry-After: 1``) while
a real Celery worker delivers incidents to the fake X and Graph servers too. Counted at the fakes:
X and Facebook get every notice exactly once, as if the broken channel were not there, and the broken
receiver gets a bounded number of requests (about one per notice per backoff step, no task
multiplication).

Lean in ``make test`` (25 incidents = 75 notices); ``make chaos`` runs CHAOS_INCIDENTS of them.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from notifier.domain.model import DeliveryState, marker_for
from notifier.services import incidents
from notifier.store.local_redis import LocalRedis
from tests.chaos.test_kills_at_volume import MARKER, SETTLE_BOUND
from tests.chaos.world import facebook_channel, running, x_channel
from tests.fakes.graph_api import FakeGraphApi
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.fakes.x_api import FakeXApi
from tests.support import start_beat, start_worker, wait_for

pytestmark = pytest.mark.integration

INCIDENTS = max(1, int(os.environ.get("CHAOS_INCIDENTS", "50")) // 2)
RETRY_AFTER = 1.0  # what the broken receiver asks for; the row's next attempt waits that long (>= 0.5 s)


@pytest.fixture
def world(tmp_path: Path, redis_server: LocalRedis, redis_client: redis.Redis,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    with FakeXApi() as fx, FakeGraphApi() as fg, WebhookReceiver() as broken:
        broken.failing, broken.fail_status = True, 503
        fx.state.post_limit_15min = 100_000
        x = x_channel(fx, budget_per_15min=max(100, 3 * INCIDENTS), budget_per_24h=max(10000, 3 * INCIDENTS))
        with running(tmp_path, redis_server, redis_client, monkeypatch,
                     {"x": x, "facebook": facebook_channel(fg), "hook": {"type": "webhook", "url": broken.url}},
                     x=fx, fb=fg, broken=broken) as built:
            yield built


def test_a_channel_refusing_everything_leaves_the_others_unaffected(world) -> None:
    app, fx, fg, broken, tmp = world["app"], world["x"], world["fb"], world["broken"], world["tmp"]
    world["procs"] += [start_worker(world["config"], world["client"], tmp / "worker.log", concurrency=4),
                       start_beat(world["config"], tmp / "beat.log", tmp)]
    started = time.monotonic()
    opened = [incidents.open_incident(app, name=f"Refused {n}", components={"smtp": "major_outage"},
                                      body={"en": f"Refused incident {n}: we are investigating."})
              for n in range(INCIDENTS)]
    update_ids = [inc.updates[0].id for inc in opened]

    def healthy_posted() -> bool:
        rows = [r for u in update_ids for r in app.store.ledger.rows(update_id=u) if r.channel != "hook"]
        return len(rows) == 2 * INCIDENTS and all(r.state == DeliveryState.POSTED for r in rows)

    try:
        wait_for(healthy_posted, timeout=SETTLE_BOUND, interval=0.2,
                 what=f"X and Facebook to have every notice within {SETTLE_BOUND:.0f} s")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{world['procs'][0].tail()}") from None
    elapsed, requests = time.monotonic() - started, broken.attempts
    hook_rows = [r for u in update_ids for r in app.store.ledger.rows(update_id=u) if r.channel == "hook"]

    markers = {marker_for(inc.id, 1) for inc in opened}
    x_seen = Counter(m for t in fx.posts() for m in MARKER.findall(t.text))
    fb_seen = Counter(m for p in fg.all_posts() for m in MARKER.findall(p.message))
    print(f"chaos: {INCIDENTS} incidents, one channel refusing: X and Facebook done in {elapsed:.1f} s; "
          f"the refusing receiver got {requests} requests for {len(hook_rows)} notices "
          f"(at most {len(hook_rows) * (elapsed / RETRY_AFTER + 2):.0f} allowed)")
    assert x_seen == fb_seen == Counter({m: 1 for m in markers})  # every notice once, nothing else
    assert len(hook_rows) == INCIDENTS and all(r.state != DeliveryState.POSTED for r in hook_rows)
    # the reason a person can act on, on every row tried and not being tried right now (a claimed row's
    # last_error is its previous attempt's, or empty while its first is in flight)
    assert all("503" in r.last_error for r in hook_rows if r.attempt and r.state != DeliveryState.CLAIMED)
    # bounded: one request per notice per backoff step (each waits >= RETRY_AFTER), no stray copies
    assert 0 < requests <= len(hook_rows) * (elapsed / RETRY_AFTER + 2)
