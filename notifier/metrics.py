"""Prometheus metrics for ``GET /metrics``.

Counters the API itself sees (events received by source and outcome) are incremented in process.
Everything that lives in Redis (open incidents, deliveries by channel and state, delivery latency,
Celery queue depth) is read at scrape time by a collector, so every API replica reports the same truth
and nothing has to be kept in sync with the workers.
"""

from __future__ import annotations

import logging
from collections import Counter as Tally
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


class Metrics:
    """One registry per API app (tests build many apps in one process)."""

    def __init__(self, app: Any) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.events = Counter(
            "notifier_events_received",
            "Alert events received by webhook source and outcome "
            "(accepted, duplicate, rejected_auth, invalid, too_large, unavailable)",
            ["source", "outcome"],
            registry=self.registry,
        )
        self.registry.register(StoreCollector(app))

    def count(self, source: str, outcome: str, n: int = 1) -> None:
        if n:
            self.events.labels(source, outcome).inc(n)


class StoreCollector(Collector):
    def __init__(self, app: Any) -> None:
        self.app = app

    def describe(self) -> list[Metric]:
        return []  # read at scrape time; no describe-time Redis calls

    def collect(self) -> Iterator[Metric]:
        try:
            yield from self._collect()
        except Exception as exc:  # a scrape during a Redis outage still returns the in-process counters
            log.warning("metrics: cannot read Redis: %s", exc)
            up = GaugeMetricFamily("notifier_store_up", "1 when Redis answered the scrape")
            up.add_metric([], 0)
            yield up

    def _collect(self) -> Iterator[Metric]:
        store = self.app.store
        up = GaugeMetricFamily("notifier_store_up", "1 when Redis answered the scrape")
        up.add_metric([], 1)
        yield up

        open_inc = GaugeMetricFamily("notifier_incidents_open", "Open incidents by kind", labels=["kind"])
        kinds = Tally(inc.kind for inc in store.list_incidents(open_only=True))
        for kind in ("incident", "maintenance", "broadcast"):
            open_inc.add_metric([kind], kinds.get(kind, 0))
        yield open_inc

        rows = store.ledger.rows()
        by_state = Tally((r.channel, str(getattr(r.state, "value", r.state))) for r in rows)
        deliveries = GaugeMetricFamily(
            "notifier_deliveries", "Ledger rows (notices) by channel and state", labels=["channel", "state"]
        )
        for (channel, state), n in sorted(by_state.items()):
            deliveries.add_metric([channel, state], n)
        yield deliveries

        yield _latency(rows)

        depth = GaugeMetricFamily(
            "notifier_queue_depth", "Tasks waiting in each Celery queue", labels=["queue"]
        )
        broker = self.app.extras.get("broker_redis") or self.app.require_redis()
        names = sorted(set(self.app.channels) | {r.channel for r in rows})
        if names:
            with broker.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.llen(f"notify.{name}")
                for name, n in zip(names, pipe.execute(), strict=True):
                    depth.add_metric([f"notify.{name}"], n)
        yield depth


def _latency(rows: list[Any]) -> HistogramMetricFamily:
    """Seconds from a notice's creation to its post, over the posted rows in the ledger."""
    counts = [0] * len(LATENCY_BUCKETS)
    total, n = 0.0, 0
    for row in rows:
        posted, created = getattr(row, "posted_at", None), getattr(row, "created_at", 0.0)
        if not posted or not created:
            continue
        seconds = max(0.0, posted - created)
        total += seconds
        n += 1
        for i, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                counts[i] += 1
    buckets = [(str(b), c) for b, c in zip(LATENCY_BUCKETS, counts, strict=True)] + [("+Inf", n)]
    hist = HistogramMetricFamily(
        "notifier_delivery_latency_seconds", "From notice creation to confirmed post, per posted notice"
    )
    hist.add_metric([], buckets, sum_value=total)
    return hist
