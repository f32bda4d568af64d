"""Routing: which components an alert is about, and what status it gives them.

Order of precedence, documented in docs/engine.md:

1. ``routing.component_label`` (default ``component``): an alert whose label names a configured
   component goes to that component, and routes are not consulted.
2. ``routing.routes`` in file order. ``mode: first`` stops at the first matching route;
   ``mode: all`` takes the union of every matching route's components.
3. No match: the alert is recorded in the decision log as unrouted and otherwise ignored.

The status is the route's ``status`` when it has one, else the alert's severity (the event's
``severity``, else its ``severity`` label) through ``severity.map``, else ``severity.default``.
"""

from __future__ import annotations

from dataclasses import dataclass

from notifier.domain.events import AlertEvent
from notifier.domain.model import ComponentStatus
from notifier.engine.settings import EngineSettings


@dataclass(frozen=True)
class Routed:
    components: dict[str, str]  # component id -> ComponentStatus value
    reason: str


def severity_status(event: AlertEvent, settings: EngineSettings) -> ComponentStatus:
    severity = (event.severity or event.labels.get("severity") or "").lower()
    return settings.severity.map.get(severity, settings.severity.default)


def route(event: AlertEvent, settings: EngineSettings, component_ids: set[str]) -> Routed:
    """Map an alert to components; an empty mapping means unrouted (``reason`` says why)."""
    base = severity_status(event, settings)
    label = settings.routing.component_label
    if label and event.labels.get(label) in component_ids:
        comp = event.labels[label]
        return Routed({comp: base.value}, f"label {label}={comp}")
    found: dict[str, str] = {}
    names: list[str] = []
    for i, rule in enumerate(settings.routing.routes):
        if not rule.matches(event.labels):
            continue
        status = (rule.status or base).value
        for comp in rule.components:
            if comp not in found or ComponentStatus(status).severity > ComponentStatus(found[comp]).severity:
                found[comp] = status
        names.append(rule.name or f"routes[{i}]")
        if settings.routing.mode == "first":
            break
    if not found:
        return Routed(
            {}, "no route matched labels " + ", ".join(f"{k}={v}" for k, v in sorted(event.labels.items()))
        )
    return Routed(found, f"route {' + '.join(names)} ({settings.routing.mode} match)")
