"""The Redis store's incident index against a real Redis."""

from __future__ import annotations

import pytest

from notifier.bootstrap import build
from notifier.config_loader import parse_settings
from notifier.ports import NullDispatcher
from notifier.services import incidents

pytestmark = pytest.mark.integration


def test_open_incidents_come_from_an_index_not_a_scan_of_history(redis_server) -> None:
    settings = parse_settings(f"redis: {{url: '{redis_server.url}'}}\ncomponents: [{{id: imap, name: IMAP}}]\n"
                              "channels: {o: {type: outbox}}\n", "t", {})
    app = build(settings, dispatcher=NullDispatcher())
    first = incidents.open_incident(app, name="one", components=["imap"], body="down")
    second = incidents.open_incident(app, name="two", components=["imap"], body="down")
    third = incidents.open_incident(app, name="three", components=["imap"], body="down")
    incidents.resolve_incident(app, second.id, body="fine")
    assert [i.id for i in app.store.list_incidents(open_only=True)] == [third.id, first.id]
    assert [i.id for i in app.store.list_incidents()] == [third.id, second.id, first.id]
    index = app.store.redis.zrange(app.store.key("incidents", "open"), 0, -1)
    assert sorted(index) == sorted([first.id, third.id])  # resolved ones leave the index
    assert [i.id for i in app.store.list_incidents(open_only=True, limit=1)] == [third.id]
