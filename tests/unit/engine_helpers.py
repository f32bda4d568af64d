"""A tiny harness for the pure engine: a FakeClock, an EngineState and a log of every action."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from notifier.clock import FakeClock
from notifier.domain.events import AlertEvent
from notifier.engine.actions import PUBLIC, Action, Decision, OpenIncident, PostUpdate, ResolveIncident
from notifier.engine.core import ChannelPolicy, ComponentInfo, Engine
from notifier.engine.settings import parse_engine
from notifier.engine.state import EngineState

COMPONENTS = [
    ComponentInfo("imap", "IMAP", "Mail"),
    ComponentInfo("smtp", "SMTP", "Mail"),
    ComponentInfo("webmail", "Webmail", "Web"),
    ComponentInfo("dns", "DNS", None),
]


class Sim:
    def __init__(
        self, engine: dict[str, Any] | None = None, channels: dict[str, ChannelPolicy] | None = None
    ):
        self.clock = FakeClock()
        if channels is None:
            channels = {"statuspage": ChannelPolicy(), "x": ChannelPolicy()}
        self.engine = Engine(parse_engine(engine or {}), COMPONENTS, channels)
        self.state = EngineState()
        self.actions: list[Action] = []

    def now(self) -> float:
        return self.clock.timestamp()

    def fire(
        self,
        fp: str = "a1",
        status: str = "firing",
        group_key: str | None = None,
        severity: str = "critical",
        **labels: str,
    ) -> list[Action]:
        labels = labels or {"component": "imap"}
        event = AlertEvent(
            source="alertmanager",
            fingerprint=fp,
            status=status,
            labels=labels,
            starts_at=self.clock.now(),
            received_at=self.clock.now(),
            group_key=group_key,
            severity=severity,
            summary=f"alert {fp}",
        )
        out = self.engine.handle(self.state, event, self.now())
        self.actions.extend(out)
        return out

    def resolve(self, fp: str = "a1", **labels: str) -> list[Action]:
        return self.fire(fp, status="resolved", **labels)

    def tick(self) -> list[Action]:
        out = self.engine.tick(self.state, self.now())
        self.actions.extend(out)
        return out

    def run(self, seconds: float, step: float = 5) -> None:
        """Advance the clock, ticking every ``step`` seconds like the beat does."""
        end = self.clock.now() + timedelta(seconds=seconds)
        while self.clock.now() < end:
            self.clock.advance(min(step, (end - self.clock.now()).total_seconds()))
            self.tick()

    def of(self, kind: type) -> list[Any]:
        return [a for a in self.actions if isinstance(a, kind)]

    def public(self, channel: str | None = None, drafts: bool = True) -> list[Any]:
        out = [a for a in self.actions if isinstance(a, PUBLIC)]
        if not drafts:
            out = [a for a in out if not getattr(a, "draft", False)]
        if channel is not None:
            out = [a for a in out if channel in a.channels]
        return out

    def decisions(self, kind: str | None = None) -> list[Decision]:
        return [d for d in self.of(Decision) if kind is None or d.kind == kind]


__all__ = ["Sim", "OpenIncident", "PostUpdate", "ResolveIncident", "ChannelPolicy"]
