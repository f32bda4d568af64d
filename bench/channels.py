"""Benchmark: posting to the fake X and Graph APIs through the channels vs. plain requests calls.

For each API and each added latency (0 ms and 100 ms per request) it sends N notices with C threads:

- ``channel``: the production path: XChannel/FacebookChannel render + send (tweepy or requests, the
  transport adapter, the shared Redis posting budget and thread progress on a real redis-server);
  one channel instance per thread, like one per worker process;
- ``baseline``: a plain thread pool of ``requests.post`` calls with the same payload to the same fake.

Run:  python bench/channels.py [--notices 1000] [--slow-notices 400] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path

import redis
import requests
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from notifier.channels.base import Channel  # noqa: E402
from notifier.channels.facebook import FacebookChannel, FacebookSettings  # noqa: E402
from notifier.channels.x import XChannel, XSettings  # noqa: E402
from tests.fakes.graph_api import PAGE_ID, TOKEN, FakeGraphApi  # noqa: E402
from tests.fakes.redis_server import redis_server  # noqa: E402
from tests.fakes.social import context, incident, notice  # noqa: E402
from tests.fakes.x_api import FakeXApi  # noqa: E402


def run(n: int, concurrency: int, one: Callable[[int], None]) -> tuple[float, float, float]:
    """Throughput (per second), p50 and p99 (ms) of ``one(i)`` for i in range(n)."""
    latencies: list[float] = []
    lock = threading.Lock()

    def timed(i: int) -> None:
        t0 = time.perf_counter()
        one(i)
        dt = time.perf_counter() - t0
        with lock:
            latencies.append(dt)

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(timed, range(n)))
    wall = time.perf_counter() - start
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")  # never beyond the max
    return n / wall, cuts[49] * 1000, cuts[98] * 1000


def channel_sender(make: Callable[[], Channel], tag: str) -> Callable[[int], None]:
    local = threading.local()

    def one(i: int) -> None:
        chan = getattr(local, "chan", None)
        if chan is None:
            chan = local.chan = make()
        inc = incident([f"Bench {tag} notice {i}: mail is slow."], incident_id=f"inc{i}")
        note = notice(inc, 1, chan.name)
        chan.send(note, chan.render(note))

    return one


def baseline_sender(api: str, url: str, tag: str) -> Callable[[int], None]:
    """The same request the channel makes, as one plain requests call."""
    local = threading.local()

    def one(i: int) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        if api == "x":
            resp = session.post(f"{url}/2/tweets", timeout=10,
                                json={"text": f"Bench {tag} notice {i}: mail is slow. #INC{i}·1"},
                                headers={"Authorization": "Bearer oauth2-user-token-1"})
        else:
            resp = session.post(f"{url}/v21.0/{PAGE_ID}/feed", timeout=10,
                                data={"message": f"Bench {tag} notice {i} #INC{i}·1", "access_token": TOKEN,
                                      "link": "https://status.example.com/"})
        resp.raise_for_status()

    return one


def make_channel(api: str, url: str, client: redis.Redis) -> Callable[[], Channel]:
    if api == "x":
        xs = XSettings(type="x", api_base_url=url, user_token=SecretStr("oauth2-user-token-1"),
                       budget_per_15min=10**6, budget_per_24h=10**6)
        return lambda: XChannel("x", xs, context(redis=client))
    fb = FacebookSettings(type="facebook", graph_url=url, page_id=PAGE_ID, page_token=SecretStr(TOKEN))
    return lambda: FacebookChannel("fb", fb, context(redis=client))


def _serve(api: str, latency: float, conn: Connection) -> None:
    fake: FakeXApi | FakeGraphApi = FakeXApi() if api == "x" else FakeGraphApi()
    if isinstance(fake, FakeXApi):
        fake.state.post_limit_15min = fake.state.post_limit_24h = 10**9
    fake.latency = latency
    write = ("POST", "/2/tweets") if isinstance(fake, FakeXApi) else ("POST", f"/v21.0/{PAGE_ID}/feed")
    with fake:
        conn.send(fake.url)
        while (cmd := conn.recv()) != "stop":
            if cmd == "count":
                conn.send(len(fake.posts()) if isinstance(fake, FakeXApi) else len(fake.all_posts()))
                continue
            if cmd == "writes":
                conn.send(len(fake.recorded(*write)))
                continue
            _, count, timeout = cmd  # ("arrival", n, timeout): when the n-th write arrived, once it has
            writes = fake.wait_recorded(*write, count, timeout)
            conn.send(writes[count - 1].at if len(writes) >= count else None)


class FakeInProcess:
    """The fake API in its own process, so that it does not share the GIL with the clients measured."""

    def __init__(self, api: str, latency: float) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(api, latency, child), daemon=True)

    def __enter__(self) -> FakeInProcess:
        self.proc.start()
        self.url = str(self.conn.recv())
        return self

    def count(self) -> int:
        self.conn.send("count")
        return int(self.conn.recv())

    def writes(self) -> int:
        """Write requests (X: POST /2/tweets, Graph: POST /feed) that reached the fake, answered or not."""
        self.conn.send("writes")
        return int(self.conn.recv())

    def arrival(self, count: int, timeout: float) -> float | None:
        """When (``time.monotonic``, the same clock in every process) the ``count``-th write request reached
        the fake, waiting for it without polling (the fake's process wakes on each arrival); None after
        ``timeout`` seconds without it."""
        self.conn.send(("arrival", count, timeout))
        at = self.conn.recv()
        return None if at is None else float(at)

    def __exit__(self, *exc: object) -> None:
        self.conn.send("stop")
        self.proc.join(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notices", type=int, default=1000, help="notices per run at 0 ms latency")
    parser.add_argument("--slow-notices", type=int, default=400, help="notices per run at 100 ms latency")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as url:
        client = redis.Redis.from_url(url, decode_responses=True)
        for latency in (0.0, 0.1):
            n = args.notices if latency == 0 else args.slow_notices
            for api in ("x", "facebook"):
                for mode in ("channel", "baseline"):
                    client.flushdb()
                    tag = f"{api}-{mode}-{latency}"
                    with FakeInProcess(api, latency) as fake:
                        one = (channel_sender(make_channel(api, fake.url, client), tag) if mode == "channel"
                               else baseline_sender(api, fake.url, tag))
                        rate, p50, p99 = run(n, args.concurrency, one)
                        posted = fake.count()
                    assert posted == n, f"{tag}: {posted} posted, expected {n}"
                    rows.append((api, f"{latency * 1000:.0f} ms", mode, n, rate, p50, p99))
                    print(f"  {tag}: {rate:.0f}/s p99 {p99:.1f} ms", file=sys.stderr)
        client.close()

    print(f"\nconcurrency {args.concurrency} threads; every run's posts counted at the fake's end\n")
    print("| API | added latency | path | notices | throughput /s | p50 ms | p99 ms |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
    for api, lat, mode, n, rate, p50, p99 in rows:
        print(f"| {api} | {lat} | {mode} | {n} | {rate:.0f} | {p50:.1f} | {p99:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
