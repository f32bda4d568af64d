"""Summarise a py-spy raw profile of a notifier worker: shares of its samples by where they go.

    py-spy record --pid <worker> --rate 200 --gil -f raw -o worker.raw --nonblocking -d 25   # --idle off
    .venv/bin/python bench/pyspy_summary.py worker.raw [--top 8]

Each stack is charged to one bucket (first rule that matches, checked in order; see ``RULES``): the
thread it runs on first (the Celery consumer's main thread, a pool thread running a task, the HTTP
deadline watchdog, the heartbeat), then, inside a delivery task, the part of ``deliver`` it is in.
The shares are of samples of the thread holding the GIL (``--gil``): without it, py-spy also counted
threads blocked in recv/epoll/a lock as busy.
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from pathlib import Path

# (bucket, every needle must occur in the stack, none of these may occur); first match wins
RULES: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    ("task: ledger Redis (claim/mark_sending/mark_posted/release, get)", ("deliver_notice", "store/ledger.py"), ()),
    ("task: incident read (get_incident)", ("deliver_notice", "get_incident"), ()),
    ("task: predecessor look-up (ordered channels)", ("deliver_notice", "predecessor"), ()),
    ("task: notice_for (build the notice)", ("deliver_notice", "notice_for"), ()),
    ("task: render (Jinja templates)", ("deliver_notice", "jinja2/"), ()),
    ("task: render (twitter-text weighted length)", ("deliver_notice", "twitter_text"), ()),
    ("task: render (other)", ("deliver_notice", ".render ("), ()),
    ("task: X budget / one-write gate (Redis)", ("deliver_notice", "x_budget.py"), ()),
    ("task: tweepy (client, OAuth, parsing)", ("deliver_notice", "tweepy/"), ("requests/", "urllib3/")),
    ("task: HTTP deadline arm/finish", ("deliver_notice", "channels/deadline.py"), ("urllib3/", "http/client")),
    ("task: requests/urllib3/http.client", ("deliver_notice", "requests/"), ()),
    ("task: requests/urllib3/http.client", ("deliver_notice", "urllib3/"), ()),
    ("task: json", ("deliver_notice", "json/"), ()),
    ("task: re-enqueue (countdown publish)", ("deliver_notice", "dispatch.py"), ()),
    ("task: logging", ("deliver_notice", "logging/"), ()),
    ("task: other in deliver_notice", ("deliver_notice",), ()),
    ("pool thread: Celery trace / pool hand-off", ("concurrent/futures/thread.py",), ()),
    ("consumer: ack (kombu QoS.ack: MULTI ZREM+HDEL)", ("celery/worker/", "Message.ack ("), ()),
    ("consumer: unacked bookkeeping (kombu QoS.append: MULTI ZADD+HSET)", ("celery/worker/", "QoS.append ("), ()),
    ("consumer: receive + decode (json)", ("celery/worker/", "json"), ()),
    ("consumer: task strategy / Request", ("celery/worker/strategy.py",), ()),
    ("consumer: task strategy / Request", ("celery/worker/request.py",), ()),
    ("consumer: kombu Redis transport (BRPOP, parse)", ("kombu/transport/redis.py",), ()),
    ("consumer: event loop / other", ("celery/worker/",), ()),
    ("consumer: event loop / other", ("kombu/",), ()),
    ("HTTP deadline watchdog thread", ("channels/deadline.py",), ()),
    ("heartbeat thread", ("workers/runtime.py",), ()),
    ("logging (outside tasks)", ("logging/",), ()),
]


def bucket(stack: str) -> str:
    for name, needles, exclude in RULES:
        if all(n in stack for n in needles) and not any(x in stack for x in exclude):
            return name
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("raw", type=Path)
    parser.add_argument("--top", type=int, default=0, help="also list the N hottest leaf frames per bucket")
    args = parser.parse_args()
    totals: Counter[str] = Counter()
    leaves: dict[str, Counter[str]] = defaultdict(Counter)
    for line in args.raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        b = bucket(stack)
        totals[b] += int(count)
        leaves[b][stack.split(";")[-1]] += int(count)
    n = sum(totals.values())
    print(f"{n} samples")
    print(f"{'where':68} | samples | share")
    print("-" * 68 + "-|---------|------")
    for name, count in totals.most_common():
        print(f"{name:68} | {count:7d} | {count / n * 100:5.1f} %")
        for leaf, c in leaves[name].most_common(args.top):
            print(f"    {leaf[:90]:90} {c:6d}")


if __name__ == "__main__":
    main()
