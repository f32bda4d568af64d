"""Alertmanager webhook (``webhook_configs``, payload version 4).

Every POST is a snapshot of one alert group: all firing alerts plus those resolved since the last
send. Events are keyed by the alert's fingerprint, status and times, so the re-sent snapshot yields the
same event ids and the ingest step drops what it has seen.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from notifier.domain.events import AlertEvent
from notifier.sources.base import ParseError, obj, req, status, str_map, text, timestamp

NAME = "alertmanager"
VERSIONS = ("4",)


def parse(payload: dict[str, Any], received_at: datetime) -> list[AlertEvent]:
    body = obj(payload, "")
    version = str(req(body, "version", ""))
    if version not in VERSIONS:
        raise ParseError("version", f"unsupported webhook version {version!r}; expected 4")
    return parse_alerts(body, NAME, received_at)


def parse_alerts(body: dict[str, Any], source: str, received_at: datetime) -> list[AlertEvent]:
    """The ``alerts`` list shared by Alertmanager and Grafana (Grafana speaks Alertmanager's shape)."""
    group_key = text(body, "groupKey", "", required=False) or None
    alerts = req(body, "alerts", "")
    if not isinstance(alerts, list):
        raise ParseError("alerts", "must be a list")
    events = []
    for i, raw in enumerate(alerts):
        path = f"alerts[{i}]"
        alert = obj(raw, path)
        labels = str_map(alert, "labels", path, required=True)
        if not labels:
            raise ParseError(f"{path}.labels", "must not be empty")
        annotations = str_map(alert, "annotations", path)
        state = status(alert.get("status"), f"{path}.status")
        starts_at = timestamp(alert.get("startsAt"), f"{path}.startsAt")
        assert starts_at is not None
        # a firing alert's endsAt is Alertmanager's "resolve timeout" guess, not a fact: ignore it
        ends_at = None
        if state == "resolved":
            ends_at = timestamp(alert.get("endsAt"), f"{path}.endsAt", optional=True)
        events.append(
            AlertEvent(
                source=source,
                fingerprint=text(alert, "fingerprint", path, required=False) or label_fingerprint(labels),
                status=state,
                labels=labels,
                annotations=annotations,
                starts_at=starts_at,
                ends_at=ends_at,
                received_at=received_at,
                group_key=group_key,
                severity=labels.get("severity"),
                summary=annotations.get("summary") or annotations.get("description")
                or labels.get("alertname", ""),
            )
        )
    return events


def label_fingerprint(labels: dict[str, str]) -> str:
    """Alertmanager always sends a fingerprint; other senders may not. Derive one from the label set."""
    canon = "\x00".join(f"{k}\x00{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(canon.encode()).hexdigest()[:16]
