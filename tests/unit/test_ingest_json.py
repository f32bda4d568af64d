"""The fast event serializer in ingest must stay byte-for-byte what ``AlertEvent.to_dict`` gives."""

from __future__ import annotations

import json

import pytest

from notifier.domain.events import AlertEvent
from notifier.services.ingest import event_json
from notifier.sources import PARSERS
from tests.unit._payloads import RECEIVED, load

SAMPLES = [
    ("alertmanager", "alertmanager/firing-imap-two-instances.json"),
    ("alertmanager", "alertmanager/imap-one-resolved-one-firing.json"),
    ("grafana", "grafana/resolved-one.json"),
    ("uptime-kuma", "uptime_kuma/down.json"),
    ("generic", "generic/zabbix-problem.json"),
]


@pytest.mark.parametrize(("source", "name"), SAMPLES)
def test_event_json_equals_to_dict(source, name):
    for event in PARSERS[source](load(name), RECEIVED):
        fast = event_json(event)
        assert fast == json.dumps(event.to_dict(), separators=(",", ":"))
        assert AlertEvent.from_dict(json.loads(fast)) == event
