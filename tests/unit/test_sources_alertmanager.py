"""Alertmanager webhook v4: the real payloads captured from Alertmanager 0.25, plus edge cases."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from notifier.sources import alertmanager
from notifier.sources.base import ParseError
from tests.unit._payloads import DELETE, RECEIVED, load, mutate

GROUP_IMAP = '{}:{alertname="ServiceDown", service="imap"}'

# file -> [(fingerprint, status, severity, summary, ends_at)]
REAL = [
    (
        "firing-imap-two-instances.json",
        [
            ("7a038ff290748a7a", "firing", "critical", "IMAP is not answering on mx1", None),
            ("e2dc1af3fdb68c83", "firing", "critical", "IMAP is not answering on mx2", None),
        ],
    ),
    (
        "imap-one-resolved-one-firing.json",
        [
            (
                "7a038ff290748a7a",
                "resolved",
                "critical",
                "IMAP is not answering on mx1",
                datetime(2026, 11, 24, 20, 35, 44, tzinfo=UTC),
            ),
            ("e2dc1af3fdb68c83", "firing", "critical", "IMAP is not answering on mx2", None),
        ],
    ),
]


@pytest.mark.parametrize(("name", "expected"), REAL)
def test_real_payloads(name, expected):
    events = alertmanager.parse(load(f"alertmanager/{name}"), RECEIVED)
    got = [(e.fingerprint, e.status, e.severity, e.summary, e.ends_at) for e in events]
    assert got == expected
    for event in events:
        assert event.source == "alertmanager"
        assert event.group_key == GROUP_IMAP
        assert event.labels["service"] == "imap"
        assert event.starts_at == datetime(2026, 11, 24, 20, 35, 40, tzinfo=UTC)
        assert event.received_at == RECEIVED


def test_storage_warning_is_its_own_group():
    (event,) = alertmanager.parse(load("alertmanager/firing-storage-warning.json"), RECEIVED)
    assert event.severity == "warning"
    assert event.group_key != GROUP_IMAP


def test_resent_snapshot_keeps_the_still_firing_alert_id():
    first = {
        e.fingerprint: e.id
        for e in alertmanager.parse(load("alertmanager/firing-imap-two-instances.json"), RECEIVED)
    }
    later = alertmanager.parse(load("alertmanager/imap-one-resolved-one-firing.json"), RECEIVED)
    by_fp = {e.fingerprint: e.id for e in later}
    assert by_fp["e2dc1af3fdb68c83"] == first["e2dc1af3fdb68c83"]  # same alert, same transition
    assert by_fp["7a038ff290748a7a"] != first["7a038ff290748a7a"]  # resolved is a new transition


BASE = load("alertmanager/firing-imap-two-instances.json")

# (path to change, new value, field named in the error, words in the message)
BAD = [
    ("version", DELETE, "version", "required"),
    ("version", "3", "version", "unsupported"),
    ("alerts", DELETE, "alerts", "required"),
    ("alerts", {"a": 1}, "alerts", "must be a list"),
    ("alerts.0", "x", "alerts[0]", "object"),
    ("alerts.0.labels", DELETE, "alerts[0].labels", "required"),
    ("alerts.0.labels", {}, "alerts[0].labels", "must not be empty"),
    ("alerts.1.labels", ["a"], "alerts[1].labels", "object"),
    ("alerts.0.labels.service", {"x": 1}, "alerts[0].labels.service", "string"),
    ("alerts.0.annotations", "text", "alerts[0].annotations", "object"),
    ("alerts.0.status", "pending", "alerts[0].status", "firing"),
    ("alerts.0.status", DELETE, "alerts[0].status", "firing"),
    ("alerts.0.startsAt", DELETE, "alerts[0].startsAt", "required"),
    ("alerts.0.startsAt", "yesterday", "alerts[0].startsAt", "RFC 3339"),
    ("alerts.0.startsAt", "0001-01-01T00:00:00Z", "alerts[0].startsAt", "required"),
    ("alerts.0.fingerprint", 7, "alerts[0].fingerprint", "string"),
    ("groupKey", 12, "groupKey", "string"),
]


@pytest.mark.parametrize(("path", "value", "field", "words"), BAD, ids=[f"{r[0]}={r[1]!r}"[:40] for r in BAD])
def test_bad_payloads_name_the_field(path, value, field, words):
    with pytest.raises(ParseError) as info:
        alertmanager.parse(mutate(BASE, path, value), RECEIVED)
    assert info.value.field == field
    assert words in info.value.message


def test_body_must_be_an_object():
    with pytest.raises(ParseError) as info:
        alertmanager.parse([1, 2], RECEIVED)  # type: ignore[arg-type]
    assert info.value.field == "(body)"


# Edge cases that must be accepted
def test_nanosecond_timestamps_and_offsets():
    body = mutate(BASE, "alerts.0.startsAt", "2026-11-24T21:35:40.123456789+01:00")
    event = alertmanager.parse(body, RECEIVED)[0]
    assert event.starts_at == datetime(2026, 11, 24, 20, 35, 40, 123456, tzinfo=UTC)


def test_missing_fingerprint_derived_from_labels_stably():
    body = mutate(BASE, "alerts.0.fingerprint", DELETE)
    one = alertmanager.parse(body, RECEIVED)[0]
    two = alertmanager.parse(mutate(body, "alerts.0.annotations", {}), RECEIVED)[0]
    assert one.fingerprint == two.fingerprint and len(one.fingerprint) == 16
    other = alertmanager.parse(mutate(body, "alerts.0.labels.instance", "mx9"), RECEIVED)[0]
    assert other.fingerprint != one.fingerprint


def test_empty_alert_list_gives_no_events():
    assert alertmanager.parse(mutate(BASE, "alerts", []), RECEIVED) == []


def test_numeric_label_values_become_strings():
    event = alertmanager.parse(mutate(BASE, "alerts.0.labels.port", 993), RECEIVED)[0]
    assert event.labels["port"] == "993"


def test_firing_alert_ignores_its_guessed_ends_at():
    body = mutate(BASE, "alerts.0.endsAt", "2026-11-24T20:40:40Z")
    assert alertmanager.parse(body, RECEIVED)[0].ends_at is None
