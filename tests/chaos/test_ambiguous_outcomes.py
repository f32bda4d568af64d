"""Chaos: ambiguous outcomes at volume. The fake Graph API records each first post and then stalls its
answer past ``delivery.http_timeout``, so the worker cannot tell whether the post exists. A real Celery
worker and beat deliver; the row goes ``unknown`` and the next attempt must reconcile (find the post
through ``since`` and paging) instead of posting again.

Counted at the fake, with its duplicate-content check (error 506) on and off: every notice posted exactly
once, every row settled ``posted``, and each of them through a second attempt (the reconcile).

Lean in ``make test`` (10 incidents per run); ``make chaos`` runs CHAOS_INCIDENTS / 5 of them.
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
from tests.chaos.world import facebook_channel, running
from tests.fakes.graph_api import PAGE_ID, FakeGraphApi
from tests.support import start_beat, start_worker, wait_for

pytestmark = pytest.mark.integration

INCIDENTS = max(1, int(os.environ.get("CHAOS_INCIDENTS", "50")) // 5)
HTTP_TIMEOUT = 1.0  # write_config's default; the stall outlasts it
STALL = 2.0


@pytest.fixture
def world(tmp_path: Path, redis_server: LocalRedis, redis_client: redis.Redis,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    with FakeGraphApi() as fg, running(tmp_path, redis_server, redis_client, monkeypatch,
                                       {"facebook": facebook_channel(fg)},
                                       {"delivery": {"http_timeout": HTTP_TIMEOUT}}, fb=fg) as built:
        yield built


@pytest.mark.parametrize("refuse_duplicates", [True, False], ids=["duplicate-check-on", "duplicate-check-off"])
def test_posts_whose_answer_was_lost_are_reconciled_never_posted_twice(world, refuse_duplicates: bool) -> None:
    app, fg, tmp = world["app"], world["fb"], world["tmp"]
    fg.refuse_duplicates = refuse_duplicates
    # the first INCIDENTS writes to the page feed: recorded, then answered only after the client gave up
    fg.inject("POST", f"/v21.0/{PAGE_ID}/feed", "stall_after_accept", seconds=STALL, times=INCIDENTS)
    world["procs"] += [start_worker(world["config"], world["client"], tmp / "worker.log", concurrency=4),
                       start_beat(world["config"], tmp / "beat.log", tmp)]
    started = time.monotonic()
    opened = [incidents.open_incident(app, name=f"Ambiguous {n}", components={"smtp": "major_outage"},
                                      body={"en": f"Ambiguous incident {n}: we are investigating."})
              for n in range(INCIDENTS)]
    update_ids = [inc.updates[0].id for inc in opened]

    def rows() -> list:
        return [r for u in update_ids for r in app.store.ledger.rows(update_id=u)]

    def settled() -> bool:
        current = rows()
        return len(current) == INCIDENTS and all(r.state == DeliveryState.POSTED for r in current)

    try:
        wait_for(settled, timeout=SETTLE_BOUND, interval=0.2,
                 what=f"every ambiguous notice settled within {SETTLE_BOUND:.0f} s")
    except AssertionError as exc:
        states = Counter((r.state.value, r.last_error[:60]) for r in rows())
        raise AssertionError(f"{exc}; rows: {states}\n{world['procs'][0].tail()}") from None
    elapsed = time.monotonic() - started

    seen = Counter(m for p in fg.all_posts() for m in MARKER.findall(p.message))
    final = rows()
    reconciled = sum(1 for r in final if r.attempt >= 2)
    print(f"chaos: {INCIDENTS} ambiguous posts (answer stalled {STALL:g} s past a {HTTP_TIMEOUT:g} s timeout), "
          f"duplicate check {'on' if refuse_duplicates else 'off'}: settled in {elapsed:.1f} s, "
          f"{sum(seen.values())} posts at the fake, {reconciled} rows through a second attempt")
    assert seen == Counter({marker_for(inc.id, 1): 1 for inc in opened})  # each once, nothing else
    # every first answer was lost, so every row went through unknown and its own reconcile
    assert reconciled == INCIDENTS
    assert all(r.remote_id for r in final)  # the reconcile found the post's id, not posted-unverified
