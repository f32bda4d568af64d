"""The generic webhook: a small documented JSON schema for anything else (Zabbix, Nagios/Icinga,
Datadog, cron scripts). See ``docs/api.md`` for examples.

    {
      "alerts": [
        {
          "id": "db1-disk",                       # required: identity of the alert at the sender
          "status": "firing",                     # required: firing | resolved (or an alias, below)
          "labels": {"service": "imap"},          # required, non-empty: routed to components
          "summary": "Disk full on db1",          # optional
          "severity": "critical",                 # optional (else labels.severity)
          "group": "storage",                     # optional: alerts with one group form one incident
          "starts_at": "2026-11-24T20:35:40Z",    # optional: RFC 3339 or epoch seconds; default: now
          "ends_at": null,                        # optional, for resolved alerts
          "annotations": {"runbook": "..."}       # optional
        }
      ]
    }

``status`` also takes the words monitors already have, case-insensitively, so a template can pass its
own variable through: Zabbix ``{EVENT.STATUS}`` (PROBLEM/RESOLVED), Nagios ``$NOTIFICATIONTYPE$``
(PROBLEM/RECOVERY), Datadog ``$ALERT_TRANSITION`` (Triggered/Re-Triggered/Recovered); see ``STATUS_WORDS``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from notifier.domain.events import AlertEvent
from notifier.sources.base import ParseError, obj, timestamp

NAME = "generic"
MAX_ALERTS = 5000


STATUS_WORDS = {
    "firing": "firing", "problem": "firing", "triggered": "firing", "re-triggered": "firing",
    "alert": "firing", "down": "firing", "critical": "firing",
    "resolved": "resolved", "recovery": "resolved", "recovered": "resolved", "ok": "resolved",
    "up": "resolved",
}


class GenericAlert(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=200, description="identity of the alert at the sender")
    status: str = Field(description="firing | resolved, or: " + ", ".join(sorted(set(STATUS_WORDS) - {
        "firing", "resolved"})))
    labels: dict[str, str] = Field(min_length=1, description="routed to components by the engine")
    summary: str = Field("", max_length=2000)
    severity: str | None = None
    group: str | None = Field(None, description="alerts sharing a group become one incident")
    starts_at: str | float | None = Field(None, description="RFC 3339 or epoch seconds; default: received")
    ends_at: str | float | None = None
    annotations: dict[str, str] = {}

    @field_validator("status")
    @classmethod
    def _status(cls, value: str) -> str:
        word = STATUS_WORDS.get(value.strip().lower())
        if word is None:
            raise ValueError("must be 'firing' or 'resolved' (or problem/recovery, triggered/recovered, ...)")
        return word


class GenericPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alerts: list[GenericAlert] = Field(min_length=1, max_length=MAX_ALERTS)


def parse(payload: dict[str, Any], received_at: datetime) -> list[AlertEvent]:
    obj(payload, "")
    try:
        body = GenericPayload.model_validate(payload)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ParseError(_path(err["loc"]), _message(err)) from exc
    events = []
    for i, alert in enumerate(body.alerts):
        starts = timestamp(alert.starts_at, f"alerts[{i}].starts_at", optional=True) or received_at
        ends = timestamp(alert.ends_at, f"alerts[{i}].ends_at", optional=True)
        events.append(
            AlertEvent(
                source=NAME,
                fingerprint=alert.id,
                status=alert.status,
                labels=alert.labels,
                annotations=alert.annotations,
                starts_at=starts,
                ends_at=ends if alert.status == "resolved" else None,
                received_at=received_at,
                group_key=f"generic:{alert.group}" if alert.group else None,
                severity=alert.severity or alert.labels.get("severity"),
                summary=alert.summary,
            )
        )
    return events


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(body)"


def _message(err: Any) -> str:
    if err["type"] == "missing":
        return "required"
    if err["type"] == "extra_forbidden":
        return "unknown field"
    return str(err["msg"]).removeprefix("Value error, ")
