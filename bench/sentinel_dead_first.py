"""What a dead first Sentinel costs a client that asks the Sentinels (issue 17): redis-py's default retry on
the Sentinel clients (3 retries, exponential backoff with jitter: uniform 0-2, 0-4, 0-8 s) against
``sentinel_retry()`` (none; what the store, ``notifier status`` and kombu's ``sentinel_kwargs`` use), in the
same run against the same Sentinels.

    .venv/bin/python bench/sentinel_dead_first.py [--tries 6]

Starts a master and a replica redis-server and three Sentinels on loopback (tests/fakes/sentinel.py),
SIGKILLs the first Sentinel on the list (refused at once, as a dead host's port is once the kernel
answers), then times a fresh ``Sentinel(...).discover_master`` per try (a new kombu broker connection builds
a fresh one each time), the two policies alternating. Wall time: the default's cost is sleeping, not CPU.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redis.sentinel import Sentinel  # noqa: E402

from notifier.store.redis_store import sentinel_retry  # noqa: E402
from tests.fakes.sentinel import MASTER_NAME, sentinel_cluster  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tries", type=int, default=6)
    args = parser.parse_args()
    policies: dict[str, dict[str, Any]] = {"redis-py default (baseline)": {}, "sentinel_retry() (none)": {
        "retry": sentinel_retry()}}
    took: dict[str, list[float]] = {name: [] for name in policies}
    with tempfile.TemporaryDirectory() as tmp, sentinel_cluster(Path(tmp) / "ha") as cluster:
        addresses = [("127.0.0.1", s.port) for s in cluster.sentinels]
        cluster.sentinels[0].kill()
        for _ in range(args.tries):
            for name, extra in policies.items():
                sentinel = Sentinel(addresses, sentinel_kwargs={"socket_timeout": 2, "socket_connect_timeout": 2,
                                                                **extra})
                started = time.monotonic()
                sentinel.discover_master(MASTER_NAME)
                took[name].append(time.monotonic() - started)
    print(f"fresh Sentinel(...).discover_master with the first of 3 Sentinels dead, {args.tries} tries each\n")
    print(f"| {'retry on the Sentinel clients':30s} | median s | max s | min s |")
    print(f"| {'-' * 30} | ---: | ---: | ---: |")
    for name, values in took.items():
        print(f"| {name:30s} | {statistics.median(values):.3f} | {max(values):.3f} | {min(values):.3f} |")


if __name__ == "__main__":
    main()
