"""/healthz, /readyz (Redis + worker heartbeat) and /metrics read from the real store."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from notifier.api import create_app
from notifier.services import delivery, incidents
from tests.integration._api_support import ApiServer, make_app, redis_server, settings_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ops")
    with redis_server(tmp / "redis") as (_, port):
        app = make_app(settings_for(tmp), port)
        with ApiServer(create_app(app)) as server, httpx.Client(base_url=server.url, timeout=10) as http:
            yield app, http


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_healthz(stack):
    assert stack[1].get("/healthz").json() == {"status": "ok"}


def test_readyz_needs_a_worker_heartbeat(stack):
    app, http = stack
    app.store.redis.flushdb()
    resp = http.get("/readyz")
    assert resp.status_code == 503
    assert resp.json()["checks"] == {"redis": "ok", "workers": "none alive (no heartbeat key)"}
    app.store.redis.set("t:worker:heartbeat:box1", "1", ex=30)  # what workers/runtime.py writes
    resp = http.get("/readyz")
    assert resp.status_code == 200
    assert resp.json() == {"ready": True, "checks": {"redis": "ok", "workers": "alive (box1, ...)"}}


def test_metrics_read_incidents_deliveries_and_queues(stack):
    app, http = stack
    app.store.redis.flushdb()
    inc = incidents.open_incident(
        app, name="IMAP down", components={"imap": "major_outage"}, body="Looking.", author="test"
    )
    incidents.open_incident(
        app, name="Upgrade", components=["smtp"], body="Later.", author="test", kind="maintenance"
    )
    delivery.deliver(app, f"{inc.id}.1:outbox")  # outbox: posted
    incidents.update_incident(app, inc.id, body="Still looking.", author="test")  # a pending row
    app.store.redis.rpush("notify.outbox", "task-1", "task-2", "task-3")  # Celery's list for the queue

    got = samples(http.get("/metrics").text)
    assert got[("notifier_incidents_open", (("kind", "incident"),))] == 1
    assert got[("notifier_incidents_open", (("kind", "maintenance"),))] == 1
    assert got[("notifier_deliveries", (("channel", "outbox"), ("state", "posted")))] == 1
    # the update and the maintenance announcement wait
    assert got[("notifier_deliveries", (("channel", "outbox"), ("state", "pending")))] == 2
    assert got[("notifier_queue_depth", (("queue", "notify.outbox"),))] == 3
    assert got[("notifier_delivery_latency_seconds_count", ())] == 1
    assert got[("notifier_delivery_latency_seconds_bucket", (("le", "+Inf"),))] == 1
    assert got[("notifier_store_up", ())] == 1
