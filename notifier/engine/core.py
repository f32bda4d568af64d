"""The incident engine's pure core: alert events and clock ticks in, actions out.

No I/O and no clock reads: every call gets ``now`` (epoch seconds) from the caller, so the tests run
on a ``FakeClock`` and two workers given the same state and input decide the same thing.

Lifecycle of a group (one future incident):

    alert fires ─▶ pending ──problem lasted confirm delay (per channel)──▶ opened (public)
        ▲             │ all alerts resolved + resolve delay: closed silently (a spike)
        │             ▼
        └─ relapse ── quiet ──resolve delay passed──▶ resolved (opened) / closed (pending)

Every decision (an alert joining, a post held by the budget, a transition suppressed while flapping,
an alert swallowed by maintenance) is returned as a ``Decision`` for the log.

``Engine`` is the facade; the work is done by one module per concern, each given a ``Step`` (the
clock reading, the settings, the state and the actions being collected; see ``context``):

- ``grouping``: which group an alert joins, what the public sees of a group, flap damping;
- ``lifecycle``: opening, posting changes within the budget, recovering, resolving, drafts;
- ``maintenance``: windows starting and ending, and the alerts they swallow;
- ``staff``: incidents people post in, open, merge or close.
"""

from __future__ import annotations

from notifier.domain.events import AlertEvent
from notifier.engine import grouping, lifecycle, maintenance, staff
from notifier.engine.actions import Action
from notifier.engine.context import Catalog, ChannelPolicy, ComponentInfo, Step
from notifier.engine.routing import route
from notifier.engine.settings import EngineSettings
from notifier.engine.state import EngineState

__all__ = ["ChannelPolicy", "ComponentInfo", "Engine"]


class Engine:
    def __init__(
        self,
        settings: EngineSettings,
        components: list[ComponentInfo],
        channels: dict[str, ChannelPolicy],
    ) -> None:
        self.settings = settings
        self.catalog = Catalog(components, channels)
        self.components = self.catalog.components
        self.names = self.catalog.names
        self.hidden = self.catalog.hidden
        self.channels = channels

    def _step(self, state: EngineState, now: float) -> Step:
        return Step(self.settings, self.catalog, state, now)

    def handle(self, state: EngineState, event: AlertEvent, now: float) -> list[Action]:
        """Apply one alert event; return the actions it causes."""
        step = self._step(state, now)
        if event.status == "resolved":
            group = grouping.alert_resolved(step, grouping.alert_id(event))
        else:
            routed = route(event, self.settings, set(self.components))
            if not routed.components:
                step.decide(None, "unrouted", routed.reason, alert=grouping.alert_id(event))
                return step.finish()
            group = grouping.alert_fired(step, event, routed)
        if group is not None:
            lifecycle.evaluate(step, group)
        return step.finish()

    def tick(self, state: EngineState, now: float) -> list[Action]:
        """Advance timers: confirm and resolve delays, budget flushes, maintenance, auto-publish."""
        step = self._step(state, now)
        maintenance.advance(step)
        grouping.rescore(step)
        for group in list(state.groups.values()):
            lifecycle.evaluate(step, group)
            lifecycle.auto_publish(step, group)
        return step.finish()

    def detach(self, state: EngineState, group_id: str, now: float, why: str) -> list[Action]:
        """Stop tracking a group whose incident a person closed; its alerts start afresh if they fire."""
        step = self._step(state, now)
        staff.detach(step, group_id, why)
        return step.finish()

    def note_staff(self, state: EngineState, group_id: str, status: str, now: float) -> list[Action]:
        """Staff posted in this group's incident: from now on their words close it, not the engine's."""
        step = self._step(state, now)
        staff.note_staff(step, group_id, status)
        return step.finish()

    def adopt(
        self, state: EngineState, incident_id: str, components: dict[str, str], status: str, now: float
    ) -> tuple[str, list[Action]]:
        """A person opened ``incident_id``: alerts for its components join it instead of opening another.

        A pending group (alerts that have not been posted yet) sharing a component becomes that incident;
        otherwise a new group stands for it. Returns the group id and the decisions."""
        step = self._step(state, now)
        gid = staff.adopt(step, incident_id, components, status)
        return gid, step.finish()

    def merge(self, state: EngineState, source: str, into: str, now: float) -> list[Action]:
        """Staff merged two incidents: the source group's alerts and history continue in ``into``."""
        step = self._step(state, now)
        staff.merge(step, source, into)
        return step.finish()

    def cancel_window(self, state: EngineState, window_id: str, now: float) -> list[Action]:
        """Cancel a scheduled or running window (the service announces the cancellation itself)."""
        step = self._step(state, now)
        maintenance.cancel(step, window_id)
        return step.finish()
