"""Staff API benchmark: one ``POST /api/v1/broadcasts`` at a time (a publisher's token, three channels),
latency and server CPU per request, against bare endpoints on the same stack in the same run.

    .venv/bin/python bench/staff_api.py [--requests 300] [--rounds 2] [--profile FILE]
    .venv/bin/python bench/staff_api.py --summary FILE-1.raw [...]

Shipped path: the API is built as ``notifier api`` builds it (``create_app(settings=...)``: the real
Celery dispatcher, so each broadcast also queues its delivery task: one message, written by the
broadcast's own transaction, ``CeleryDispatcher.outbox``), one uvicorn worker in its
own process, Redis with AOF ``appendfsync always`` (the default config's policy). No worker runs: the
tasks stay queued, which the API does not notice. The three channels are webhooks (the accept path does
not depend on the channel type: it writes one ledger row and one task per channel). The broadcast is
measured twice per round: without and with an ``Idempotency-Key`` (a fresh one per request, as a script
or the console sends it).

Bare endpoints and a variant, labelled as such (none of them is the service):

- **bare, same stack** (the baseline of issue 14's "at most 2x"): a route of the same app under
  ``/api/v1/``, so every middleware runs as for the real call; the same staff dependency (the publisher's
  token checked, its role required), the same pydantic body model (``BroadcastIn``), a plain ``def``
  run in the thread pool like the real route, and one fsynced Redis write (SET), answering 201 JSON.
- **broadcast without the Celery task**: the same service call (``incidents.broadcast``: the id,
  the transaction with its three ledger rows) on the same store, with a dispatcher that hands nothing
  to the workers, so that the task's share of the broadcast shows (since the task is written in the
  transaction, only building the message and one LPUSH in the MULTI); not the service (its notices
  would wait for the sweeper).
- **floor: JSON + one fsynced SET**: the endpoint of the first version of this benchmark (an ``async``
  route that parses the JSON itself, no staff dependency, no model; the middlewares still run), kept
  so that figures stay comparable with earlier runs.

All are measured closed-loop from one keep-alive connection, alternated ``--rounds`` times. Server CPU
is the API process's utime + stime from /proc over the requests, divided by their number.
``--profile FILE``: py-spy records the API process during the broadcasts of every round, one file per
round and kind (FILE-1.svg, FILE-1-keyed.svg, ...: flame graphs; another suffix: collapsed stacks, which
``--summary FILE-1.raw ...`` sorts into the buckets of ``BUCKETS``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import Conn, Rig, cpu_seconds, loadavg, py_spy, serve_api  # noqa: E402
from notifier.api.staff import BroadcastIn, publisher  # noqa: E402  (module level: FastAPI reads the hints)
from notifier.ports import NullDispatcher  # noqa: E402
from notifier.staff import StaffMember  # noqa: E402
from workers.setup import FANOUT_QUEUE  # noqa: E402

TOKEN = "bench-token"
BROADCASTS = "/api/v1/broadcasts"
FAIR = "bare, same stack: staff auth + model + one fsynced SET"
FLOOR = "floor: JSON + one fsynced SET (no auth dependency)"
UNPUBLISHED = "broadcast without the Celery task (not the service)"


GATE_POOL = "thread pool: idempotency gate's Redis (reserve SET NX, settle SET)"
# py-spy stacks of the API process -> where a broadcast's CPU goes (first rule whose needles all occur)
BUCKETS: list[tuple[str, tuple[str, ...]]] = [
    ("route thread: Celery publish after the commit (send_task; only with a broker elsewhere)", ("_enqueue (",)),
    ("route thread: the task's message, built for the commit (CeleryDispatcher.outbox)", ("outbox (",)),
    ("route thread: incident transaction (MULTI: incident, 3 ledger rows, indexes)", ("commit_update (",)),
    ("route thread: sequence INCR (next_id)", ("next_id (",)),
    ("route thread: idempotency op look-up (GET op)", ("op_incident (",)),
    ("route thread: idempotency reservation + op look-up (one script)", ("_claim_here (",)),
    ("route thread: other service code (checks, Incident and update objects)", ("open_incident (",)),
    ("route thread: response dict (Incident.to_dict)", ("_incident (",)),
    (GATE_POOL, ("WorkerThread.run", "IdempotencyGate._reserve")),
    (GATE_POOL, ("WorkerThread.run", "IdempotencyGate._settle")),
    ("thread pool: rest (FastAPI's sync endpoint wrapper, hand-off)", ("WorkerThread.run",)),
    ("event loop: idempotency gate's Redis (reserve SET NX, settle SET)", ("IdempotencyGate", "redis/")),
    ("event loop: staff token checks (authenticate)", ("authenticate (",)),
    ("event loop: sending the answer the idempotency gate held (without a key: FastAPI)", ("IdempotencyGate._answer",)),
    ("event loop: FastAPI (routing, dependencies, body model, response serialisation)", ("fastapi/routing.py",)),
    ("event loop: middleware (RequestGate, BodyLimit, IdempotencyGate, Starlette's)", ("limits.py",)),
    ("event loop: uvicorn HTTP, asyncio, thread hand-off", ("",)),
]


def summarise(files: list[str]) -> None:
    """Shares of the samples of py-spy raw files (``--profile x.raw``) by ``BUCKETS``."""
    total, counts = 0, dict.fromkeys(dict(BUCKETS), 0)
    for name in files:
        for line in Path(name).read_text().splitlines():
            stack, _, n = line.rpartition(" ")
            total += int(n)
            counts[next(b for b, needles in BUCKETS if all(x in stack for x in needles))] += int(n)
    print(f"{total} samples with the GIL held ({', '.join(files)})")
    print("where | share\n--- | ---:")
    for bucket, samples in counts.items():
        print(f"{bucket} | {100 * samples / max(1, total):.1f} %")


def bare_routes(api: Any, settings: Any) -> None:
    from notifier.api.staff import _incident
    from notifier.services import incidents

    redis = api.state.notifier.store.redis
    quiet = dataclasses.replace(api.state.notifier, dispatcher=NullDispatcher())  # hands nothing to the workers
    key = settings.redis.key_prefix + "bare"

    async def floor(request: Request) -> Any:
        doc = json.loads(await request.body())
        await run_in_threadpool(redis.set, key, json.dumps(doc))
        return JSONResponse({"ok": True}, status_code=201)

    def same_stack(data: BroadcastIn, member: StaffMember = publisher) -> dict[str, Any]:
        redis.set(key, data.model_dump_json())
        return {"ok": True, "author": member.name}

    def unpublished(data: BroadcastIn, member: StaffMember = publisher) -> dict[str, Any]:
        inc = incidents.broadcast(quiet, name=data.name, body=data.body, author=member.name, channels=data.channels)
        return _incident(inc)

    api.add_api_route("/api/v1/broadcasts-unpublished", unpublished, methods=["POST"], status_code=201,
                      include_in_schema=False)
    api.add_api_route("/api/v1/bare", floor, methods=["POST"], include_in_schema=False)
    api.add_api_route("/api/v1/bare-staff", same_stack, methods=["POST"], status_code=201, include_in_schema=False)


async def closed_loop(port: int, path: str, n: int, offset: int, keyed: bool = False) -> list[float]:
    conn = Conn(port)
    out = []
    for i in range(n):
        body = json.dumps({"name": "Notice", "body": f"Urgent notice {offset + i}: mail is down."}).encode()
        extra = f"Idempotency-Key: {uuid.uuid4()}\r\n" if keyed else ""
        t0 = time.perf_counter()
        code = await conn.post(path, body, TOKEN, extra)
        out.append(time.perf_counter() - t0)
        if code != 201:
            raise SystemExit(f"{path} answered {code}")
    return out


def pct(xs: list[float], q: int) -> float:
    return statistics.quantiles(xs, n=100, method="inclusive")[q - 1]


def queued_notices(client: Any) -> int:
    """Notices waiting for the workers: one update task on the fan-out queue carries all of an update's
    (``workers/dispatch.py``), a one-notice task on a channel's queue one."""
    total = sum(int(client.llen(f"notify.hook{i}")) for i in (1, 2, 3))
    for raw in client.lrange(FANOUT_QUEUE, 0, -1):
        total += len(json.loads(base64.b64decode(json.loads(raw)["body"]))[0][0])
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--profile", metavar="FILE", help="py-spy record the broadcasts (needs py-spy)")
    parser.add_argument("--summary", nargs="+", metavar="RAW", help="only print where the samples of these "
                        "py-spy raw files (from --profile x.raw) go")
    parser.add_argument("--serve", nargs=2, metavar=("CONFIG", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.summary:
        summarise(args.summary)
        return 0
    if args.serve:
        serve_api(args.serve[0], int(args.serve[1]), bare_routes)
        return 0

    import redis

    load_before = loadavg()
    plan = [(FLOOR, "/api/v1/bare", False), (FAIR, "/api/v1/bare-staff", False),
            ("POST /api/v1/broadcasts (3 channels)", BROADCASTS, False),
            ("same, with an Idempotency-Key", BROADCASTS, True),
            (UNPUBLISHED, "/api/v1/broadcasts-unpublished", False)]
    rows: list[tuple[str, int, list[float], float]] = []
    with Rig("bench-staff-") as rig:
        rport = rig.redis("always")
        config = rig.tmp / "notifier.yaml"
        hooks = "".join(f"  hook{i}: {{type: webhook, url: 'http://127.0.0.1:9/h{i}'}}\n" for i in (1, 2, 3))
        config.write_text(f'redis: {{url: "redis://127.0.0.1:{rport}/0", key_prefix: "b:"}}\n'
                          f"channels:\n{hooks}"
                          'staff:\n  tokens:\n    - {name: alice, token: "${BENCH_TOKEN}", role: publisher}\n')
        sproc, aport = rig.api(__file__, config, {"BENCH_TOKEN": TOKEN})
        client = redis.Redis(port=rport)
        offset = 0
        for _, path, keyed in plan:  # warm-up, not reported
            asyncio.run(closed_loop(aport, path, 30, offset, keyed))
            offset += 30
        for r in range(1, args.rounds + 1):
            for label, path, keyed in plan:
                spy = None
                if args.profile and path == BROADCASTS:
                    stem, dot, ext = args.profile.rpartition(".")
                    name = f"{r}-keyed" if keyed else f"{r}"
                    spy = py_spy(sproc.pid, f"{stem}-{name}.{ext}" if dot else f"{args.profile}-{name}")
                    time.sleep(0.5)  # py-spy attaches
                cpu0 = cpu_seconds(sproc.pid)
                lat = asyncio.run(closed_loop(aport, path, args.requests, offset, keyed))
                cpu = (cpu_seconds(sproc.pid) - cpu0) * 1000 / args.requests
                if spy is not None:
                    spy.send_signal(2)
                    spy.wait(30)
                offset += args.requests
                rows.append((label, r, lat, cpu))
        queued = queued_notices(client)

    expected = 3 * (30 + args.rounds * args.requests) * 2  # the two broadcast rows publish; the variant does not
    print(f"shipped path: real Celery dispatcher, appendfsync always, one uvicorn worker; "
          f"load average before the run: {load_before}, after: {loadavg()}; "
          f"notices queued for delivery: {queued} (expected {expected})")
    print("endpoint | round | requests | p50 ms | p99 ms | max ms | server CPU ms/req")
    print("--- | ---: | ---: | ---: | ---: | ---: | ---:")
    for label, r, lat, cpu in rows:
        print(f"{label} | {r} | {len(lat)} | {pct(lat, 50) * 1000:.2f} | {pct(lat, 99) * 1000:.2f} | "
              f"{max(lat) * 1000:.1f} | {cpu:.2f}")
    mean = {label: statistics.mean(c for lb, _, _, c in rows if lb == label) for label, _, _ in plan}
    print(f"\nserver CPU per request, mean of {args.rounds} rounds, as a ratio (issue 14's target: at most 2x "
          "the same-stack bare endpoint)")
    print("endpoint | CPU ms/req | vs same-stack bare | vs floor")
    print("--- | ---: | ---: | ---:")
    for label, cpu in mean.items():
        print(f"{label} | {cpu:.2f} | {cpu / mean[FAIR]:.2f}x | {cpu / mean[FLOOR]:.2f}x")
    if queued != expected:
        raise SystemExit(f"{queued} notices queued, expected {expected}: a broadcast lost its tasks")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
