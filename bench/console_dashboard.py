"""How long the console's dashboard takes with many open incidents and a long delivery history.

Compares, in the same run, the console's read (ledger rows fetched by notice id in one pipeline)
with the baseline of filtering the ledger's index per update (``ledger.rows(update_id=...)``),
and times the full page over HTTP (uvicorn + httpx, signed in).

    PYTHONPATH=. python bench/console_dashboard.py [--open 100] [--history 3000] [--rounds 30]
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from notifier.console import queries
from notifier.services import incidents
from notifier.store.local_redis import LocalRedis
from tests.console_support import TOKENS, Served, make_app, make_settings, web_app


def timed(fn, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def row(name: str, samples: list[float]) -> str:
    samples = sorted(samples)
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return f"| {name:<44} | {statistics.median(samples):8.1f} | {p99:8.1f} |"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--open", type=int, default=100)
    parser.add_argument("--history", type=int, default=3000, help="closed incidents with delivered notices")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    redis_server = LocalRedis(tmp / "redis", appendfsync="everysec").start()
    url = redis_server.url
    try:
        hooks = "  chat:\n    type: webhook\n    url: http://127.0.0.1:9/\n  ops:\n    type: outbox\n" \
                f"    path: {tmp}/ops.jsonl\n"
        app = make_app(make_settings(tmp / "outbox.jsonl", hooks), url)
        for i in range(args.history):
            inc = incidents.open_incident(app, name=f"old {i}", components={"imap": "major_outage"},
                                          impact="minor", body={"en": "x"}, author="bench")
            incidents.resolve_incident(app, inc.id, body={"en": "fixed"}, author="bench")
        for i in range(args.open):
            incidents.open_incident(app, name=f"open {i}", components={"smtp": "partial_outage"},
                                    impact="major", body={"en": "y"}, author="bench")

        def baseline() -> None:
            for inc in app.store.list_incidents(limit=200):
                if inc.is_open:
                    app.store.ledger.rows(update_id=inc.updates[-1].id)

        notices = len(app.store.ledger.rows())
        print(f"{args.open} open incidents, {args.history} closed ones, {notices} ledger rows, 3 channels")
        print("| read | median ms | p99 ms |\n| --- | ---: | ---: |")
        print(row("baseline: ledger.rows(update_id) per incident", timed(baseline, args.rounds)))
        print(row("console: queries.dashboard (pipelined by id)", timed(lambda: queries.dashboard(app),
                                                                         args.rounds)))
        with Served(web_app(app)) as server:
            client = httpx.Client(base_url=server.url)
            page = client.get("/console/login")
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
            client.post("/console/login", data={"csrf": csrf, "token": TOKENS["CONSOLE_VIEWER"]})
            assert client.get("/console/").status_code == 200
            print(row("GET /console/ over HTTP (whole page)", timed(lambda: client.get("/console/"),
                                                                    args.rounds)))
    finally:
        redis_server.stop()


if __name__ == "__main__":
    main()
