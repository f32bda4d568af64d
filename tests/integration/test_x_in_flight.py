"""X writes in flight per account (``max_in_flight``), with a real Celery worker, a real redis-server and
the fake X API counting at the far end: concurrency reaches the limit and never passes it, and after
X answers 429 no new write reaches it before the reset (only those already on their way)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from notifier.bootstrap import App, build
from notifier.config_loader import load_settings
from notifier.domain.model import DeliveryState
from notifier.services import incidents
from notifier.store.local_redis import LocalRedis
from tests.fakes.x_api import FakeXApi
from tests.support import Proc, start_worker, wait_for, write_config
from workers.dispatch import CeleryDispatcher

pytestmark = pytest.mark.integration


@pytest.fixture
def fake() -> Iterator[FakeXApi]:
    with FakeXApi() as server:
        server.latency = 0.2  # every write stays in flight long enough for the others to pile up
        yield server


def start(tmp_path: Path, redis_server: LocalRedis, redis_client: redis.Redis, fake: FakeXApi,
          in_flight: int, monkeypatch: pytest.MonkeyPatch, procs: list[Proc]) -> App:
    monkeypatch.setenv("X_TOKEN", "oauth2-user-token-1")
    config = write_config(tmp_path / "notifier.yaml", redis_server.url, {
        "x": {"type": "x", "api_base_url": fake.url, "user_token": "${X_TOKEN}", "max_in_flight": in_flight,
              "budget_per_15min": 10_000, "budget_per_24h": 10_000},
    }, delivery={"http_timeout": 5, "task_time_limit": 20, "lease_seconds": 30, "backoff_max": 14400,
                 "visibility_timeout": 20000})
    settings = load_settings(config)
    app = build(settings, dispatcher=CeleryDispatcher(settings), redis_url=redis_server.url)
    procs.append(start_worker(config, redis_client, tmp_path / "worker.log", concurrency=16, pool="threads",
                              extra_env={"X_TOKEN": "oauth2-user-token-1"}))
    return app


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    running: list[Proc] = []
    yield running
    for proc in running:
        proc.stop()


def rows(app: App) -> list[Any]:
    return list(app.store.ledger.rows(channel="x"))


def test_writes_in_flight_reach_the_limit_and_never_pass_it(tmp_path: Path, redis_server: LocalRedis,
                                                            redis_client: redis.Redis, fake: FakeXApi,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            procs: list[Proc]) -> None:
    app = start(tmp_path, redis_server, redis_client, fake, 4, monkeypatch, procs)
    for k in range(4):  # incidents with three updates each: every later one replies to its predecessor
        inc = incidents.open_incident(app, name=f"Outage {k}", body=f"[inc{k}] step 1: IMAP is down.")
        incidents.update_incident(app, inc.id, status="identified", body=f"[inc{k}] step 2: a disk failed.")
        incidents.update_incident(app, inc.id, status="monitoring", body=f"[inc{k}] step 3: fixed, watching.")
    for i in range(24):  # 16 worker threads, 36 notices: more senders than the account's limit
        incidents.broadcast(app, body=f"Notice {i}: mail is slow for some users.")
    wait_for(lambda: len(rows(app)) == 36 and all(r.state is DeliveryState.POSTED for r in rows(app)),
             timeout=120, what="every notice posted")
    posts = fake.posts()
    assert fake.max_writes_in_flight == 4  # the limit was reached at X, and never passed
    assert len(posts) == len({p.text for p in posts}) == len(fake.write_statuses) == 36  # once each
    assert sorted(r.remote_id for r in rows(app)) == sorted(p.id for p in posts)
    assert not redis_client.zcard("notifier:x:x:budget:leases")  # every lease was given back
    for k in range(4):
        thread = [next(p for p in posts if f"[inc{k}] step {n}" in p.text) for n in (1, 2, 3)]
        assert [p.in_reply_to for p in thread] == [None, thread[0].id, thread[1].id]
        assert thread[0].created_at < thread[1].created_at < thread[2].created_at


@pytest.mark.parametrize("in_flight", [1, 4])
def test_after_a_429_no_new_write_reaches_x_before_the_reset(in_flight: int, tmp_path: Path,
                                                             redis_server: LocalRedis, redis_client: redis.Redis,
                                                             fake: FakeXApi, monkeypatch: pytest.MonkeyPatch,
                                                             procs: list[Proc]) -> None:
    """X's 3-hour limit, which its headers do not announce, is 6 posts: the 7th write gets a 429 with
    X's reset 3 hours away. The writes already in flight then get a 429 as well (definite "not posted",
    retried after the reset); nothing else reaches X, so X sees at most ``in_flight`` refusals however
    many notices are waiting."""
    fake.state.post_limit_3h = 6
    app = start(tmp_path, redis_server, redis_client, fake, in_flight, monkeypatch, procs)
    for i in range(30):
        incidents.broadcast(app, body=f"Notice {i}: mail is down.")

    def settled() -> bool:  # every row posted, or tried and told to come back after X's reset
        found = rows(app)
        return len(found) == 30 and all(
            r.state is DeliveryState.POSTED or (r.state is DeliveryState.PENDING and r.attempt >= 1
                                                and r.next_at > time.time() + 600) for r in found)

    try:
        wait_for(settled, timeout=40, what="every notice posted or deferred to the reset")
    except AssertionError as exc:
        state = [(r.state.value, r.attempt, round(r.next_at - time.time()), r.last_error[:80]) for r in rows(app)]
        raise AssertionError(f"{exc}; at X: {fake.write_statuses}; rows: {state}; worker log: "
                             f"{(tmp_path / 'worker.log').read_text(errors='replace')[-2000:]}") from None
    statuses = list(fake.write_statuses)
    posts = fake.posts()
    assert statuses.count(201) == len(posts) == len({p.text for p in posts}) == 6
    assert set(statuses) == {201, 429}
    assert 1 <= statuses.count(429) <= in_flight, statuses  # only the writes already on their way
    assert fake.max_writes_in_flight <= in_flight
    assert len(fake.recorded("POST", "/2/tweets")) == len(statuses)
    waiting = [r for r in rows(app) if r.state is not DeliveryState.POSTED]
    assert len(waiting) == 24 and all(r.remote_id == "" for r in waiting)
    assert float(redis_client.get("notifier:x:x:budget:blocked") or 0) > time.time() + 600
