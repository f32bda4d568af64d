"""Benchmark: many probes at 30 s intervals against loopback servers, the probe runner vs. a bare asyncio loop.

- ``runner``: the production path of one location: ``ProbeRunner.run_due`` every ``tick_seconds`` (what
  the ``notifier.probes.tick`` task does, minus Celery's few milliseconds), its thread pool, the per-probe
  Redis locks, votes and latency history on a real redis-server, events through ``accept_events``;
- ``asyncio``: a bare asyncio loop doing the same checks (HTTP GET + status, SMTP banner + EHLO + QUIT),
  each probe its own task sleeping to its next due time: the cheapest Python can do it.

Both run in a fresh process each, for the same wall time, against the same servers (another process).
Reported per mode: runs done, CPU seconds of the process (user + system) per minute of wall time,
peak RSS, lateness (a run's start minus its due time) p50/p99/max, and the longest gap between two
starts of one probe (a schedule that skipped an interval shows here, not in lateness). Due times:
the asyncio loop's are ``start + k * interval``; the runner's are its own schedule
(``notifier.probes.schedule``: first runs spread over the first tick, then a per-probe phase in the
interval), which it passes to the check as ``now``.

Run:  python bench/probes.py [--http 500] [--smtp 100] [--interval 30] [--seconds 95] [--threads 64]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import statistics
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def serve(conn: Connection) -> None:
    """The servers under probe, in their own process: an HTTP server and aiosmtpd."""
    from http.server import ThreadingHTTPServer

    from tests.integration.probe_servers import HttpServer, SmtpServer

    ThreadingHTTPServer.request_queue_size = 1024  # hundreds of probes connect at once
    http, smtp = HttpServer(), SmtpServer()
    conn.send((http.url, smtp.target))
    conn.recv()  # until told to stop
    http.stop()
    smtp.stop()


def usage() -> tuple[float, float]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024  # CPU s, peak RSS MiB (Linux: KiB)


def config(args: argparse.Namespace, http_url: str, smtp_target: str) -> str:
    lines = [f"    - {{name: h{i}, component: web, type: http, target: \"{http_url}p{i}\", interval: {args.interval}, "
             f"timeout: 5, retries: 1}}" for i in range(args.http)]
    lines += [f"    - {{name: s{i}, component: mail, type: smtp, target: \"{smtp_target}\", interval: {args.interval}, "
              f"timeout: 5, retries: 1}}" for i in range(args.smtp)]
    return ("components: [{id: web, name: Web}, {id: mail, name: Mail}]\n"
            f"probes:\n  tick_seconds: {args.tick}\n  concurrency: {args.threads}\n  checks:\n"
            + "\n".join(lines) + "\n")


def run_runner(conn: Connection, args: argparse.Namespace, http_url: str, smtp_target: str, redis_url: str) -> None:
    import redis

    from notifier.bootstrap import build
    from notifier.config.settings import ProbeSettings
    from notifier.config_loader import parse_settings
    from notifier.ports import NullDispatcher
    from notifier.probes import checks
    from notifier.probes.runner import ProbeRunner
    from notifier.probes.verdict import Result
    from notifier.services.ingest import accept_events

    settings = parse_settings(config(args, http_url, smtp_target), "bench", env={})
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    app = build(settings, dispatcher=NullDispatcher(), redis_client=client)
    start = time.time()
    last: dict[str, float] = {}
    lateness: list[float] = []
    gaps: list[float] = []
    failures = 0

    def timed(probe: ProbeSettings, now: float) -> Result:
        nonlocal failures
        began = time.time()
        lateness.append(began - now)  # the runner passes the run's due time on its schedule as ``now``
        if probe.name in last:
            gaps.append(began - last[probe.name])
        last[probe.name] = began
        result = checks.run(probe, now)
        failures += not result.ok
        return result

    runner = ProbeRunner(app, check=timed)
    cpu0, _ = usage()
    next_tick = start
    while time.time() < start + args.seconds:
        runner.run_due(lambda events: accept_events(app, events))
        next_tick += args.tick
        time.sleep(max(0.0, next_tick - time.time()))  # the beat's schedule
    cpu1, rss = usage()
    conn.send(("runner", len(lateness), failures, cpu1 - cpu0, rss, lateness, gaps, time.time() - start))


def run_asyncio(conn: Connection, args: argparse.Namespace, http_url: str, smtp_target: str, redis_url: str) -> None:
    from urllib.parse import urlsplit

    lateness: list[float] = []
    gaps: list[float] = []
    failures = 0
    url = urlsplit(http_url)
    smtp_host, smtp_port = smtp_target.rsplit(":", 1)

    async def http_check(i: int) -> bool:
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        writer.write(f"GET /p{i} HTTP/1.1\r\nHost: {url.hostname}\r\nConnection: close\r\n\r\n".encode())
        status = await reader.readline()
        await reader.read()
        writer.close()
        return status.split()[1:2] == [b"200"]

    async def smtp_check() -> bool:
        reader, writer = await asyncio.open_connection(smtp_host, int(smtp_port))
        banner = await reader.readline()
        writer.write(b"EHLO bench.invalid\r\n")
        while (line := await reader.readline())[3:4] == b"-":
            pass
        writer.write(b"QUIT\r\n")
        await reader.readline()
        writer.close()
        return banner.startswith(b"220") and line.startswith(b"250")

    async def probe(kind: str, i: int, start: float, end: float) -> None:
        nonlocal failures
        due, previous = start, None
        while due < end:
            await asyncio.sleep(max(0.0, due - time.time()))
            began = time.time()
            lateness.append(began - due)
            if previous is not None:
                gaps.append(began - previous)
            previous = began
            try:
                ok = await asyncio.wait_for(http_check(i) if kind == "http" else smtp_check(), 5)
            except (OSError, TimeoutError):
                ok = False
            failures += not ok
            due += args.interval

    async def main() -> float:
        start = time.time()
        end = start + args.seconds
        tasks = [probe("http", i, start, end) for i in range(args.http)]
        tasks += [probe("smtp", i, start, end) for i in range(args.smtp)]
        await asyncio.gather(*tasks)
        await asyncio.sleep(max(0.0, end - time.time()))
        return time.time() - start

    cpu0, _ = usage()
    wall = asyncio.run(main())
    cpu1, rss = usage()
    conn.send(("asyncio", len(lateness), failures, cpu1 - cpu0, rss, lateness, gaps, wall))


def quantile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--http", type=int, default=500)
    parser.add_argument("--smtp", type=int, default=100)
    parser.add_argument("--interval", type=float, default=30)
    parser.add_argument("--tick", type=float, default=5)
    parser.add_argument("--seconds", type=float, default=95, help="wall time of each mode (>= 3 intervals)")
    parser.add_argument("--threads", type=int, default=64, help="probes.concurrency of the runner")
    args = parser.parse_args()

    from tests.fakes.redis_server import redis_server

    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    servers = ctx.Process(target=serve, args=(theirs,), daemon=True)
    servers.start()
    http_url, smtp_target = ours.recv()
    rows: list[Any] = []
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as redis_url:
        for target in (run_asyncio, run_runner):
            mine, child_end = ctx.Pipe()
            proc = ctx.Process(target=target, args=(child_end, args, http_url, smtp_target, redis_url))
            proc.start()
            rows.append(mine.recv())
            proc.join()
    ours.send("stop")
    servers.join(10)

    print(f"{args.http} HTTP + {args.smtp} SMTP probes every {args.interval:g} s, {args.seconds:g} s per mode, "
          f"runner tick {args.tick:g} s on {args.threads} threads; one process per mode, servers in another")
    print(f"{'mode':<8} {'runs':>6} {'failed':>6} {'CPU s/min':>9} {'peak RSS':>9} {'late p50':>9} {'late p99':>9} "
          f"{'late max':>9} {'gap max':>8}")
    for mode, runs, failed, cpu, rss, late, gaps, wall in rows:
        print(f"{mode:<8} {runs:>6} {failed:>6} {cpu / wall * 60:>9.2f} {rss:>7.0f}Mi {quantile(late, 50):>8.3f}s "
              f"{quantile(late, 99):>8.3f}s {max(late):>8.3f}s {max(gaps, default=0):>7.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
