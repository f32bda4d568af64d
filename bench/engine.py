"""Alert storm benchmark: 10,000 alerts in 10 s through the incident engine, against a real redis-server.

    /work/main/.venv/bin/python bench/engine.py [--alerts 10000] [--seconds 10]

Input is simulated: the alerts are appended to the events stream exactly as the API does, spread over
``--seconds`` of simulated time (a FakeClock), with ``process_events`` after every slice and a beat
``tick`` every simulated second; then the clock runs on past the confirm and resolve delays while the
alerts resolve. Every notice the engine created is delivered to outbox channels, so "posts" are lines
really written. Each scenario runs in its own process, so peak RSS (ru_maxrss) is its own:

- baseline: XADD + XREADGROUP + XACK of the same events, no engine logic;
- engine: the same stream consumed by ``notifier.services.engine_runner`` (grouping, flap, state, journal).

Peak Python heap (tracemalloc) is measured in a second run of each scenario, because tracing slows
the code it measures.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONFIG = """
page: {{name: Bench, url: "http://127.0.0.1:8081/"}}
components:
  - {{id: storage, name: Storage, group: Core}}
  - {{id: imap, name: IMAP, group: Mail}}
  - {{id: smtp, name: SMTP, group: Mail}}
channels:
  statuspage: {{type: outbox, path: "{dir}/statuspage.jsonl"}}
  x: {{type: outbox, path: "{dir}/x.jsonl"}}
  facebook: {{type: outbox, path: "{dir}/facebook.jsonl"}}
engine:
  confirm: {{seconds: 180}}
  channels: {{statuspage: {{confirm_seconds: 60}}}}
  routing:
    routes:
      - {{name: storage, match: {{team: storage}}, components: [storage, imap, smtp]}}
"""


def _events(app: Any, start: int, count: int, status: str) -> list[str]:
    from notifier.domain.events import AlertEvent

    now = app.clock.now()
    out = []
    for i in range(start, start + count):
        event = AlertEvent(
            "alertmanager",
            f"disk-{i:05d}",
            status,
            {"team": "storage", "instance": f"node{i % 300}"},
            starts_at=now,
            received_at=now,
            group_key='{}/{team="storage"}:{alertname="DiskIOErrors"}',
            severity="critical" if i % 3 else "warning",
            summary=f"disk {i} failing",
        )
        out.append(json.dumps(event.to_dict()))
    return out


def scenario(kind: str, url: str, workdir: str, alerts: int, seconds: int, trace: bool, queue: Any) -> None:
    import redis

    from notifier.bootstrap import build
    from notifier.clock import FakeClock
    from notifier.config_loader import parse_settings
    from notifier.ports import NullDispatcher
    from notifier.services import delivery
    from notifier.services import engine_runner as engine

    client = redis.Redis.from_url(url, decode_responses=True)
    client.flushdb()
    settings = parse_settings(CONFIG.format(dir=workdir), "bench", env={})
    app = build(settings, dispatcher=NullDispatcher(), clock=FakeClock(), redis_client=client)
    stream = settings.redis.key_prefix + "events"
    per_second = alerts // seconds
    slices = 10  # process_events calls per simulated second (a worker woken often)
    if trace:
        tracemalloc.start()
    t0 = time.perf_counter()
    processed = 0

    def push(batch: list[str]) -> None:
        pipe = client.pipeline(transaction=False)
        for raw in batch:
            pipe.xadd(stream, {"event": raw})
        pipe.execute()

    def consume() -> int:
        if kind == "engine":
            return engine.process_events(app)
        engine.ensure_consumer_group(app)
        done = 0
        while True:
            got = client.xreadgroup("engine", "bench", {stream: ">"}, count=500)
            if not got or not got[0][1]:
                return done
            ids = [i for i, _ in got[0][1]]
            for _, fields in got[0][1]:
                json.loads(fields["event"])  # the baseline still parses what it reads
            client.xack(stream, "engine", *ids)
            done += len(ids)

    phase_times = {}
    busy = 0.0  # time spent consuming (and ticking), without appending the input
    for phase in ("firing", "resolved"):
        p0 = time.perf_counter()
        for second in range(seconds):
            for part in range(slices):
                start = second * per_second + part * (per_second // slices)
                push(_events(app, start, per_second // slices, phase))
                app.clock.advance(1 / slices)
                c0 = time.perf_counter()
                processed += consume()
                busy += time.perf_counter() - c0
            if kind == "engine":
                c0 = time.perf_counter()
                engine.tick(app)
                busy += time.perf_counter() - c0
        # the beat keeps ticking while the storm's timers run (confirm, then resolve)
        for _ in range(600 // 5):
            app.clock.advance(5)
            if kind == "engine":
                c0 = time.perf_counter()
                engine.tick(app)
                busy += time.perf_counter() - c0
        phase_times[phase] = time.perf_counter() - p0
    elapsed = time.perf_counter() - t0
    heap = tracemalloc.get_traced_memory()[1] if trace else 0
    if trace:
        tracemalloc.stop()
    posts: dict[str, int] = {}
    if kind == "engine":
        for row in app.store.ledger.rows():
            delivery.deliver(app, row.notice_id)
        for name in settings.channels:
            path = Path(workdir, f"{name}.jsonl")
            posts[name] = len(path.read_text().splitlines()) if path.exists() else 0
    queue.put(
        {
            "kind": kind,
            "processed": processed,
            "elapsed": elapsed,
            "heap": heap,
            "posts": posts,
            "phases": phase_times,
            "busy": busy,
            "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "incidents": len(app.store.list_incidents()) if kind == "engine" else 0,
        }
    )


def run(kind: str, url: str, alerts: int, seconds: int, trace: bool) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    with tempfile.TemporaryDirectory() as workdir:
        proc = ctx.Process(target=scenario, args=(kind, url, workdir, alerts, seconds, trace, queue))
        proc.start()
        result = queue.get(timeout=900)
        proc.join()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()

    from notifier.store.local_redis import LocalRedis

    with tempfile.TemporaryDirectory() as tmp:
        server = LocalRedis(Path(tmp) / "redis").start()
        try:
            rows = []
            for kind in ("baseline", "engine"):
                timed = run(kind, server.url, args.alerts, args.seconds, trace=False)
                traced = run(kind, server.url, args.alerts, args.seconds, trace=True)
                rows.append((timed, traced))
        finally:
            server.stop()

    n = 2 * args.alerts
    print(
        f"alert storm: {args.alerts} alerts fire within {args.seconds} s, then resolve within {args.seconds} s "
        f"({n} events; simulated time, 10 process_events calls per second, a beat tick every 1-5 s; "
        "real redis-server with AOF fsync always)\n"
    )
    print(
        f"{'scenario':<10} {'events':>7} {'wall s':>7} {'consume s':>9} {'consumed/s':>10} "
        f"{'peak heap MiB':>14} {'peak RSS MiB':>13} {'incidents':>9}  posts per channel"
    )
    for timed, traced in rows:
        posts = ", ".join(f"{k}={v}" for k, v in timed["posts"].items()) or "-"
        print(
            f"{timed['kind']:<10} {timed['processed']:>7} {timed['elapsed']:>7.2f} {timed['busy']:>9.2f} "
            f"{timed['processed'] / timed['busy']:>10.0f} {traced['heap'] / 2**20:>14.1f} "
            f"{timed['maxrss_kb'] / 1024:>13.1f} {timed['incidents']:>9}  {posts}"
        )
    base, eng = rows[0][0], rows[1][0]
    print(
        f"\nconsume time (reading, deciding, applying; ticks included) engine / baseline: "
        f"{eng['busy'] / base['busy']:.1f}x; wall time also includes appending the input. "
        f"Engine extra peak RSS: {(eng['maxrss_kb'] - base['maxrss_kb']) / 1024:.1f} MiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
