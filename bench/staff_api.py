"""Staff API benchmark: one ``POST /api/v1/broadcasts`` at a time (a publisher's token, three channels),
latency and server CPU per request, against a bare endpoint on the same stack in the same run.

    .venv/bin/python bench/staff_api.py [--requests 300] [--rounds 2]

Shipped path: the API is built as ``notifier api`` builds it (``create_app(settings=...)``: the real
Celery dispatcher, so each broadcast also publishes its three delivery tasks), one uvicorn worker in its
own process, Redis with AOF ``appendfsync always`` (the default config's policy). No worker runs: the
tasks stay queued, which the API does not notice. The three channels are webhooks (the accept path does
not depend on the channel type: it writes one ledger row and one task per channel).

The bare endpoint (labelled as such, it is not the service): a FastAPI route on the same app that reads
the JSON body and makes one fsynced Redis write (SET) in the thread pool, as a route handler does, and
answers 201. Both are measured closed-loop from one keep-alive connection, alternated ``--rounds`` times.
Server CPU is the API process's utime + stime from /proc over the requests, divided by their number.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.webhooks import TOKEN, Conn, cpu_seconds, free_port, wait_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def serve(config: str, port: int) -> None:
    import uvicorn

    from notifier.api import create_app
    from notifier.config_loader import load_settings

    settings = load_settings(config)
    api = create_app(settings=settings)  # as `notifier api` builds it: the real Celery dispatcher
    redis = api.state.notifier.store.redis
    key = settings.redis.key_prefix + "bare"

    async def bare(request: Request) -> Any:
        doc = json.loads(await request.body())
        await run_in_threadpool(redis.set, key, json.dumps(doc))
        return JSONResponse({"ok": True}, status_code=201)

    api.add_api_route("/api/v1/bare", bare, methods=["POST"], include_in_schema=False)
    uvicorn.run(api, host="127.0.0.1", port=port, log_level="warning", server_header=False)


async def closed_loop(port: int, path: str, n: int, offset: int) -> list[float]:
    conn = Conn(port)
    out = []
    for i in range(n):
        body = json.dumps({"name": "Notice", "body": f"Urgent notice {offset + i}: mail is down."}).encode()
        t0 = time.perf_counter()
        code = await conn.post(path, body)
        out.append(time.perf_counter() - t0)
        if code != 201:
            raise SystemExit(f"{path} answered {code}")
    return out


def pct(xs: list[float], q: int) -> float:
    return statistics.quantiles(xs, n=100, method="inclusive")[q - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--serve", nargs=2, metavar=("CONFIG", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return 0

    import redis

    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    tmp = Path(tempfile.mkdtemp(prefix="bench-staff-"))
    rport, aport = free_port(), free_port()
    rproc = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", str(rport), "--bind", "127.0.0.1",
         "--dir", str(tmp), "--save", "", "--appendonly", "yes", "--appendfsync", "always"],
        stdout=subprocess.DEVNULL)
    config = tmp / "notifier.yaml"
    hooks = "".join(f"  hook{i}: {{type: webhook, url: 'http://127.0.0.1:9/h{i}'}}\n" for i in (1, 2, 3))
    config.write_text(f'redis: {{url: "redis://127.0.0.1:{rport}/0", key_prefix: "b:"}}\n'
                      f"channels:\n{hooks}"
                      'staff:\n  tokens:\n    - {name: alice, token: "${BENCH_TOKEN}", role: publisher}\n')
    env = {**os.environ, "BENCH_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}
    sproc = subprocess.Popen([sys.executable, __file__, "--serve", str(config), str(aport)], env=env, cwd=ROOT)
    rows: list[tuple[str, int, list[float], float]] = []
    try:
        wait_port(aport, sproc)
        client = redis.Redis(port=rport)
        offset = 0
        for path in ("/api/v1/bare", "/api/v1/broadcasts"):  # warm-up, not reported
            asyncio.run(closed_loop(aport, path, 30, offset))
            offset += 30
        for r in range(1, args.rounds + 1):
            for label, path in (("bare: JSON + one fsynced SET", "/api/v1/bare"),
                                ("POST /api/v1/broadcasts (3 channels)", "/api/v1/broadcasts")):
                cpu0 = cpu_seconds(sproc.pid)
                lat = asyncio.run(closed_loop(aport, path, args.requests, offset))
                offset += args.requests
                rows.append((label, r, lat, (cpu_seconds(sproc.pid) - cpu0) * 1000 / args.requests))
        queued = sum(int(client.llen(f"notify.hook{i}")) for i in (1, 2, 3))
    finally:
        sproc.terminate()
        sproc.wait(10)
        rproc.terminate()
        rproc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"shipped path: real Celery dispatcher, appendfsync always, one uvicorn worker; "
          f"load average before the run: {load_before}; delivery tasks queued: {queued}")
    print("endpoint | round | requests | p50 ms | p99 ms | max ms | server CPU ms/req")
    print("--- | ---: | ---: | ---: | ---: | ---: | ---:")
    for label, r, lat, cpu in rows:
        print(f"{label} | {r} | {len(lat)} | {pct(lat, 50) * 1000:.2f} | {pct(lat, 99) * 1000:.2f} | "
              f"{max(lat) * 1000:.1f} | {cpu:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
