"""Monitoring sources: one parser module per webhook format, registered explicitly.

Each module exposes ``NAME`` and ``parse(payload: dict, received_at) -> list[AlertEvent]``, raising
``notifier.sources.base.ParseError`` naming the field for a payload that can never be accepted.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from notifier.domain.events import AlertEvent
from notifier.sources import alertmanager, generic, grafana, uptime_kuma
from notifier.sources.base import ParseError

Parser = Callable[[dict[str, Any], datetime], list[AlertEvent]]

PARSERS: dict[str, Parser] = {
    alertmanager.NAME: alertmanager.parse,
    grafana.NAME: grafana.parse,
    uptime_kuma.NAME: uptime_kuma.parse,
    generic.NAME: generic.parse,
}

__all__ = ["PARSERS", "ParseError", "Parser"]
