"""Shared by the engine's integration tests and bench/engine.py: a private Redis and a wired App."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import redis

from notifier.bootstrap import App, build
from notifier.clock import FakeClock
from notifier.config_loader import parse_settings
from notifier.domain.events import AlertEvent
from notifier.ports import NullDispatcher
from tests.support import advance as advance  # re-exported: the engine tests import it from here

CONFIG = """
page: {{name: Example Mail, url: "http://127.0.0.1:8081/"}}
components:
  - {{id: imap, name: IMAP, group: Mail}}
  - {{id: smtp, name: SMTP, group: Mail}}
  - {{id: dns, name: DNS}}
channels:
  statuspage: {{type: outbox, path: "{dir}/statuspage.jsonl"}}
  x: {{type: outbox, path: "{dir}/x.jsonl", approval: {approval}, auto_publish_after_minutes: 10}}
engine:
  confirm: {{seconds: 180, component_status_seconds: 30}}
  channels: {{statuspage: {{confirm_seconds: 60}}}}
  resolve: {{seconds: 300}}
  routing:
    routes:
      - {{name: storage, match: {{team: storage}}, components: [imap, smtp]}}
"""


def make_app(url: str, tmp: Path, approval: str = "auto", prefix: str = "t:") -> App:
    settings = parse_settings(CONFIG.format(dir=tmp, approval=approval), "test", env={})
    settings.redis.key_prefix = prefix
    client = redis.Redis.from_url(url, decode_responses=True)
    return build(settings, dispatcher=NullDispatcher(), clock=FakeClock(), redis_client=client)


def alert(
    app: App, fp: str, status: str = "firing", group_key: str | None = "gk", **labels: str
) -> AlertEvent:
    now = app.clock.now()
    return AlertEvent(
        "alertmanager",
        fp,
        status,
        labels or {"team": "storage"},
        starts_at=now,
        received_at=now,
        group_key=group_key,
        severity="critical",
        summary=f"alert {fp}",
    )


def push(app: App, events: list[AlertEvent]) -> None:
    """What the API does for accepted events (the contract between the API and the engine)."""
    pipe = app.store.redis.pipeline(transaction=False)
    for event in events:
        pipe.xadd(app.settings.redis.key_prefix + "events", {"event": json.dumps(event.to_dict())})
    pipe.execute()
    app.dispatcher.wake_engine()


def at(app: App) -> datetime:
    return app.clock.now().astimezone(UTC)


