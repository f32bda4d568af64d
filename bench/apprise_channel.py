"""Benchmark: CPU per message of the apprise channel vs. a bare requests POST and vs. Apprise's own
notify(), measured in the same run against the same local fake chat server.

Paths, each sending the same rendered text, one message at a time (as one worker process sends):

- ``channel``: ``AppriseChannel.render`` + ``send``: the shared template, the cut to the service's limit,
  Apprise's plugin with retries and throttle off, the HTTP exchanges recorded at ``HTTPAdapter.send`` and
  judged, the receipt;
- ``apprise notify()``: ``apprise.Apprise()`` with the same URL and ``notify(body=...)``, Apprise's
  usual entry point (its throttle set to 0 like ours; left on, ntfy's plugin sleeps 5.5 s between
  messages, which costs no CPU but makes the run hours long);
- ``bare requests``: ``requests.post`` of the body the plugin sends (ntfy's JSON publish, Apprise's
  JSON envelope), the floor any requests-based client pays.

CPU is this process's (``time.process_time``: user + system, all threads); the fake server runs in its
own process and is not counted. Rounds alternate the paths so a change in the machine's load hits all
of them alike; the table gives the median round. Every message is counted at the fake afterwards.

Run:  .venv/bin/python bench/apprise_channel.py [--messages 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

import requests
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from notifier.channels.apprise import AppriseChannel, AppriseSettings  # noqa: E402
from tests.fakes.chat_api import ChatServer  # noqa: E402
from tests.fakes.social import context, incident, notice  # noqa: E402


def serve(pipe: Connection) -> None:
    with ChatServer() as server:
        pipe.send(server.url)
        pipe.recv()  # "count?"
        pipe.send(len(server.accepted))
        pipe.recv()  # "stop"


def measure(n: int, one: Callable[[int], None]) -> tuple[float, float]:
    """(CPU ms, wall ms) per call of ``one(i)``, i in range(n)."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i in range(n):
        one(i)
    return (time.process_time() - cpu0) * 1000 / n, (time.perf_counter() - wall0) * 1000 / n


def paths(service: str, base: str, n: int) -> dict[str, Callable[[int], None]]:
    import apprise

    host = base.split("://", 1)[1]
    url = f"ntfy://{host}/alerts" if service == "ntfy" else f"json://{host}/hook"
    channel = AppriseChannel("chat", AppriseSettings(type="apprise", url=SecretStr(url)), context(timeout=10))
    inc = incident([f"Mail is delayed, update {i}." for i in range(1, 5)])
    notices = [notice(inc, 1 + i % 4, "chat") for i in range(n)]
    texts = [channel.render(x).text for x in notices]

    def through_channel(i: int) -> None:
        channel.send(notices[i], channel.render(notices[i]))

    plain = apprise.Apprise()
    plain.add(url)
    for plugin in plain:
        plugin.request_rate_per_sec = 0

    def through_notify(i: int) -> None:
        if not plain.notify(body=texts[i]):
            raise RuntimeError("apprise notify() failed")

    session_less = f"{base}/" if service == "ntfy" else f"{base}/hook"

    def bare(i: int) -> None:
        if service == "ntfy":
            body = {"topic": "alerts", "message": texts[i]}
        else:
            body = {"version": "1.0", "title": "", "message": texts[i], "attachments": [], "type": "info"}
        response = requests.post(session_less, data=json.dumps(body).encode(), timeout=10,
                                 headers={"Content-Type": "application/json", "User-Agent": "Apprise"})
        response.raise_for_status()

    return {"channel": through_channel, "apprise notify()": through_notify, "bare requests": bare}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ours, theirs = multiprocessing.Pipe()
    server = multiprocessing.Process(target=serve, args=(theirs,), daemon=True)
    server.start()
    base = ours.recv()
    sent = 0
    rows = []
    for service in ("ntfy", "json"):
        runners = paths(service, base, args.messages)
        for run in runners.values():  # warm-up: imports, plugin loading, connection set-up
            for i in range(5):
                run(i)
                sent += 1
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in runners}
        for _ in range(args.rounds):
            for name, run in runners.items():
                results[name].append(measure(args.messages, run))
                sent += args.messages
        for name, found in results.items():
            cpu = statistics.median(c for c, _ in found)
            wall = statistics.median(w for _, w in found)
            rows.append((service, name, cpu, wall))
    ours.send("count?")
    counted = ours.recv()
    ours.send("stop")
    server.join(10)

    print(f"{args.messages} messages x {args.rounds} rounds per path, median round; fake counted "
          f"{counted} of {sent} sent")
    print("| service | path | CPU ms/message | wall ms/message | CPU vs bare |")
    print("| --- | --- | ---: | ---: | ---: |")
    for service, name, cpu, wall in rows:
        floor = next(c for s, p, c, _ in rows if s == service and p == "bare requests")
        print(f"| {service} | {name} | {cpu:.2f} | {wall:.2f} | {cpu / floor:.2f}x |")
    return 0 if counted == sent else 1


if __name__ == "__main__":
    sys.exit(main())
