"""Helpers for the X and Facebook channel tests: an incident with n updates, contexts, channels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from notifier.channels.base import Channel, ChannelContext, Rendering
from notifier.channels.progress import ProgressStore
from notifier.channels.x_budget import BudgetStore
from notifier.clock import FakeClock, SystemClock
from notifier.config import PageSettings
from notifier.domain.model import Impact, Incident, IncidentUpdate, Notice, Receipt
from notifier.templating import TemplateRenderer

STATUSES = ["investigating", "identified", "monitoring", "resolved"]
T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def incident(bodies: list[str], incident_id: str = "inc42", name: str = "Mail delivery delayed",
             kind: str = "incident") -> Incident:
    inc = Incident(id=incident_id, name=name, status=STATUSES[min(len(bodies), 4) - 1], impact=Impact.MAJOR,
                   created_at=T0, kind=kind, components=["smtp"])
    for n, body in enumerate(bodies, start=1):
        inc.updates.append(IncidentUpdate(
            id=f"{incident_id}.{n}", incident_id=incident_id, number=n,
            status=STATUSES[min(n, 4) - 1] if n < len(bodies) or n < 4 else "resolved",
            body={"en": body, "de": f"DE {body}"}, created_at=T0 + timedelta(minutes=10 * n)))
    return inc


def context(redis: Any = None, language: str = "en", timeout: float = 5.0, fake_clock: bool = False,
            templates_dir: str | None = None, key_prefix: str = "notifier:") -> ChannelContext:
    """A channel context; with ``redis``, budgets and thread progress live there under ``key_prefix``."""
    page = PageSettings(url="https://status.example.com/", language=language)  # type: ignore[call-arg]
    return ChannelContext(page=page, clock=FakeClock() if fake_clock else SystemClock(),
                          templates=TemplateRenderer(templates_dir, language), http_timeout=timeout,
                          key_prefix=key_prefix,
                          budgets=BudgetStore(redis, key_prefix) if redis is not None else None,
                          progress=ProgressStore(redis, key_prefix) if redis is not None else None)


def notice(inc: Incident, number: int, channel: str, previous: dict[str, str] | None = None) -> Notice:
    return Notice(incident=inc, update=inc.updates[number - 1], channel=channel,
                  page_url=f"https://status.example.com/incidents/{inc.id}.html", previous=previous or {})


def send_all(chan: Channel, inc: Incident) -> list[Receipt]:
    """What the delivery service does for an ordered channel: update n+1 after n, previous = extra."""
    receipts: list[Receipt] = []
    previous: dict[str, str] = {}
    for number in range(1, len(inc.updates) + 1):
        note = notice(inc, number, chan.name, previous)
        rendering: Rendering = chan.render(note)
        receipt = chan.send(note, rendering)
        receipts.append(receipt)
        previous = receipt.extra
    return receipts
