"""Benchmark: fan-out of N updates x 3 channels (X, Facebook, webhook) through the service as shipped.

Shipped path: a real redis-server with ``appendfsync always`` (what ``notifier.store.local_redis`` runs by
default), the real ``CeleryDispatcher`` (one Celery publish per notice), a real Celery worker
(``-P prefork``, or ``--pool threads``: what ``notifier worker`` and compose now run) running
``workers.tasks.deliver_notice``, the real X (tweepy,
OAuth 2.0 user token), Facebook and webhook channels. The fakes answer after ``--latency`` seconds (X and
Facebook in their own processes, the webhook receiver in this one).

All updates are accepted first; then the worker starts and drains. Reported: wall time from the worker's
heartbeat to the last post seen at the fakes, worker CPU (main process + pool children, from /proc) per
delivery, worker RSS at the end. Baselines measured in the same run, against the same fakes:

- FLOOR (labelled as such, it is not the service): the same 3 x N POSTs from a plain thread pool of the
  same size with ``requests``, no queue, no ledger; and the same floor with at most ``--x-in-flight``
  X posts in flight at once (the limit the service keeps per X account, ``channels.x.max_in_flight``);
- Apprise ``notify()``: one Apprise object holding three URLs (``json://`` to the X fake's
  ``/2/tweets`` with the user token and ``message`` mapped to ``text``, ``form://`` to the Graph fake's
  ``/feed`` with the page token, ``json://`` to the webhook receiver), one ``notify()`` per update, the
  updates one after another (Apprise sends the three URLs of a call in parallel itself): 3 x N sends;
- Apprise ``async_notify()``: the same N calls as coroutines, ``--concurrency`` of them at once.

    .venv/bin/python bench/fanout.py [--updates 1000] [--pool prefork|threads] [--concurrency 4] [--latency 0.1]
                                        [--x-in-flight 8] [--no-floor] [--no-apprise]

``--paced N`` measures the urgent path instead: N single broadcasts, each waited for until it is on all
three fakes (0 ms unless ``--latency``), p50/p99 against the floor of the same three posts sent directly
and in parallel (3 threads, one plain ``requests`` POST each). Both are timed the same way, from their
start to the arrival of their last request at the fakes (the fakes' own ``time.monotonic`` stamps); the
bench blocks on the fakes while it waits (each wakes on an arrival), so it takes no CPU from the worker.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import apprise
import redis
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.channels import FakeInProcess  # noqa: E402
from notifier.bootstrap import build  # noqa: E402
from notifier.config_loader import load_settings  # noqa: E402
from notifier.services import incidents  # noqa: E402
from notifier.store.local_redis import LocalRedis  # noqa: E402
from tests.fakes.graph_api import PAGE_ID, TOKEN  # noqa: E402
from tests.fakes.webhook_receiver import WebhookReceiver  # noqa: E402
from tests.support import start_worker, write_config  # noqa: E402
from workers.dispatch import CeleryDispatcher  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def group_usage(pgid: int) -> tuple[float, float]:
    """(CPU seconds, RSS MB) of every live process in the process group ``pgid``."""
    cpu = rss = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[2]) != pgid:
                continue
            cpu += (int(fields[11]) + int(fields[12])) / TICK
            rss += int(Path(f"/proc/{entry}/statm").read_text().split()[1]) * PAGE / 2**20
        except (OSError, ValueError, IndexError):
            continue
    return cpu, rss


def floor(x_url: str, fb_url: str, hook_url: str, n: int, concurrency: int, x_in_flight: int = 0,
          tag: str = "") -> float:
    one = floor_sender(x_url, fb_url, hook_url, x_in_flight, tag)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(n)))
    return time.perf_counter() - t0


def floor_sender(x_url: str, fb_url: str, hook_url: str, x_in_flight: int = 0,
                 tag: str = "") -> Callable[[int], None]:
    """One POST per call, X / Facebook / webhook in turn; with ``x_in_flight``, at most that many X posts
    at once (a semaphore: the floor of a service that keeps X's per-account limit)."""
    local = threading.local()
    x_gate = threading.BoundedSemaphore(x_in_flight) if x_in_flight else None

    def one(i: int) -> None:
        session = getattr(local, "s", None) or requests.Session()
        local.s = session
        kind = i % 3
        if kind == 0:
            if x_gate is not None:
                x_gate.acquire()
            try:
                r = session.post(f"{x_url}/2/tweets", json={"text": f"Floor{tag} notice {i} #INC{i}·1"}, timeout=10,
                                 headers={"Authorization": "Bearer oauth2-user-token-1"})
            finally:
                if x_gate is not None:
                    x_gate.release()
        elif kind == 1:
            r = session.post(f"{fb_url}/v21.0/{PAGE_ID}/feed", timeout=10,
                             data={"message": f"Floor{tag} notice {i}", "access_token": TOKEN})
        else:
            r = session.post(hook_url, json={"notice_id": f"f{tag}{i}", "text": "x" * 120}, timeout=10,
                             headers={"Idempotency-Key": f"f{tag}{i}"})
        r.raise_for_status()

    return one


def apprise_urls(x_url: str, fb_url: str, hook_url: str) -> list[str]:
    """The three fakes as Apprise URLs, each answering what Apprise sends as a success (see the header)."""
    x, fb, hook = (u.split("://", 1)[1] for u in (x_url, fb_url, hook_url))
    return [f"json://{x}/2/tweets?+Authorization=Bearer%20oauth2-user-token-1&:message=text",
            f"form://{fb}/v21.0/{PAGE_ID}/feed?:access_token={TOKEN}",
            f"json://{hook}"]


def apprise_notify(urls: list[str], n: int) -> tuple[float, int]:
    """Apprise 1.x/2.x ``notify()``: one call per update, the updates one after another; (wall, calls that
    succeeded on all three URLs)."""
    ap = apprise.Apprise()
    for url in urls:
        ap.add(url)
    ok = 0
    t0 = time.perf_counter()
    for i in range(n):
        ok += bool(ap.notify(body=f"Apprise sequential notice {i}: mail is slow for some users.", title="Outage"))
    return time.perf_counter() - t0, ok


def apprise_async(urls: list[str], n: int, concurrency: int) -> tuple[float, int]:
    """Apprise ``async_notify()``: the same calls as coroutines, ``concurrency`` at once."""
    ap = apprise.Apprise()
    for url in urls:
        ap.add(url)

    async def run() -> list[bool]:
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> bool:
            async with gate:
                return bool(await ap.async_notify(body=f"Apprise async notice {i}: mail is slow for some users.",
                                                  title="Outage"))

        return await asyncio.gather(*(one(i) for i in range(n)))

    t0 = time.perf_counter()
    results = asyncio.run(run())
    return time.perf_counter() - t0, sum(results)


def pct(values: list[float], q: int) -> float:
    import statistics

    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def paced(app: object, n: int, fx: FakeInProcess, fg: FakeInProcess, hook: WebhookReceiver,
          floor_one: Callable[[int], None]) -> list[tuple[str, str, str, str, str]]:
    """N single broadcasts, then N direct sends of the same three posts; each timed from its start to the
    arrival of its last request at the fakes (their own arrival stamps, ``time.monotonic``, which is one
    clock for every process). Waiting blocks on the fakes (each wakes on an arrival), so the bench burns
    no CPU beside the worker while it waits, and both paths are measured the same way, at the receivers."""
    base = (fx.writes(), fg.writes(), len(hook.keys()))

    def arrived(k: int) -> float:
        """When the k-th request after ``base`` had arrived at all three fakes."""
        times = [fx.arrival(base[0] + k, 30), fg.arrival(base[1] + k, 30), hook.arrival(base[2] + k, 30)]
        if None in times:
            raise SystemExit(f"request {k} did not reach all three fakes within 30 s (x, facebook, webhook: "
                             f"{times}); see the worker's log in the bench's temporary directory")
        return max(t for t in times if t is not None)

    samples: list[float] = []
    accepts: list[float] = []
    for i in range(n):
        t0 = time.monotonic()
        incidents.broadcast(app, body=f"Urgent notice {i}: mail is down.")  # type: ignore[arg-type]
        accepts.append(time.monotonic() - t0)
        samples.append(arrived(i + 1) - t0)
    direct: list[float] = []
    with ThreadPoolExecutor(3) as pool:
        for i in range(n):
            t0 = time.monotonic()
            list(pool.map(floor_one, [3 * i, 3 * i + 1, 3 * i + 2]))
            direct.append(arrived(n + i + 1) - t0)
    return [(label, str(len(xs)), f"{pct(xs, 50) * 1000:.1f}", f"{pct(xs, 99) * 1000:.1f}", f"{max(xs) * 1000:.1f}")
            for label, xs in (("notifier: broadcast -> on x, facebook, webhook", samples),
                              ("  of which accepting: broadcast() returned", accepts),
                              ("FLOOR: the 3 posts sent directly, in parallel", direct))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--updates", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--pool", choices=["prefork", "threads"], default="prefork",
                        help="the worker's Celery pool (notifier worker's default is threads 32)")
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--no-floor", action="store_true")
    parser.add_argument("--no-apprise", action="store_true", help="skip the two Apprise baselines")
    parser.add_argument("--x-in-flight", type=int, default=8,
                        help="channels.x.max_in_flight for the service, and the X limit of the second floor")
    parser.add_argument("--label", default="notifier (this tree)")
    parser.add_argument("--paced", type=int, default=0, help="urgent path: N single updates, each waited for")
    args = parser.parse_args()
    os.environ.update(BENCH_X_TOKEN="oauth2-user-token-1", BENCH_FB_TOKEN=TOKEN)  # the worker inherits them
    tmp = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    server = LocalRedis(tmp / "redis", appendfsync="always").start()
    try:
        with FakeInProcess("x", args.latency) as fx, FakeInProcess("fb", args.latency) as fg, \
                WebhookReceiver() as hook:
            hook.delay = args.latency
            client = redis.Redis.from_url(server.url, decode_responses=True)
            config = write_config(tmp / "n.yaml", server.url, {
                "x": {"type": "x", "api_base_url": fx.url, "user_token": "${BENCH_X_TOKEN}",
                      "budget_per_15min": 10**6, "budget_per_24h": 10**6, "max_in_flight": args.x_in_flight},
                "facebook": {"type": "facebook", "graph_url": fg.url, "page_id": PAGE_ID,
                             "page_token": "${BENCH_FB_TOKEN}"},
                "hook": {"type": "webhook", "url": hook.url},
            }, delivery={"lease_seconds": 120, "task_time_limit": 60, "http_timeout": 10, "requeue_after": 30,
                         "sweep_interval": 15})
            settings = load_settings(config)
            app = build(settings, dispatcher=CeleryDispatcher(settings), redis_url=server.url)
            if args.paced:
                worker = start_worker(config, client, tmp / "worker.log", concurrency=args.concurrency,
                                      pool=args.pool)
                try:
                    prows = paced(app, args.paced, fx, fg, hook, floor_sender(fx.url, fg.url, hook.url))
                finally:
                    worker.stop()
                print("path | updates | p50 ms | p99 ms | max ms")
                print("--- | ---: | ---: | ---: | ---:")
                for prow in prows:
                    print(" | ".join(prow))
                print(f"\n{args.pool} {args.concurrency}, fakes answer after {args.latency * 1000:.0f} ms, appendfsync "
                      "always, real CeleryDispatcher; each path timed from its start to its last request's arrival "
                      "at the fakes")
                return
            load0 = os.getloadavg()
            t0 = time.perf_counter()
            for i in range(args.updates):
                incidents.broadcast(app, body=f"Benchmark notice {i}: mail is slow for some users.")
            accept = time.perf_counter() - t0
            total = args.updates * 3

            def done() -> int:
                return fx.count() + fg.count() + len(hook.keys())

            worker = start_worker(config, client, tmp / "worker.log", concurrency=args.concurrency,
                                      pool=args.pool)
            try:
                cpu0, _ = group_usage(worker.proc.pid)  # imports and start-up are not per delivery
                t0 = time.perf_counter()
                deadline = t0 + 1800
                while (got := done()) < total and time.perf_counter() < deadline:
                    print(f"\r  {got}/{total}", end="", file=sys.stderr, flush=True)
                    time.sleep(0.2)
                wall = time.perf_counter() - t0
                cpu, rss = group_usage(worker.proc.pid)
                cpu -= cpu0
                settle = time.perf_counter() + 30  # the last mark_posted lands just after its request
                while time.perf_counter() < settle and sum(
                        1 for r in app.store.ledger.rows() if r.state.value == "posted") < total:
                    time.sleep(0.2)
            finally:
                worker.stop()
            print(file=sys.stderr)
            posted = sum(1 for r in app.store.ledger.rows() if r.state.value == "posted")
            dupes = len(hook.keys()) - len(set(hook.keys()))
            label = f"{args.label}, x.max_in_flight {args.x_in_flight}"
            rows: list[tuple[str, ...]] = [
                (label, f"{args.pool} {args.concurrency}", f"{wall:.1f}", f"{total / wall:.1f}",
                 f"{cpu / total * 1000:.2f}", f"{rss:.0f}", f"{posted}/{total}, {dupes} dup", "1.00")]
            walls: dict[str, float] = {}

            def baseline(name: str, concurrency: str, bwall: float, note: str) -> None:
                walls[name] = bwall
                rows.append((name, concurrency, f"{bwall:.1f}", f"{total / bwall:.1f}", "-", "-", note,
                             f"{bwall / wall:.2f}"))

            if not args.no_floor:
                x0 = fx.count()
                fwall = floor(fx.url, fg.url, hook.url, total, args.concurrency)
                baseline("FLOOR: threads + requests, no queue/ledger", f"{args.concurrency} threads", fwall,
                         f"{fx.count() - x0}/{args.updates} on X")
                x0 = fx.count()
                fwall = floor(fx.url, fg.url, hook.url, total, args.concurrency, args.x_in_flight, tag=" limited")
                baseline(f"FLOOR: the same, X <= {args.x_in_flight} in flight", f"{args.concurrency} threads",
                         fwall, f"{fx.count() - x0}/{args.updates} on X")
            if not args.no_apprise:
                urls = apprise_urls(fx.url, fg.url, hook.url)
                x0 = fx.count()
                awall, ok = apprise_notify(urls, args.updates)
                baseline(f"Apprise {apprise.__version__} notify(), one update after another", "3 per call", awall,
                         f"{ok}/{args.updates} calls ok, {fx.count() - x0} on X")
                x0 = fx.count()
                awall, ok = apprise_async(urls, args.updates, args.concurrency)
                baseline(f"Apprise {apprise.__version__} async_notify()", f"{args.concurrency} calls", awall,
                         f"{ok}/{args.updates} calls ok, {fx.count() - x0} on X")
            load1 = os.getloadavg()
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)  # Redis's AOF and the worker's log: nothing is read afterwards
    head = ("system", "concurrency", "wall s", "deliveries/s", "worker CPU ms/delivery", "worker RSS MB",
            "posted", "its wall / notifier's")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    print(" | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    print("-|-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))
    print(f"\n{args.updates} updates x 3 channels (x, facebook, webhook), fakes answer after "
          f"{args.latency * 1000:.0f} ms, appendfsync always, real CeleryDispatcher; accept: "
          f"{accept / args.updates * 1000:.1f} ms per update; load average {load0[0]:.1f} at the start, "
          f"{load1[0]:.1f} at the end ({os.cpu_count()} CPUs)")
    for name, target, cmp in (("FLOOR: threads + requests, no queue/ledger", 0.7, "of the raw thread pool"),
                              (f"FLOOR: the same, X <= {args.x_in_flight} in flight", 0.7,
                               "of the floor that keeps the X limit"),
                              (next((n for n in walls if n.endswith("one update after another")), ""), 5.0,
                               "Apprise's sequential notify()")):
        if name in walls:
            ratio = walls[name] / wall
            print(f"notifier speed {ratio:.2f}x {cmp} (target >= {target}x): {'met' if ratio >= target else 'NOT met'}")
    print(f"worker RSS {rss:.0f} MB (target <= 300 MB at concurrency >= 32): {'met' if rss <= 300 else 'NOT met'}")


if __name__ == "__main__":
    main()
