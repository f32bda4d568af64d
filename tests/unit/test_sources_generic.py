"""The generic schema: Zabbix/Nagios-style samples from docs/api.md and every validation row."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from notifier.sources import generic
from notifier.sources.base import ParseError
from tests.unit._payloads import DELETE, RECEIVED, load, mutate

ZABBIX = load("generic/zabbix-problem.json")


def test_zabbix_problem():
    (event,) = generic.parse(ZABBIX, RECEIVED)
    assert (event.fingerprint, event.status, event.severity) == ("zabbix:event:4711", "firing", "critical")
    assert event.group_key == "generic:zabbix:smtp"
    assert event.starts_at == datetime.fromtimestamp(1795984540, UTC)
    assert event.labels["service"] == "smtp"


def test_nagios_recovery_with_offset():
    (event,) = generic.parse(load("generic/nagios-recovery.json"), RECEIVED)
    assert event.status == "resolved"
    assert event.ends_at == datetime(2026, 11, 24, 19, 45, 40, tzinfo=UTC)
    assert event.group_key is None


@pytest.mark.parametrize("value", [1795984540, "1795984540", "1795984540.0", "2026-11-29T21:35:40+01:00"])
def test_epoch_seconds_as_number_or_string(value):
    (event,) = generic.parse(mutate(ZABBIX, "alerts.0.starts_at", value), RECEIVED)
    assert event.starts_at == datetime.fromtimestamp(1795984540, UTC)


def test_defaults_start_to_received_and_severity_to_label():
    body = mutate(mutate(ZABBIX, "alerts.0.starts_at", DELETE), "alerts.0.severity", DELETE)
    (event,) = generic.parse(body, RECEIVED)
    assert event.starts_at == RECEIVED
    assert event.severity == "high"


@pytest.mark.parametrize(("word", "status"), [
    ("firing", "firing"), ("PROBLEM", "firing"), ("Triggered", "firing"), ("Re-Triggered", "firing"),
    ("resolved", "resolved"), ("RECOVERY", "resolved"), ("Recovered", "resolved"), (" ok ", "resolved"),
])
def test_status_words_of_common_monitors(word, status):
    (event,) = generic.parse(mutate(ZABBIX, "alerts.0.status", word), RECEIVED)
    assert event.status == status


BAD = [
    (mutate(ZABBIX, "alerts", DELETE), "alerts", "required"),
    (mutate(ZABBIX, "alerts", []), "alerts", "at least 1"),
    (mutate(ZABBIX, "alerts.0.id", DELETE), "alerts[0].id", "required"),
    (mutate(ZABBIX, "alerts.0.id", ""), "alerts[0].id", "at least 1"),
    (mutate(ZABBIX, "alerts.0.status", "ACKNOWLEDGEMENT"), "alerts[0].status", "'firing' or 'resolved'"),
    (mutate(ZABBIX, "alerts.0.status", 1), "alerts[0].status", "string"),
    (mutate(ZABBIX, "alerts.0.labels", {}), "alerts[0].labels", "at least 1"),
    (mutate(ZABBIX, "alerts.0.labels", DELETE), "alerts[0].labels", "required"),
    (mutate(ZABBIX, "alerts.0.labels.host", 5), "alerts[0].labels.host", "string"),
    (mutate(ZABBIX, "alerts.0.colour", "red"), "alerts[0].colour", "unknown field"),
    (mutate(ZABBIX, "alerts.0.starts_at", "last tuesday"), "alerts[0].starts_at", "RFC 3339"),
    (mutate(ZABBIX, "alerts.0.starts_at", 1e300), "alerts[0].starts_at", "out of range"),
    ({"alert": {}}, "alerts", "required"),
]


@pytest.mark.parametrize(("payload", "field", "words"), BAD)
def test_bad_payloads_name_the_field(payload, field, words):
    with pytest.raises(ParseError) as info:
        generic.parse(payload, RECEIVED)
    assert info.value.field == field
    assert words in info.value.message
