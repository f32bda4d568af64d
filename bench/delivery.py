"""Benchmark: 1,000 updates × 2 channels (webhook + outbox) through the real path.

Real redis-server (AOF, fsync always), real celery worker (prefork), a local HTTP receiver.
Reports deliveries/s and enqueue→posted latency p50/p99, next to a baseline measured in the same run:
the same 2,000 sends made directly from a thread pool of the same size (no queue, no ledger), which is
what the framework's bookkeeping is compared against.

    .venv/bin/python bench/delivery.py [--updates 1000] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import redis
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from notifier.bootstrap import build  # noqa: E402
from notifier.config_loader import load_settings  # noqa: E402
from notifier.services import incidents  # noqa: E402
from notifier.store.local_redis import LocalRedis  # noqa: E402
from tests.fakes.webhook_receiver import WebhookReceiver  # noqa: E402
from tests.support import start_worker, write_config  # noqa: E402
from workers.dispatch import CeleryDispatcher  # noqa: E402


def pct(values: list[float], q: float) -> float:
    # inclusive: never beyond the observed range (the default method extrapolates past the maximum)
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def baseline(url: str, outbox: Path, n: int, concurrency: int) -> tuple[float, list[float]]:
    session = requests.Session()
    latencies: list[float] = []

    def one(i: int) -> None:  # the same work as the notices: half webhook posts, half fsynced outbox lines
        start = time.perf_counter()
        if i % 2:
            session.post(url, json={"notice_id": f"b{i}", "text": "x" * 120},
                         headers={"Idempotency-Key": f"b{i}"}, timeout=10)
        else:
            with outbox.open("a") as fh:
                fh.write(json.dumps({"notice_id": f"b{i}"}) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        latencies.append(time.perf_counter() - start)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(n)))
    return time.perf_counter() - t0, latencies


def paced(app, receiver: WebhookReceiver, outbox: Path, args: argparse.Namespace) -> None:
    """Event to posted on every channel, one update at a time on an idle system."""
    samples: list[float] = []
    for i in range(args.paced):
        before = len(receiver.keys())
        t0 = time.perf_counter()
        incidents.broadcast(app, body=f"Urgent notice {i}")
        while len(receiver.keys()) == before or outbox.read_bytes().count(b"\n") < i + 1:
            time.sleep(0.0005)
        samples.append(time.perf_counter() - t0)
    print("slowest ms:", [round(x * 1000) for x in sorted(samples)[-12:]], file=sys.stderr)
    print("path                      | updates | p50 ms | p99 ms | max ms")
    print("--------------------------|---------|--------|--------|-------")
    print(f"urgent: update -> posted on 2 channels | {len(samples)} | {pct(samples, 50) * 1000:.1f} | "
          f"{pct(samples, 99) * 1000:.1f} | {max(samples) * 1000:.1f}")
    print(f"\nworker {args.pool} x {args.concurrency}, receiver latency {args.latency * 1000:.0f} ms; measured at the "
          "far ends (receiver and outbox file), so it includes enqueue, queue, claim, send and the write")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--updates", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--fsync", default="always", choices=["always", "everysec"])
    parser.add_argument("--pool", default="prefork", choices=["prefork", "threads"])
    parser.add_argument("--workers", type=int, default=1, help="worker processes (scaling out)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds the receiver stalls per request")
    parser.add_argument("--paced", type=int, default=0,
                        help="instead of a burst: N single updates, each waited for (the urgent path)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-delivery-"))
    server = LocalRedis(tmp / "redis", appendfsync=args.fsync).start()
    try:
        run(args, tmp, server)
    finally:
        server.stop()


def run(args: argparse.Namespace, tmp: Path, server: LocalRedis) -> None:
    client = redis.Redis.from_url(server.url, decode_responses=True)
    with WebhookReceiver() as receiver:
        config = write_config(tmp / "n.yaml", server.url, {
            "outbox": {"type": "outbox", "path": str(tmp / "outbox.jsonl")},
            "hook": {"type": "webhook", "url": receiver.url},
        }, delivery={"lease_seconds": 120, "task_time_limit": 60, "http_timeout": 10, "requeue_after": 60})
        settings = load_settings(config)
        app = build(settings, dispatcher=CeleryDispatcher(settings), redis_url=server.url)
        receiver.delay = args.latency
        if args.paced:
            worker = start_worker(config, client, tmp / "worker.log", concurrency=args.concurrency, pool=args.pool)
            try:
                paced(app, receiver, tmp / "outbox.jsonl", args)
            finally:
                worker.stop()
            return
        total = args.updates * 2
        t0 = time.perf_counter()  # 1) accept every update first: the enqueue rate on its own
        for i in range(args.updates):
            incidents.broadcast(app, body=f"Benchmark notice {i}: " + "x" * 100)
        enqueue_s = time.perf_counter() - t0
        workers = [start_worker(config, client, tmp / f"worker{n}.log", concurrency=args.concurrency, pool=args.pool,
                                wait=n == args.workers - 1) for n in range(args.workers)]
        try:  # 2) then drain: throughput from the ledger's own posted_at stamps
            outbox = tmp / "outbox.jsonl"
            while True:  # count at the far ends, so that polling does not load Redis
                lines = outbox.read_bytes().count(b"\n") if outbox.exists() else 0
                done = len(receiver.keys()) + lines
                print(f"\r  {done}/{total} delivered", end="", file=sys.stderr, flush=True)
                if done >= total:
                    break
                time.sleep(0.1)
            print(file=sys.stderr)
            time.sleep(1)  # let the last mark_posted land before reading the ledger
            rows = app.store.ledger.rows()
            posted = sorted(r.posted_at for r in rows if r.posted_at)
            wall = posted[-1] - posted[0]
            first = posted[0]
            latencies = [p - first for p in posted]  # time from the drain's start to each post
            assert len(posted) == total, "every notice posted"
            assert len(set(receiver.keys())) == len(receiver.keys()) == args.updates, "duplicates or losses"
        finally:
            for worker in workers:
                worker.stop()
        base_wall, base_lat = baseline(receiver.url, tmp / "baseline.jsonl", total,
                                       args.concurrency * args.workers)
    rows_out = [
        ("notifier: drain (celery+ledger)", total, f"{total / wall:,.0f}", f"{pct(latencies, 50) * 1000:.1f}",
         f"{pct(latencies, 99) * 1000:.1f}", f"{args.updates / enqueue_s:,.0f}"),
        ("baseline: thread pool, direct", total, f"{total / base_wall:,.0f}", f"{pct(base_lat, 50) * 1000:.1f}",
         f"{pct(base_lat, 99) * 1000:.1f}", "-"),
    ]
    headers = ("path", "deliveries", "per second", "p50 ms", "p99 ms", "updates accepted/s")
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows_out, strict=True)]
    print(" | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("-|-".join("-" * w for w in widths))
    for row in rows_out:
        print(" | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    print(f"\n{args.updates} updates x 2 channels, {args.workers} worker(s) {args.pool} x {args.concurrency}, "
          "receiver latency "
          f"{args.latency * 1000:.0f} ms, appendfsync {args.fsync}.\nnotifier: all updates accepted first, then "
          "one worker drains the queue; p50/p99 = time from the drain's first post to each post (a backlog "
          "cleared, not single-notice latency: see --paced). baseline: the same sends straight from a thread "
          "pool of the same size, per-send latency.")


if __name__ == "__main__":
    main()
