"""Grafana unified alerting webhook: samples written from Grafana's documented payload."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from notifier.sources import grafana
from notifier.sources.base import ParseError
from tests.unit._payloads import DELETE, RECEIVED, load, mutate

CASES = [
    (
        "grafana/firing-two.json",
        [
            (
                "1:c6eadffa33fcdf37",
                "firing",
                "Webmail memory high in us-1",
                datetime(2021, 10, 12, 7, 51, 3, 157076, tzinfo=UTC),
                None,
            ),
            (
                "1:bc97ff14869b13e3",
                "firing",
                "The system has high CPU usage",
                datetime(2021, 10, 12, 7, 56, 3, 157076, tzinfo=UTC),
                None,
            ),
        ],
    ),
    (
        "grafana/resolved-one.json",
        [
            (
                "1:c6eadffa33fcdf37",
                "resolved",
                "Webmail memory high in us-1",
                datetime(2021, 10, 12, 7, 51, 3, 157076, tzinfo=UTC),
                datetime(2021, 10, 12, 8, 1, 3, 157076, tzinfo=UTC),
            )
        ],
    ),
]


@pytest.mark.parametrize(("name", "expected"), CASES)
def test_samples(name, expected):
    events = grafana.parse(load(name), RECEIVED)
    assert [(e.fingerprint, e.status, e.summary, e.starts_at, e.ends_at) for e in events] == expected
    assert all(e.source == "grafana" and e.group_key and e.labels["grafana_org"] == "1" for e in events)


BASE = load("grafana/firing-two.json")
BAD = [
    ("version", "2", "version", "unsupported"),
    ("alerts", DELETE, "alerts", "required"),
    ("alerts.1.labels", DELETE, "alerts[1].labels", "required"),
    ("alerts.0.startsAt", "12/10/2021", "alerts[0].startsAt", "RFC 3339"),
    ("alerts.0.status", "alerting", "alerts[0].status", "firing"),
]


@pytest.mark.parametrize(("path", "value", "field", "words"), BAD)
def test_bad_payloads_name_the_field(path, value, field, words):
    with pytest.raises(ParseError) as info:
        grafana.parse(mutate(BASE, path, value), RECEIVED)
    assert (info.value.field, words in info.value.message) == (field, True)


def test_version_may_be_absent_and_org_kept_apart():
    one = grafana.parse(mutate(BASE, "version", DELETE), RECEIVED)
    two = grafana.parse(mutate(BASE, "orgId", 2), RECEIVED)
    assert one[0].id != two[0].id  # the same rule in another org is another alert
