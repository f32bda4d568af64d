"""An App on the in-memory store, a fake clock and recording channels: the services without a redis-server."""

from __future__ import annotations

import json
from typing import Any

from notifier.bootstrap import App, build
from notifier.channels.base import Channel, Rendering
from notifier.clock import FakeClock
from notifier.config_loader import parse_settings
from notifier.domain.events import AlertEvent
from notifier.domain.model import Notice, Receipt
from notifier.ports import NullDispatcher
from notifier.store.memory import MemoryStore
from tests.support import advance as advance  # re-exported: the engine tests import it from here

CONFIG = """
page: {name: Example Mail, url: "http://status.test/"}
components:
  - {id: imap, name: IMAP, group: Mail}
  - {id: smtp, name: SMTP, group: Mail}
  - {id: dns, name: DNS}
channels:
  statuspage: {type: outbox, path: "/nonexistent/statuspage.jsonl"}
  x: {type: outbox, path: "/nonexistent/x.jsonl"}
engine:
  confirm: {seconds: 180, component_status_seconds: 30}
  channels: {statuspage: {confirm_seconds: 60}}
  resolve: {seconds: 300}
  routing:
    routes:
      - {name: storage, match: {team: storage}, components: [imap, smtp]}
"""


class RecordingChannel(Channel):
    """A channel that records what it sent; ``failures`` are raised by the next sends, in order."""

    def __init__(self, name: str, *, ordered: bool = False, failures: list[Exception] | None = None) -> None:
        self.name = name
        self.ordered = ordered  # type: ignore[misc]
        self.failures = list(failures or [])
        self.sent: list[tuple[str, tuple[str, ...]]] = []
        self.found: Receipt | None = None  # what reconcile finds

    @property
    def language(self) -> str:
        return "en"

    def render(self, notice: Notice) -> Rendering:
        return Rendering(parts=(f"[{notice.update.status}] {notice.update.body['en']}",), language="en")

    def send(self, notice: Notice, rendering: Rendering) -> Receipt:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append((notice.update.id, rendering.parts))
        return Receipt(f"{self.name}-{notice.update.id}", f"https://{self.name}.test/{notice.update.id}", {})

    def reconcile(self, notice: Notice, since: float | None = None) -> Receipt | None:
        return self.found


def memory_app(**channels: RecordingChannel) -> App:
    settings = parse_settings(CONFIG, "test", env={})
    clock = FakeClock()
    chans: dict[str, Any] = channels or {"statuspage": RecordingChannel("statuspage"), "x": RecordingChannel("x")}
    # the given channels are the App's only ones: drop the configured channels they do not name
    settings.channels = {name: conf for name, conf in settings.channels.items() if name in chans}
    return build(settings, store=MemoryStore(clock), channels=chans, clock=clock, dispatcher=NullDispatcher())


def alert(app: App, fp: str, status: str = "firing", **labels: str) -> AlertEvent:
    now = app.clock.now()
    return AlertEvent("alertmanager", fp, status, labels or {"team": "storage"}, starts_at=now, received_at=now,
                      group_key="gk", severity="critical", summary=f"alert {fp}")


def push(app: App, events: list[AlertEvent]) -> list[str]:
    """What the API does for accepted events: append them to the stream."""
    return [app.store.events.append(json.dumps(e.to_dict())) for e in events]

