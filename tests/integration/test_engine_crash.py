"""A worker SIGKILLed right after the engine applied an action: the next run neither loses nor repeats it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from notifier.bootstrap import build
from notifier.config_loader import parse_settings
from notifier.domain.events import AlertEvent
from notifier.domain.model import utcnow
from notifier.ports import NullDispatcher
from notifier.services import engine_runner as engine
from notifier.store.local_redis import LocalRedis

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

CONFIG = """
redis: {{url: "{url}", key_prefix: "crash:"}}
components: [{{id: imap, name: IMAP}}]
channels:
  outbox: {{type: outbox, path: "{dir}/outbox.jsonl"}}
engine:
  confirm: {{seconds: 0, component_status_seconds: 0}}
  settle: {{seconds: 0}}
"""

WORKER = """
import sys
from notifier.bootstrap import build
from notifier.config_loader import load_settings
from notifier.ports import NullDispatcher
from notifier.services import engine_runner as engine
app = build(load_settings(sys.argv[1]), dispatcher=NullDispatcher())
engine.process_events(app)
"""


def _wait_for(folder: Path, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(600):  # a generous bound for a loaded machine; not a timing assertion
        if any(folder.iterdir()) or proc.poll() is not None:
            return
        time.sleep(0.05)


def test_kill_after_open_incident_never_opens_twice(tmp_path: Path):
    server = LocalRedis(tmp_path / "redis").start()
    try:
        path = tmp_path / "notifier.yaml"
        path.write_text(CONFIG.format(url=server.url, dir=tmp_path))
        r = redis.Redis.from_url(server.url, decode_responses=True)
        now = utcnow()
        event = AlertEvent("generic", "db", "firing", {"component": "imap"}, now, now, group_key="db")
        r.xadd("crash:events", {"event": json.dumps(event.to_dict())})
        points = tmp_path / "points"
        points.mkdir()
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "NOTIFIER_FAILPOINT": "engine_after_OpenIncident",
            "NOTIFIER_FAILPOINT_DIR": str(points),
        }
        proc = subprocess.Popen([sys.executable, "-c", WORKER, str(path)], cwd=ROOT, env=env)
        _wait_for(points, proc)
        assert proc.poll() is None, "the worker should be frozen at the failpoint"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        # the incident exists, but the worker died before popping the action from the journal
        assert r.llen("crash:engine:journal") >= 1
        r.delete("crash:engine:lock")  # what the lock's TTL does for a dead holder
        app = build(parse_settings(path.read_text(), "t", env={}), dispatcher=NullDispatcher())
        engine.tick(app)
        incidents = app.store.list_incidents()
        assert len(incidents) == 1
        assert r.llen("crash:engine:journal") == 0
        assert engine.incident_of(app, "g1") == incidents[0].id
        assert len(app.store.ledger.rows()) == 1
    finally:
        server.stop()
