"""Uptime Kuma webhook notification (``application/json`` body).

Kuma posts ``{"heartbeat": {...}, "monitor": {...}, "msg": "..."}``. ``heartbeat.status`` is 0 DOWN,
1 UP, 2 PENDING, 3 MAINTENANCE; ``heartbeat.time`` is UTC without a zone (``2024-09-24 23:51:35.527``).
DOWN becomes a firing event, UP a resolved one. PENDING (Kuma is still retrying) and MAINTENANCE
(Kuma's own window) yield no event. Kuma's "Test" button sends ``heartbeat`` and ``monitor`` as null:
accepted, no event. The monitor is the group key, so one monitor is one incident thread.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from notifier.domain.events import AlertEvent
from notifier.sources.base import ParseError, obj, req, timestamp

NAME = "uptime-kuma"
DOWN, UP, PENDING, MAINTENANCE = 0, 1, 2, 3


def parse(payload: dict[str, Any], received_at: datetime) -> list[AlertEvent]:
    body = obj(payload, "")
    if body.get("heartbeat") is None and body.get("monitor") is None:
        if "msg" not in body:
            raise ParseError("heartbeat", "required")
        return []  # Kuma's "Test" notification
    beat = obj(req(body, "heartbeat", ""), "heartbeat")
    monitor = obj(req(body, "monitor", ""), "monitor")
    state = beat.get("status")
    if isinstance(state, bool) or state not in (DOWN, UP, PENDING, MAINTENANCE):
        raise ParseError("heartbeat.status", "must be 0 (down), 1 (up), 2 (pending) or 3 (maintenance)")
    if state in (PENDING, MAINTENANCE):
        return []
    monitor_id = req(monitor, "id", "monitor")
    if isinstance(monitor_id, bool) or not isinstance(monitor_id, int | str) or monitor_id == "":
        raise ParseError("monitor.id", "must be a number or string")
    name = monitor.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ParseError("monitor.name", "required")
    at = timestamp(req(beat, "time", "heartbeat"), "heartbeat.time")
    assert at is not None
    labels = {"monitor": name, "monitor_id": str(monitor_id)}
    for key in ("type", "hostname", "url"):
        value = monitor.get(key)
        if isinstance(value, str) and value and value != "https://":
            labels[f"monitor_{key}"] = value
    labels.update(_tags(monitor.get("tags")))
    msg = beat.get("msg") if isinstance(beat.get("msg"), str) else ""
    firing = state == DOWN
    return [
        AlertEvent(
            source=NAME,
            fingerprint=f"monitor:{monitor_id}",
            status="firing" if firing else "resolved",
            labels=labels,
            annotations={"message": msg} if msg else {},
            starts_at=at,
            ends_at=None if firing else at,
            received_at=received_at,
            group_key=f"uptime-kuma:monitor:{monitor_id}",
            summary=f"{name}: {msg}" if msg else name,
        )
    ]


def _tags(tags: Any) -> dict[str, str]:
    """Kuma tags (``[{"name": "service", "value": "imap"}, ...]``) become labels for routing."""
    out: dict[str, str] = {}
    if not isinstance(tags, list):
        return out
    for tag in tags:
        if isinstance(tag, dict) and isinstance(tag.get("name"), str) and tag["name"]:
            value = tag.get("value")
            out.setdefault(tag["name"], str(value) if value not in (None, "") else "true")
    return out
