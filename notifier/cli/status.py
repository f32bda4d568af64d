"""`notifier status`: is this installation healthy? Redis (master, replicas, lag), the Sentinels, the
workers on each queue, and which beat holds the scheduling lock.

Exit 0 when healthy; 3 when degraded (fewer replicas than redis.min_replicas, a Sentinel not
answering, a queue no worker consumes, no beat holding the lock); 69 when Redis does not answer.
"""

from __future__ import annotations

import argparse
from typing import Any

from notifier.cli.common import add_command, settings_for
from notifier.cli.format import table
from notifier.errors import StoreUnavailable


def cmd_status(args: argparse.Namespace) -> int:
    from notifier.store.redis_store import connect, redis_url_of, replication_status, sentinel_status
    from workers.setup import all_queues, make_celery

    settings = settings_for(args)
    problems: list[str] = []
    if settings.redis.sentinels:
        sentinels = sentinel_status(settings)
        print(table(["sentinel", "master", "replicas", "sentinels", "quorum", "state"],
                    [[s["address"], s.get("master", "-"), s.get("replicas", "-"), s.get("sentinels", "-"),
                      s.get("quorum", "-"), s.get("error") or s.get("flags", "")] for s in sentinels]))
        print()
        problems += [f"Sentinel {s['address']} does not answer ({s['error']})" for s in sentinels if "error" in s]
    try:
        client = connect(settings)
        repl = replication_status(client)
    except StoreUnavailable as exc:
        print(f"error: {exc}")
        return 69
    except Exception as exc:  # redis.RedisError after connecting
        print(f"error: Redis at {redis_url_of(settings)} failed ({exc.__class__.__name__}); check it, then run "
              "`notifier status` again")
        return 69
    rows = [[repl["role"], repl["address"], "up", repl["offset"], "-", "-"]]
    rows += [["replica", r["address"], r["state"], r["offset"], f"{r['behind']} B", f"{r['lag']} s"]
             for r in repl["replicas"]]
    print(table(["redis", "address", "state", "offset", "behind", "last ack"], rows))
    online = sum(1 for r in repl["replicas"] if r["state"] == "online")
    if online < settings.redis.min_replicas:
        problems.append(f"{online} replica(s) online, redis.min_replicas is {settings.redis.min_replicas}: "
                        "webhooks and staff writes get 503 until one is back")
    print()
    consumers = _consumers(make_celery(settings), args.timeout)
    queue_rows = []
    for queue in all_queues(settings):
        workers = consumers.get(queue, [])
        queue_rows.append([queue, client.llen(queue), len(workers), ", ".join(sorted(workers)) or "-"])
        if not workers:
            problems.append(f"no worker consumes {queue}; start one (`notifier worker`)")
    print(table(["queue", "waiting", "workers", "nodes"], queue_rows))
    print()
    key = settings.redis.key_prefix + "beat:leader"
    holder, ttl = client.get(key), int(client.pttl(key))  # type: ignore[arg-type]
    if holder:
        print(f"beat lock: held by {holder} (renews within {max(ttl, 0) / 1000:.0f} s)")
    else:
        print("beat lock: nobody holds it")
        problems.append("no beat holds the scheduling lock: nothing sweeps the ledger; start `notifier beat`")
    for p in problems:
        print(f"warning: {p}")
    return 3 if problems else 0


def _consumers(celery: Any, timeout: float) -> dict[str, list[str]]:
    """queue -> the worker nodes consuming it, as the workers answer Celery's remote control."""
    try:
        replies = celery.control.inspect(timeout=timeout).active_queues() or {}
    except Exception:  # no answer is an answer: no worker listed
        return {}
    out: dict[str, list[str]] = {}
    for node, queues in replies.items():
        for q in queues or []:
            out.setdefault(q["name"], []).append(node)
    return out


def register(subparsers: Any) -> None:
    cmd = add_command(subparsers, "status", cmd_status,
                      "health: Redis master, replicas and lag, Sentinels, workers per queue, beat lock holder")
    cmd.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for the workers to answer")
