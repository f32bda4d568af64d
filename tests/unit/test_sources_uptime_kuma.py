"""Uptime Kuma webhook notification: down, up, test, pending and bad shapes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from notifier.sources import uptime_kuma
from notifier.sources.base import ParseError
from tests.unit._payloads import DELETE, RECEIVED, load, mutate

DOWN = load("uptime_kuma/down.json")
UP = load("uptime_kuma/up.json")


def test_down_is_firing_with_monitor_labels_and_tags():
    (event,) = uptime_kuma.parse(DOWN, RECEIVED)
    assert event.status == "firing"
    assert event.starts_at == datetime(2026, 11, 24, 20, 35, 40, 527000, tzinfo=UTC)  # Kuma's time is UTC
    assert event.labels == {
        "monitor": "IMAP mx1",
        "monitor_id": "29",
        "monitor_type": "port",
        "monitor_hostname": "mx1.example.net",
        "service": "imap",
    }
    assert event.group_key == "uptime-kuma:monitor:29"
    assert event.summary == "IMAP mx1: connect ECONNREFUSED 192.0.2.10:993"
    assert event.ends_at is None


def test_up_resolves_the_same_monitor():
    (down,) = uptime_kuma.parse(DOWN, RECEIVED)
    (up,) = uptime_kuma.parse(UP, RECEIVED)
    assert (up.status, up.fingerprint, up.group_key) == ("resolved", down.fingerprint, down.group_key)
    assert up.ends_at == datetime(2026, 11, 24, 20, 41, 40, 118000, tzinfo=UTC)
    assert up.id != down.id


@pytest.mark.parametrize(
    ("payload", "count"),
    [
        (load("uptime_kuma/test.json"), 0),
        (mutate(DOWN, "heartbeat.status", 2), 0),  # pending: Kuma still retrying
        (mutate(DOWN, "heartbeat.status", 3), 0),  # Kuma's own maintenance
        (DOWN, 1),
        (mutate(DOWN, "monitor.tags", None), 1),
    ],
)
def test_which_heartbeats_become_events(payload, count):
    assert len(uptime_kuma.parse(payload, RECEIVED)) == count


BAD = [
    ({}, "heartbeat", "required"),
    (mutate(DOWN, "heartbeat", DELETE), "heartbeat", "required"),
    (mutate(DOWN, "heartbeat.status", 7), "heartbeat.status", "must be 0"),
    (mutate(DOWN, "heartbeat.status", True), "heartbeat.status", "must be 0"),
    (mutate(DOWN, "heartbeat.time", DELETE), "heartbeat.time", "required"),
    (mutate(DOWN, "heartbeat.time", "soon"), "heartbeat.time", "RFC 3339"),
    (mutate(DOWN, "monitor", DELETE), "monitor", "required"),
    (mutate(DOWN, "monitor", "IMAP"), "monitor", "object"),
    (mutate(DOWN, "monitor.id", DELETE), "monitor.id", "required"),
    (mutate(DOWN, "monitor.name", ""), "monitor.name", "required"),
]


@pytest.mark.parametrize(("payload", "field", "words"), BAD)
def test_bad_payloads_name_the_field(payload, field, words):
    with pytest.raises(ParseError) as info:
        uptime_kuma.parse(payload, RECEIVED)
    assert info.value.field == field
    assert words in info.value.message
