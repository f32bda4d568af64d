"""Probes on the real path: beat sends each location's tick to its own queue, a real Celery worker runs
the probes and feeds the engine, and a stopped SMTP server (aiosmtpd on loopback) becomes an incident."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from notifier.bootstrap import build
from notifier.config_loader import load_settings
from notifier.domain.model import ComponentStatus
from tests.integration.probe_servers import SmtpServer
from tests.support import start_beat, start_worker, wait_for, write_config

pytestmark = pytest.mark.integration


def test_beat_and_a_worker_run_the_probes_and_a_stopped_smtp_server_opens_an_incident(
        redis_server, redis_client: redis.Redis, tmp_path: Path) -> None:
    smtp = SmtpServer()
    config = write_config(
        tmp_path / "notifier.yaml", redis_server.url,
        {"outbox": {"type": "outbox", "path": str(tmp_path / "outbox.jsonl")}},
        engine={"confirm": {"seconds": 1, "component_status_seconds": 1}, "settle": {"seconds": 1},
                "tick_seconds": 1, "resolve": {"seconds": 1, "component_seconds": 1}},
        probes={"tick_seconds": 1, "checks": [
            {"name": "mx", "component": "smtp", "type": "smtp", "target": smtp.target,
             "interval": 1, "timeout": 2, "retries": 0}]},
    )
    prefix = "notifier:"
    store = build(load_settings(config), redis_client=redis_client).store
    queues = "notifier.probes.local,notifier.engine,notifier.periodic,notify.outbox"
    worker = start_worker(config, redis_client, tmp_path / "worker.log", queues=queues)
    beat = start_beat(config, tmp_path / "beat.log", tmp_path)
    try:
        def location() -> dict[str, object]:
            text = redis_client.get(f"{prefix}probe:mx:loc:local")
            return json.loads(text) if text else {}

        wait_for(lambda: location().get("last_outcome") == "up", timeout=60,
                 what="the worker's first probe run (see worker.log)")
        assert store.list_incidents() == []
        smtp.stop()
        wait_for(lambda: location().get("vote") == "down", timeout=30, what="the location voting down")
        (incident,) = wait_for(lambda: store.list_incidents(), timeout=60, what="an incident opened by the engine")
        assert incident.components == ["smtp"]
        wait_for(lambda: store.component_status("smtp") == ComponentStatus.MAJOR_OUTAGE, timeout=30,
                 what="smtp shown as major_outage")
    finally:
        beat.stop()
        worker.stop()
        smtp.stop()
