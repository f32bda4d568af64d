"""Chaos, counted at the receivers: notices to the fake X and Graph servers through a real Celery
worker (and beat, for the sweeper) whose whole process group is SIGKILLed at random moments and
restarted. Each fake counts what arrived: every notice exactly once, nothing lost, every row settled.

The lean version runs in ``make test`` (50 incidents = 100 notices, 3 kills, duplicate check on and
off). ``make chaos`` sets CHAOS_INCIDENTS=500 and CHAOS_KILLS=20 (1,000 notices) and prints figures.
The kill moments are random but tied to progress at the fakes (after k posts arrived), so the test
waits on events, never on a sleep standing in for one.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from notifier.bootstrap import App
from notifier.domain.model import DeliveryState, marker_for
from notifier.services import incidents
from notifier.store.local_redis import LocalRedis
from tests.chaos.world import facebook_channel, running, x_channel
from tests.fakes.graph_api import FakeGraphApi
from tests.fakes.x_api import FakeXApi
from tests.support import start_beat, start_worker, wait_for

pytestmark = pytest.mark.integration

INCIDENTS = int(os.environ.get("CHAOS_INCIDENTS", "50"))
KILLS = int(os.environ.get("CHAOS_KILLS", "3"))
SETTLE_BOUND = float(os.environ.get("CHAOS_SETTLE_SECONDS", "150"))  # stated bound, generous for a loaded box
MARKER = re.compile(r"#[A-Z]+\d+\u00b7\d+")


@pytest.fixture
def world(tmp_path: Path, redis_server: LocalRedis, redis_client: redis.Redis,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    with FakeXApi() as fx, FakeGraphApi() as fg:
        fx.state.post_limit_15min = 100_000  # the budget is not under test here
        x = x_channel(fx, budget_per_15min=max(100, 3 * INCIDENTS), budget_per_24h=max(10000, 3 * INCIDENTS))
        with running(tmp_path, redis_server, redis_client, monkeypatch,
                     {"x": x, "facebook": facebook_channel(fg)}, x=fx, fb=fg) as built:
            yield built


def arrived(fx: FakeXApi, fg: FakeGraphApi) -> int:
    return len(fx.posts()) + len(fg.all_posts())


def settled(app: App, update_ids: list[str]) -> tuple[bool, Counter]:
    """Settled: posted, or unknown/failed with a reason a person can act on (``last_error``)."""
    rows = [r for u in update_ids for r in app.store.ledger.rows(update_id=u)]
    states: Counter = Counter(r.state.value for r in rows)
    done = len(rows) == 2 * len(update_ids) and all(
        r.state == DeliveryState.POSTED
        or (r.state in (DeliveryState.UNKNOWN, DeliveryState.FAILED) and r.last_error and r.attempt >= 3)
        for r in rows)
    return done, states


@pytest.mark.parametrize(("refuse_duplicates", "pool", "concurrency"), [
    (True, "prefork", 4), (False, "prefork", 4),
    # the default delivery worker: 32 sends in flight in one process when the SIGKILL comes
    (False, "threads", 32),
], ids=["dup-check-on", "dup-check-off", "threads-32"])
def test_random_kills_at_volume_lose_nothing_and_post_nothing_twice(world, refuse_duplicates: bool, pool: str,
                                                                    concurrency: int) -> None:
    app, fx, fg, tmp, client = world["app"], world["x"], world["fb"], world["tmp"], world["client"]
    fx.state.refuse_duplicates = refuse_duplicates
    fg.refuse_duplicates = refuse_duplicates
    if pool == "threads":  # answers that take a while: many sends are on the wire together when a kill comes
        fg.latency, fx.latency = 0.2, 0.05
    rng = random.Random(os.environ.get("CHAOS_SEED"))
    total = 2 * INCIDENTS
    kill_at = sorted(rng.sample(range(max(2, total // 20), max(3, total * 9 // 10)), KILLS))
    worker = start_worker(world["config"], client, tmp / "worker-0.log", concurrency=concurrency, pool=pool)
    world["procs"] += [worker, start_beat(world["config"], tmp / "beat-0.log", tmp)]
    started = time.monotonic()
    update_ids, incident_ids = [], []
    in_flight: list[int] = []  # rows claimed at each kill
    for n in range(INCIDENTS):
        inc = incidents.open_incident(app, name=f"Chaos {n}", components={"smtp": "major_outage"},
                                      body={"en": f"Chaos incident {n}: we are investigating."})
        update_ids.append(inc.updates[0].id)
        incident_ids.append(inc.id)
    seen: list[int] = []  # claimed rows at each look before the first kill (thread pool)

    def claimed() -> int:  # dead claims of earlier kills included
        # one ZCARD of the ledger's claimed index, not a read of every row: a look must be much shorter
        # than the moment sends overlap (one update's channels now go out together, so the drain is quick)
        return int(client.zcard(app.store.ledger.claimed_key))

    for i, k in enumerate(kill_at, 1):
        try:
            wait_for(lambda k=k: arrived(fx, fg) >= k, timeout=SETTLE_BOUND, interval=0.01,
                     what=f"{k} posts at the fakes before kill {i}")
            if pool == "threads" and i == 1:
                # the first kill is the one that must land among concurrent sends: wait for them (the
                # drain is bursty, e.g. X rows wait their turn unclaimed, so a post count alone may
                # find an idle moment)
                wait_for(lambda seen=seen: seen.append(claimed()) or seen[-1] >= 2, timeout=SETTLE_BOUND,
                         interval=0.005, what="two or more rows claimed at once before the first kill")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{worker.tail()}") from None
        if pool == "threads" and i == 1:
            in_flight.append(seen[-1])  # kill now, while they are claimed
        else:
            jitter = rng.random() * 0.05  # somewhere inside the next request rather than exactly after a post
            deadline = time.monotonic() + jitter
            while time.monotonic() < deadline:
                pass
            in_flight.append(claimed())
        for proc in list(world["procs"]):
            proc.kill()
        worker = start_worker(world["config"], client, tmp / f"worker-{i}.log", concurrency=concurrency,
                              pool=pool)
        world["procs"] += [worker, start_beat(world["config"], tmp / f"beat-{i}.log", tmp)]
    try:
        wait_for(lambda: settled(app, update_ids)[0], timeout=SETTLE_BOUND, interval=0.2,
                 what=f"every row settled within {SETTLE_BOUND:.0f} s")
    except AssertionError as exc:
        rows = [(r.notice_id, r.state.value, r.attempt, r.last_error) for u in update_ids
                for r in app.store.ledger.rows(update_id=u) if r.state != DeliveryState.POSTED]
        raise AssertionError(f"{exc}; unsettled: {rows[:20]}; worker: {worker.tail()}") from None
    elapsed = time.monotonic() - started
    markers = {marker_for(i, 1) for i in incident_ids}
    x_seen = Counter(m for t in fx.posts() for m in MARKER.findall(t.text))
    fb_seen = Counter(m for p in fg.all_posts() for m in MARKER.findall(p.message))
    unsettled = {marker_for(r.incident_id, 1) + ":" + r.channel for u in update_ids
                 for r in app.store.ledger.rows(update_id=u) if r.state != DeliveryState.POSTED}
    lost = {ch: sorted(m for m in markers if not seen[m] and f"{m}:{ch}" not in unsettled)
            for ch, seen in (("x", x_seen), ("facebook", fb_seen))}
    dups = {ch: {m: c for m, c in seen.items() if c > 1} for ch, seen in (("x", x_seen), ("facebook", fb_seen))}
    states = settled(app, update_ids)[1]
    print(f"chaos ({pool} {concurrency}): {total} notices, {KILLS} kills at posts {kill_at}, "
          f"dup check {refuse_duplicates}: "
          f"settled in {elapsed:.1f} s, rows {dict(states)}, lost {sum(map(len, lost.values()))}, "
          f"not posted {sorted(unsettled)}, claimed at each kill {in_flight}, "
          f"duplicates {sum(len(d) for d in dups.values())}")
    if pool == "threads":
        assert in_flight[0] >= 2, f"the first kill came during concurrent sends (claimed rows {in_flight})"
    assert dups == {"x": {}, "facebook": {}}
    assert lost == {"x": [], "facebook": []}
    assert set(x_seen) <= markers and set(fb_seen) <= markers
