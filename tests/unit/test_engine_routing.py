"""Routing, table-driven: labels in, components and statuses out."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from notifier.domain.events import AlertEvent
from notifier.engine.routing import route
from notifier.engine.settings import parse_engine

COMPONENTS = {"imap", "smtp", "webmail", "dns"}
ROUTES = {
    "routes": [
        {"name": "storage", "match": {"team": "storage"}, "components": ["imap", "smtp"]},
        {"name": "web", "match_re": {"instance": "web-[0-9]+"}, "components": ["webmail"]},
        {
            "name": "mail-slow",
            "match_re": {"alertname": "Smtp.*"},
            "components": ["smtp"],
            "status": "degraded_performance",
        },
    ]
}
NOW = datetime(2026, 11, 24, tzinfo=UTC)


def event(labels: dict[str, str], severity: str | None = None) -> AlertEvent:
    return AlertEvent("generic", "f", "firing", labels, NOW, NOW, severity=severity)


@pytest.mark.parametrize(
    ("mode", "labels", "severity", "expected"),
    [
        ("first", {"component": "dns"}, "critical", {"dns": "major_outage"}),
        ("first", {"component": "dns", "team": "storage"}, "warning", {"dns": "degraded_performance"}),
        (
            "first",
            {"component": "nope", "team": "storage"},
            None,
            {"imap": "partial_outage", "smtp": "partial_outage"},
        ),
        (
            "first",
            {"severity": "CRITICAL", "team": "storage"},
            None,
            {"imap": "major_outage", "smtp": "major_outage"},
        ),
        ("first", {"instance": "web-12"}, "info", {"webmail": "degraded_performance"}),
        ("first", {"instance": "web-12x"}, "info", {}),  # match_re is a full match
        (
            "first",
            {"team": "storage", "alertname": "SmtpSlow"},
            "critical",
            {"imap": "major_outage", "smtp": "major_outage"},
        ),
        (
            "all",
            {"team": "storage", "alertname": "SmtpSlow"},
            "critical",
            {"imap": "major_outage", "smtp": "major_outage"},
        ),
        (
            "all",
            {"alertname": "SmtpSlow", "instance": "web-1"},
            "critical",
            {"smtp": "degraded_performance", "webmail": "major_outage"},
        ),
        ("all", {"team": "db"}, "critical", {}),
    ],
)
def test_route(mode, labels, severity, expected):
    settings = parse_engine({"routing": {"mode": mode, **ROUTES}})
    assert route(event(labels, severity), settings, COMPONENTS).components == expected


def test_component_label_can_be_disabled():
    settings = parse_engine({"routing": {"component_label": None, **ROUTES}})
    assert route(event({"component": "dns"}), settings, COMPONENTS).components == {}
