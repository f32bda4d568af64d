"""Grafana unified alerting webhook contact point.

Grafana sends Alertmanager's group shape (``receiver``, ``status``, ``alerts[]`` with ``labels``,
``annotations``, ``startsAt``, ``endsAt``, ``fingerprint``, ``groupKey``) plus its own fields (``orgId``,
``title``, ``state``, ``message``, ``values``/``valueString``, dashboard and panel URLs), with
``version`` "1". Grafana's timestamps carry a zone offset and fractional seconds.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from notifier.domain.events import AlertEvent
from notifier.sources.alertmanager import parse_alerts
from notifier.sources.base import ParseError, obj

NAME = "grafana"


def parse(payload: dict[str, Any], received_at: datetime) -> list[AlertEvent]:
    body = obj(payload, "")
    version = body.get("version")
    if version is not None and str(version) != "1":
        raise ParseError("version", f"unsupported Grafana webhook version {version!r}; expected 1")
    events = parse_alerts(body, NAME, received_at)
    if "orgId" in body:
        # the same rule in two Grafana orgs are two alerts; keep the org in the labels
        org = str(body["orgId"])
        events = [_with_org(e, org) for e in events]
    return events


def _with_org(event: AlertEvent, org: str) -> AlertEvent:
    labels = {**event.labels, "grafana_org": org}
    return replace(event, labels=labels, fingerprint=f"{org}:{event.fingerprint}")
