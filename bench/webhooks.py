"""Webhook ingest benchmark: accepted webhooks/s, p50/p99 latency and server CPU per request for every
webhook kind (Alertmanager, Grafana, Uptime Kuma, generic: the real payloads under tests/data/) and for
the staff API's broadcast call (bearer token + Idempotency-Key, as a script or the console sends it),
at a fixed 500 requests/s (open loop, latency measured from the scheduled send time, so a stall is not
hidden) and at saturation (closed loop, N connections), compared in the same run with a bare endpoint on
the same stack (uvicorn + FastAPI, the same Redis client and thread hand-off) that only XADDs the body.

    .venv/bin/python bench/webhooks.py [--rate 500] [--seconds 8] [--concurrency 32]
                                       [--kinds alertmanager,grafana,uptime-kuma,generic,staff] [--mixed N]

``--mixed N`` adds the generic webhook at ``--rate`` alone and then again while N connections send staff
broadcasts (with Idempotency-Key) back to back: whether a staff write holds up webhooks (the latencies
of the two generic rows; CPU is not split between the two there).

The last table gives each endpoint's server CPU per request as a ratio to the bare endpoint's in the
same run (issue 14's target: at most 2x). The bare endpoint is measured first and last; the ratio uses
the mean of the two saturation runs, so drift over the run shows as the spread between them.

The server runs in its own process (one uvicorn worker, as `notifier api` runs), the load generator in
this one, Redis in a third: all three share this machine's cores.

Shipped path: the API is built as ``notifier api`` builds it (``create_app(settings=...)``: the real
Celery dispatcher, so each accepted batch also publishes the engine's wake-up task) and Redis runs
AOF with ``appendfsync always``, the policy of the default config and of ``docker-compose.yml``.
``--fsync everysec`` is a labelled variant, not the shipped service. (Before issue 14 this benchmark
used a dispatcher that publishes nothing and ``everysec``; its old figures were a floor.)
Every webhook body is a real payload with its start time shifted per request, so each request carries
new events and takes the full path (auth, parse, Lua SET NX + XADD, 202); the script checks the number
of events queued per kind. The staff call is ``POST /api/v1/broadcasts`` by a publisher with a fresh
Idempotency-Key per request: RequestGate auth, body limit, the idempotency gate's SET NX / SET, pydantic
validation, the incident transaction and one Celery publish per channel (one outbox channel here),
201. It does much more durable work than an XADD, so its ratio says what the whole write path costs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import Conn, Rig, cpu_seconds, loadavg, peak_rss_mb, py_spy, serve_api  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
PAYLOADS = DATA / "alertmanager"
TOKEN = "bench-token"
Item = tuple[bytes, str]  # a body and its extra header lines


# ---- server side -----------------------------------------------------------------------------------
def bare_route(api: Any, settings: Any) -> None:
    app = api.state.notifier
    stream = settings.redis.key_prefix + "bare"

    async def bare(request: Request) -> Any:
        body = await request.body()
        entry = await run_in_threadpool(app.store.redis.xadd, stream, {"body": body})
        return JSONResponse({"accepted": [entry]}, status_code=202)

    # under /webhooks/ so that it skips the staff body-limit middleware exactly as the real routes do
    api.add_api_route("/webhooks/bare", bare, methods=["POST"], include_in_schema=False)


# ---- load generator --------------------------------------------------------------------------------
def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def _alerts(payload: dict[str, Any], when: datetime) -> None:  # Alertmanager and Grafana
    for alert in payload["alerts"]:
        alert["startsAt"] = _iso(when)


def _kuma(payload: dict[str, Any], when: datetime) -> None:
    payload["heartbeat"]["time"] = when.strftime("%Y-%m-%d %H:%M:%S.000")


def _generic(payload: dict[str, Any], when: datetime) -> None:
    for alert in payload["alerts"]:
        alert["starts_at"] = _iso(when)
        alert.pop("ends_at", None)


# kind -> (path, the payload files, how a request's start time is set, events per request)
KINDS: dict[str, tuple[str, list[str], Any]] = {
    "alertmanager": ("/webhooks/alertmanager", ["alertmanager/*.json"], _alerts),
    "grafana": ("/webhooks/grafana", ["grafana/*.json"], _alerts),
    "uptime-kuma": ("/webhooks/uptime-kuma", ["uptime_kuma/down.json", "uptime_kuma/up.json"], _kuma),
    "generic": ("/webhooks/generic", ["generic/*.json"], _generic),
}
STAFF_TOKEN = "bench-staff-token"


def bodies(n: int, offset: int, kind: str = "alertmanager") -> list[Item]:
    if kind == "bare":
        kind = "alertmanager"  # the bare endpoint XADDs the same bodies
    if kind == "staff":
        return [(json.dumps({"name": f"Bench notice {offset + i}", "body": f"Planned notice number {offset + i}: "
                             "mail delivery may be slow tonight."}).encode(),
                 f"Idempotency-Key: bench-{offset + i}\r\n") for i in range(n)]
    _, globs, shift = KINDS[kind]
    templates = [json.loads(p.read_text()) for g in globs for p in sorted(DATA.glob(g))]
    templates = [t for t in templates if t.get("alerts") or t.get("heartbeat")]
    base = datetime(2026, 1, 1, tzinfo=UTC)
    out = []
    for i in range(n):
        payload = templates[i % len(templates)]
        shift(payload, base + timedelta(seconds=offset + i))
        out.append((json.dumps(payload).encode(), ""))
    return out


async def fixed_rate(port: int, path: str, payloads: list[Item], rate: float, token: str = TOKEN) -> dict[str, Any]:
    pool: asyncio.LifoQueue[Conn] = asyncio.LifoQueue()  # LIFO: few connections stay warm
    for _ in range(64):
        pool.put_nowait(Conn(port))
    latencies: list[float] = []
    codes: dict[int, int] = {}
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.05

    async def one(i: int, item: Item) -> None:
        scheduled = t0 + i / rate
        await asyncio.sleep(max(0.0, scheduled - loop.time()))
        conn = await pool.get()
        try:
            code = await conn.post(path, item[0], token, item[1])
        finally:
            pool.put_nowait(conn)
        latencies.append(loop.time() - scheduled)
        codes[code] = codes.get(code, 0) + 1

    await asyncio.gather(*(one(i, b) for i, b in enumerate(payloads)))
    elapsed = loop.time() - t0
    return summary(latencies, codes, elapsed)


async def saturate(
    port: int, path: str, payloads: list[Item], concurrency: int, seconds: float, token: str = TOKEN
) -> dict[str, Any]:
    latencies: list[float] = []
    codes: dict[int, int] = {}
    loop = asyncio.get_running_loop()
    it = iter(payloads)
    end = loop.time() + seconds
    start = loop.time()

    async def worker() -> None:
        conn = Conn(port)
        while loop.time() < end:
            item = next(it, None)
            if item is None:
                return
            t = loop.time()
            code = await conn.post(path, item[0], token, item[1])
            latencies.append(loop.time() - t)
            codes[code] = codes.get(code, 0) + 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return summary(latencies, codes, loop.time() - start)


def summary(latencies: list[float], codes: dict[int, int], elapsed: float) -> dict[str, Any]:
    lat = sorted(latencies)
    q = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) > 1 else [0.0] * 99
    return {
        "requests": len(lat), "codes": codes,
        "accepted_per_s": sum(n for c, n in codes.items() if 200 <= c < 300) / elapsed,
        "p50_ms": q[49] * 1000, "p99_ms": q[98] * 1000, "max_ms": lat[-1] * 1000 if lat else 0.0,
    }


# ---- orchestration ---------------------------------------------------------------------------------
def storm_bodies(alerts: int, per_payload: int) -> list[Item]:
    """An alert storm as Alertmanager sends it: groups of ``per_payload`` new alerts per POST."""
    template = json.loads((PAYLOADS / "firing-storage-warning.json").read_text())
    alert = template["alerts"][0]
    out = []
    for start in range(0, alerts, per_payload):
        payload = dict(template, groupKey=f'{{}}:{{alertname="StorageLatency", shard="{start // per_payload}"}}')
        payload["alerts"] = [
            {**alert, "labels": {**alert["labels"], "volume": f"vol{i}"}, "fingerprint": f"{i:016x}"}
            for i in range(start, min(alerts, start + per_payload))
        ]
        out.append((json.dumps(payload).encode(), ""))
    return out


def measured(pid: int, run: Any) -> dict[str, Any]:
    before = cpu_seconds(pid)
    result: dict[str, Any] = asyncio.run(run)
    result["cpu_ms"] = (cpu_seconds(pid) - before) * 1000 / max(1, result["requests"])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--staff-rate", type=float, default=100, help="open-loop rate for the staff call")
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--kinds", default=",".join([*KINDS, "staff"]),
                        help="comma-separated: " + ", ".join([*KINDS, "staff"]))
    parser.add_argument("--storm", type=int, default=10_000, help="alerts in the storm run (0: skip)")
    parser.add_argument("--fsync", default="always", choices=["always", "everysec"],
                        help="Redis appendfsync; always is the shipped default")
    parser.add_argument("--mixed", type=int, default=0, metavar="N",
                        help="also: generic webhooks at --rate alone, then again while N connections send staff "
                        "broadcasts with Idempotency-Key back to back (does a staff write stall webhooks?)")
    parser.add_argument("--profile", metavar="FILE", help="py-spy record the API process during the "
                        "saturation runs, one file per kind (FILE-kind.svg: a flame graph; other names: "
                        "collapsed stacks); needs py-spy")
    parser.add_argument("--serve", nargs=2, metavar=("CONFIG", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_api(args.serve[0], int(args.serve[1]), bare_route)
        return 0
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = set(kinds) - {*KINDS, "staff"}
    if unknown:
        parser.error(f"unknown kinds: {sorted(unknown)}")

    import redis

    load_before = loadavg()
    rows = []
    storm_line = ""
    checks = []
    sat_cpu: dict[str, list[float]] = {}
    with Rig("bench-webhooks-") as rig:
        tmp = rig.tmp
        rport = rig.redis(args.fsync)
        config = tmp / "notifier.yaml"
        sources = "".join(f'  {k}: {{auth: bearer, token: "${{BENCH_TOKEN}}"}}\n' for k in KINDS)
        config.write_text(f'redis: {{url: "redis://127.0.0.1:{rport}/0", key_prefix: "b:"}}\n'
                          f"sources:\n{sources}"
                          f"channels:\n  outbox: {{type: outbox, path: {tmp / 'outbox.jsonl'}}}\n"
                          'staff:\n  tokens:\n    - {name: bench, role: publisher, token: "${BENCH_STAFF_TOKEN}"}\n'
                          '    - {name: other, role: viewer, token: "${BENCH_OTHER_TOKEN}"}\n')
        sproc, aport = rig.api(__file__, config, {"BENCH_TOKEN": TOKEN, "BENCH_STAFF_TOKEN": STAFF_TOKEN,
                                                  "BENCH_OTHER_TOKEN": "bench-viewer-token"})
        client = redis.Redis(port=rport)
        offset = 0
        plan = [("bare", "/webhooks/bare"), *((k, KINDS[k][0] if k in KINDS else "/api/v1/broadcasts")
                                              for k in kinds), ("bare", "/webhooks/bare")]
        for kind, path in plan:
            staff = kind == "staff"
            token = STAFF_TOKEN if staff else TOKEN
            rate = args.staff_rate if staff else args.rate
            label = "bare XADD (floor)" if kind == "bare" else ("staff broadcast" if staff else f"{kind} webhook")
            warm = bodies(100 if staff else 300, 10**8 + offset, kind)
            offset += len(warm)
            asyncio.run(saturate(aport, path, warm, 8, 1.0, token))  # warm-up, not reported
            events_before = int(client.xlen("b:events"))  # type: ignore[arg-type]
            fixed = bodies(int(rate * args.seconds), offset, kind)
            offset += len(fixed)
            first = measured(sproc.pid, fixed_rate(aport, path, fixed, rate, token))
            rows.append((label, f"{rate:g}/s", first))
            sat = bodies(int(4000 * args.seconds) if not staff else int(1000 * args.seconds), offset, kind)
            offset += len(sat)
            spy = None
            if args.profile and kind != "bare":
                stem, dot, ext = args.profile.rpartition(".")
                out = f"{stem}-{kind}.{ext}" if dot else f"{args.profile}-{kind}"
                spy = py_spy(sproc.pid, out)
            result = measured(sproc.pid, saturate(aport, path, sat, args.concurrency, args.seconds, token))
            if spy is not None:
                spy.send_signal(2)
                spy.wait(30)
            rows.append((label, f"saturation c={args.concurrency}", result))
            sat_cpu.setdefault(label, []).append(result["cpu_ms"])
            if kind in KINDS:
                ok = first["codes"].get(202, 0) + result["codes"].get(202, 0)
                queued = int(client.xlen("b:events")) - events_before  # type: ignore[arg-type]
                checks.append(f"{label}: {ok} requests answered 202, {queued} new events in the stream")
                if queued < ok:
                    raise SystemExit(f"{label}: fewer events queued ({queued}) than requests accepted ({ok})")
            elif staff:
                created = first["codes"].get(201, 0) + result["codes"].get(201, 0)
                checks.append(f"{label}: {created} broadcasts answered 201")
        if args.mixed:
            n = int(args.rate * args.seconds)
            alone = bodies(n, offset, "generic")
            offset += n
            rows.append(("generic webhook alone", f"{args.rate:g}/s", measured(
                sproc.pid, fixed_rate(aport, KINDS["generic"][0], alone, args.rate))))
            hooks, staff_calls = bodies(n, offset, "generic"), bodies(int(1000 * args.seconds), offset, "staff")
            offset += n

            async def together() -> tuple[dict[str, Any], dict[str, Any]]:
                hook = asyncio.create_task(fixed_rate(aport, KINDS["generic"][0], hooks, args.rate))
                staff = asyncio.create_task(saturate(aport, "/api/v1/broadcasts", staff_calls, args.mixed,
                                                     args.seconds, STAFF_TOKEN))
                return await hook, await staff

            hook_result, staff_result = asyncio.run(together())
            for result in (hook_result, staff_result):
                result["cpu_ms"] = float("nan")  # shared between the two: not per request
            rows.append(("generic webhook, mixed", f"{args.rate:g}/s", hook_result))
            rows.append(("staff broadcast, mixed", f"c={args.mixed} beside", staff_result))
            checks.append(f"mixed: {hook_result['codes']} webhooks, {staff_result['codes']} staff broadcasts")
        if args.storm:
            client.flushdb()
            storm = storm_bodies(args.storm, 10)
            rate = len(storm) / 10.0  # the whole storm within 10 s
            result = measured(sproc.pid, fixed_rate(aport, "/webhooks/alertmanager", storm, rate))
            rows.append(("alertmanager storm", f"{args.storm} alerts/10 s", result))
            storm_line = (f"storm: {client.xlen('b:events')} of {args.storm} alerts queued as events; "
                          f"API process peak RSS (VmHWM) over the whole run: {peak_rss_mb(sproc.pid):.0f} MiB")
    load_after = loadavg()

    print(f"\nshipped path: real Celery dispatcher, appendfsync {args.fsync}; "
          f"load average before the run: {load_before}, after: {load_after}")
    for line in checks:
        print(line)
    if storm_line:
        print(storm_line)
    print(f"{'endpoint':<22} {'load':<18} {'requests':>8} {'2xx/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'max ms':>8} {'server CPU ms/req':>18}  codes")
    for label, load, r in rows:
        print(f"{label:<22} {load:<18} {r['requests']:>8} {r['accepted_per_s']:>8.0f} {r['p50_ms']:>8.2f} "
              f"{r['p99_ms']:>8.2f} {r['max_ms']:>8.1f} {r['cpu_ms']:>18.3f}  {r['codes']}")
    floor_runs = sat_cpu.pop("bare XADD (floor)")
    floor = statistics.mean(floor_runs)
    print(f"\nserver CPU per request at saturation, against the bare XADD endpoint in the same run "
          f"({floor:.3f} ms: mean of {', '.join(f'{x:.3f}' for x in floor_runs)}); target <= 2x")
    print(f"{'endpoint':<22} {'CPU ms/req':>10} {'ratio':>7}  verdict")
    for label, (cpu,) in sat_cpu.items():
        ratio = cpu / floor
        print(f"{label:<22} {cpu:>10.3f} {ratio:>6.2f}x  {'met' if ratio <= 2 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
