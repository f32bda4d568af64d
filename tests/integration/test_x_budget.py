"""The X posting budget lives in Redis: four worker processes together never exceed it."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from pydantic import SecretStr

from notifier.channels import x_budget
from notifier.channels.x import XChannel, XSettings
from notifier.channels.x_budget import BUSY, LocalBudget, PostingBudget, Window
from notifier.errors import Transient
from tests.fakes.redis_server import redis_server
from tests.fakes.social import context, incident, notice
from tests.fakes.x_api import FakeXApi
from tests.integration._api_support import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url, decode_responses=True)
    conn.flushdb()
    yield conn
    conn.close()


def test_sliding_windows(client: redis.Redis) -> None:
    budget = PostingBudget(client, "t:budget", [Window(900, 3), Window(86400, 5)])
    t0 = 1_800_000_000.0
    slots = [budget.acquire(t0 + i)[0] for i in range(3)]
    assert all(slots)
    slot, wait = budget.acquire(t0 + 10)
    assert slot is None and wait == pytest.approx(890)
    budget.release(slots[2])  # a post that provably failed gives its slot back
    assert budget.acquire(t0 + 11)[0] is not None
    assert budget.used(t0 + 11) == {900: 3, 86400: 3}
    # 15 minutes later the short window has room again, the daily one for two more
    assert budget.acquire(t0 + 905)[0] is not None
    assert budget.acquire(t0 + 906)[0] is not None
    slot, wait = budget.acquire(t0 + 907)
    assert slot is None and wait == pytest.approx(86400 - 907)


def test_x_headers_and_429_close_the_budget(client: redis.Redis) -> None:
    budget = PostingBudget(client, "t:budget", [Window(900, 100)])
    now = 1_800_000_000.0
    assert budget.sync({"x-rate-limit-remaining": "4", "x-rate-limit-reset": str(now + 300)}, now) is None
    assert budget.acquire(now)[0] is not None
    budget.sync({"x-user-limit-24hour-remaining": "0", "x-user-limit-24hour-reset": str(now + 600)}, now)
    assert budget.acquire(now + 1) == (None, pytest.approx(599))
    budget.block_until(now + 100)  # an earlier block never shortens a later one
    assert budget.acquire(now + 601)[0] is not None


def _worker(redis_url: str, api_url: str, worker: int, count: int, queue: multiprocessing.Queue) -> None:
    conn = redis.Redis.from_url(redis_url, decode_responses=True)
    settings = XSettings(type="x", api_base_url=api_url, user_token=SecretStr("oauth2-user-token-1"),
                         budget_per_15min=50, budget_per_24h=1000)
    chan = XChannel("x", settings, context(redis=conn))
    posted = deferred = 0
    waits = []
    for i in range(count):
        note = notice(incident([f"Worker {worker} notice {i}"], incident_id=f"inc{worker}{i:03d}"), 1, "x")
        try:
            chan.send(note, chan.render(note))
            posted += 1
        except Transient as exc:
            deferred += 1
            waits.append(exc.retry_after or 0)
    queue.put((posted, deferred, min(waits, default=0)))


def test_four_processes_sending_200_notices_stay_within_the_shared_budget(redis_url: str,
                                                                          client: redis.Redis) -> None:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    with FakeXApi() as fake:
        procs = [ctx.Process(target=_worker, args=(redis_url, fake.url, w, 50, queue)) for w in range(4)]
        for proc in procs:
            proc.start()
        results = [queue.get(timeout=120) for _ in procs]
        for proc in procs:
            proc.join(timeout=30)
        posts = fake.posts()
        requests_seen = len(fake.recorded("POST", "/2/tweets"))
    assert sum(r[0] for r in results) == 50 == len(posts) == requests_seen
    assert sum(r[1] for r in results) == 150
    assert all(r[2] > 800 for r in results if r[1])  # told to come back when a slot frees, not at once
    assert len({p.text for p in posts}) == 50


def test_a_429_closes_the_account_for_every_process_and_the_key_honours_the_prefix(client: redis.Redis) -> None:
    with FakeXApi() as fake:
        settings = XSettings(type="x", api_base_url=fake.url, user_token=SecretStr("oauth2-user-token-1"))
        ctx = context(redis=client, key_prefix="site-a:")
        first, second = XChannel("x", settings, ctx), XChannel("x", settings, ctx)  # two workers
        assert first.budget.key == "site-a:x:x:budget"
        fake.rate_limit_next(reset_in=120)
        one = notice(incident(["first"], incident_id="inc001"), 1, "x")
        two = notice(incident(["second"], incident_id="inc002"), 1, "x")
        with pytest.raises(Transient):
            first.send(one, first.render(one))
        with pytest.raises(Transient) as info:  # the other worker does not even try before the reset
            second.send(two, second.render(two))
        assert "budget" in info.value.reason and info.value.retry_after is not None
        assert info.value.retry_after > 100
        assert len(fake.recorded("POST", "/2/tweets")) == 1
        assert client.exists("site-a:x:x:budget:blocked") and not client.keys("notifier:x:*")


def _racer(redis_url: str, api_url: str, worker: int, barrier: Any, queue: multiprocessing.Queue) -> None:
    conn = redis.Redis.from_url(redis_url, decode_responses=True)
    settings = XSettings(type="x", api_base_url=api_url, user_token=SecretStr("oauth2-user-token-1"),
                         max_in_flight=1)
    chan = XChannel("x", settings, context(redis=conn))
    note = notice(incident([f"Racer {worker}"], incident_id=f"inc9{worker:02d}"), 1, "x")
    rendering = chan.render(note)
    barrier.wait(60)  # every worker ready: they all write at once
    try:
        chan.send(note, rendering)
        queue.put(("posted", 0.0))
    except Transient as exc:
        queue.put(("deferred", exc.retry_after or 0.0))


def test_writes_in_flight_when_x_answers_429_do_not_reach_x(redis_url: str, client: redis.Redis) -> None:
    """Four workers write to one account at the same moment and X answers the first with a 429: with
    ``max_in_flight: 1`` (one write in flight per account), nothing else reaches X before the reset
    (without the gate, the other three had passed the budget already and arrived while the 429 was on
    its way). Larger limits: ``test_x_in_flight.py``."""
    ctx = multiprocessing.get_context("spawn")
    queue, barrier = ctx.Queue(), ctx.Barrier(5)
    with FakeXApi() as fake:
        fake.latency = 0.3  # each answer takes a while, as X's do under load
        fake.rate_limit_next(reset_in=120)
        procs = [ctx.Process(target=_racer, args=(redis_url, fake.url, w, barrier, queue)) for w in range(4)]
        for proc in procs:
            proc.start()
        barrier.wait(120)
        results = [queue.get(timeout=120) for _ in procs]
        for proc in procs:
            proc.join(timeout=30)
        writes = fake.recorded("POST", "/2/tweets")
        posts = fake.posts()
    assert len(writes) == 1 and posts == []  # the 429 was the only write X saw
    assert [r[0] for r in results] == ["deferred"] * 4
    assert all(r[1] > 100 for r in results)  # all told to come back after X's reset
    assert not client.exists("notifier:x:x:budget:leases")  # the gate is open again


@pytest.mark.parametrize("in_flight", [1, 3])
@pytest.mark.parametrize("kind", ["redis", "local"])
def test_at_most_n_writes_in_flight_per_account_and_a_dead_holders_lease_lapses(kind: str, in_flight: int,
                                                                                client: redis.Redis) -> None:
    windows = [Window(900, 100)]
    budget = (PostingBudget(client, "t:gate", windows, gate=0.2, in_flight=in_flight) if kind == "redis"
              else LocalBudget(windows, 0.2, in_flight=in_flight))
    now = 1_800_000_000.0
    held = [budget.acquire(now)[0] for _ in range(in_flight)]
    assert all(held) and len(set(held)) == in_flight
    assert budget.acquire(now) == (None, BUSY)  # none of them has its answer yet
    budget.end_write("someone else's slot")  # only a holder ends its own lease
    assert budget.acquire(now) == (None, BUSY)
    budget.end_write(held[0])
    second, _ = budget.acquire(now)
    assert second is not None
    assert budget.acquire(now) == (None, BUSY)
    # the holders die: their leases lapse (Redis: on its own clock; local: the clock given)
    wait_for(lambda: budget.acquire(now + 0.5)[0] is not None, timeout=10, what="the dead holders' leases to lapse")


def test_a_shorter_lease_never_shortens_the_life_of_a_longer_one(client: redis.Redis) -> None:
    """Two workers whose X timeouts differ share the account's gate: the gate key lives as long as its
    longest lease (review N1: each acquire set the key's TTL to its own lease, dropping a longer one)."""
    windows = [Window(900, 100)]
    long = PostingBudget(client, "t:gate", windows, gate=60, in_flight=2)
    short = PostingBudget(client, "t:gate", windows, gate=0.2, in_flight=2)
    now = 1_800_000_000.0
    assert long.acquire(now)[0] is not None
    assert short.acquire(now)[0] is not None
    assert client.pttl("t:gate:leases") > 59_000, "the long lease's write is still in flight"
    assert short.acquire(now) == (None, BUSY)


def test_threads_of_one_worker_queue_locally_for_the_accounts_writes_in_flight(client: redis.Redis) -> None:
    """Under the thread pool, many threads of one process share one X channel: they queue on a
    process-local semaphore of ``max_in_flight``, so each write asks the shared gate in Redis once
    instead of polling it while the account's writes in flight are at the limit. All of them are
    posted, each once."""
    import threading

    with FakeXApi() as fake:
        fake.latency = 0.05
        settings = XSettings(type="x", api_base_url=fake.url, user_token=SecretStr("oauth2-user-token-1"),
                             max_in_flight=3)
        chan = XChannel("x", settings, context(redis=client))
        asks: list[str] = []
        acquire = chan.budget.acquire

        def counted(now: float) -> Any:
            slot, wait = acquire(now)
            asks.append("slot" if slot is not None else str(wait))
            return slot, wait

        chan.budget.acquire = counted  # type: ignore[method-assign]
        notes = [notice(incident([f"Thread {n}"], incident_id=f"inc7{n:02d}"), 1, "x") for n in range(8)]
        barrier = threading.Barrier(len(notes))
        errors: list[BaseException] = []

        def send(note: Any) -> None:
            rendering = chan.render(note)
            barrier.wait(30)
            try:
                chan.send(note, rendering)
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=send, args=(n,)) for n in notes]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        posts = fake.posts()
    assert errors == []
    assert len(posts) == len({p.text for p in posts}) == 8
    assert asks == ["slot"] * 8, "no thread polled the shared gate while this worker's writes were at the limit"
    assert fake.max_writes_in_flight <= 3
    assert not client.exists("notifier:x:x:budget:leases")


def test_an_upgrade_from_the_one_write_gate_leaves_an_old_workers_lease_alone(client: redis.Redis) -> None:
    # before max_in_flight the gate was a string key taken with SET NX PX (``:inflight``); during a
    # rolling upgrade a new worker must neither fail on it nor delete it under the old worker's write
    client.set("t:old:inflight", "1800000000.000000:abcdef", px=5000)
    budget = PostingBudget(client, "t:old", [Window(900, 100)], gate=0.2, in_flight=2)
    slot, wait = budget.acquire(1_800_000_000.0)
    assert slot is not None and wait == 0.0
    budget.end_write(slot)
    assert client.get("t:old:inflight") == "1800000000.000000:abcdef"  # the old worker's lease, untouched
    assert client.type("t:old:leases") in ("zset", "none")


@pytest.mark.parametrize("kind", ["redis", "local"])
def test_a_posted_write_blocks_clears_the_429_streak_and_ends_its_lease_in_one_step(
        client: redis.Redis, kind: str) -> None:
    """Issue 14: after a post, X's block from its headers, the 429 streak's end and the lease's end are one
    script (one round trip), in the order ``sync``, ``clear_429``, ``end_write`` kept them."""
    windows = [Window(900, 100)]
    budget = (PostingBudget(client, "t:posted", windows, gate=60, in_flight=1) if kind == "redis"
              else LocalBudget(windows, 60, in_flight=1))
    now = 1_800_000_000.0
    assert budget.backoff_429(now) >= 60  # a header-less 429 earlier: a streak of one, the account closed
    if kind == "redis":
        client.delete("t:posted:blocked")
    else:
        budget._blocked = 0.0
    slot, _ = budget.acquire(now)
    assert slot is not None and budget.acquire(now)[1] == BUSY  # the one lease is held
    client.script_load(x_budget._POSTED)  # counted below: a first call's NOSCRIPT and retry would count twice
    scripts_before = client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
    until = budget.posted(slot, {"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(now + 300)}, now)
    assert until == now + 300
    if kind == "redis":
        scripts = client.info("commandstats")["cmdstat_evalsha"]["calls"] - scripts_before
        assert scripts == 1, "one script, no DEL or second EVALSHA"
        assert not client.exists("t:posted:429s") and not client.exists("t:posted:leases")
    assert budget.acquire(now + 1) == (None, pytest.approx(299))  # closed until X's reset, lease free
    assert budget.acquire(now + 301)[0] is not None
    assert budget.backoff_429(now + 302) == pytest.approx(60, rel=0.3)  # the streak starts from the bottom
