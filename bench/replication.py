"""What "acknowledged means replicated" costs: the store's event accept (the Lua SET NX + XADD behind a
webhook's 202) through Redis Sentinel, with ``redis.min_replicas: 0`` (the baseline: no WAIT) and ``1``
(probe INCR + WAIT on the same connection), measured in the same run against the same master and replica.

    .venv/bin/python bench/replication.py [--calls 3000]

Starts a master and a replica redis-server (AOF, appendfsync always, as the tests do) and three Sentinels
on loopback (tests/fakes/sentinel.py); one client thread calls ``store.events.accept`` back to back, each
call one new event; p50/p99 per call and calls/s. Alternates the two modes in four rounds so a noisy
neighbour on this shared machine hits both alike.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from notifier.config import Settings  # noqa: E402
from notifier.store.redis_store import RedisStore, connect  # noqa: E402
from tests.fakes.sentinel import MASTER_NAME, sentinel_cluster  # noqa: E402


def run(store: RedisStore, calls: int, tag: str) -> list[float]:
    took = []
    for i in range(calls):
        start = time.perf_counter()
        store.events.accept([(f"{tag}-{i}", '{"id": "x"}')], 3600)
        took.append(time.perf_counter() - start)
    return took


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, sentinel_cluster(Path(tmp)) as cluster:
        settings = Settings.model_validate({"redis": {"sentinels": cluster.addresses, "master_name": MASTER_NAME}})
        client = connect(settings)
        stores = {0: RedisStore(client, "bench:", min_replicas=0), 1: RedisStore(client, "bench:", min_replicas=1)}
        results: dict[int, list[float]] = {0: [], 1: []}
        run(stores[0], 200, "warm")
        for rnd in range(4):
            for mode in (0, 1):
                results[mode] += run(stores[mode], args.calls // 4, f"r{rnd}m{mode}")
        print(f"\n{args.calls} accepts per mode, one client, master + 1 replica + 3 Sentinels on loopback")
        print(f"{'redis.min_replicas':<20}{'calls/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
        for mode, took in results.items():
            q = statistics.quantiles(took, n=100)
            print(f"{mode:<20}{len(took) / sum(took):>10.0f}{q[49] * 1000:>10.3f}{q[98] * 1000:>10.3f}")
        base, wait = (statistics.median(results[m]) for m in (0, 1))
        print(f"WAIT adds {(wait - base) * 1000:.3f} ms per acknowledged write at the median "
              f"({wait / base:.2f}x the baseline)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
