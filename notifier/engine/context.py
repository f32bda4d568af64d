"""What one step of the engine works with, so that no function needs a long parameter list.

``Catalog`` is fixed when the engine is built: the components (with their hidden ones and what those
affect), their names per language, and each channel's approval policy. ``Step`` is made anew for
every call into the engine: the clock reading, the settings, the catalog, the state being changed and
the actions (decisions included) being collected, in order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from notifier.engine import texts
from notifier.engine.actions import Action, Decision
from notifier.engine.settings import EngineSettings
from notifier.engine.state import EngineState


@dataclass(frozen=True)
class ChannelPolicy:
    approval: str = "auto"  # auto | approve
    auto_publish_after_minutes: float | None = None


@dataclass(frozen=True)
class ComponentInfo:
    id: str
    name: str
    group: str | None = None
    names: dict[str, str] = field(default_factory=dict)  # language -> name
    hidden: bool = False  # internal: never shown or named; see ``affects``
    affects: dict[str, str] = field(default_factory=dict)  # public component -> status an outage causes


class Catalog:
    """The installation's components and channels as the engine sees them."""

    def __init__(self, components: list[ComponentInfo], channels: dict[str, ChannelPolicy]) -> None:
        self.components = {c.id: c for c in components}
        self.names = texts.Names({c.id: c.name for c in components}, {c.id: dict(c.names) for c in components})
        self.hidden = {c.id for c in components if c.hidden}
        self.channels = channels

    def expand(self, comps: Iterable[str]) -> set[str]:
        """Components an outage of ``comps`` shows on: public ones as they are, hidden ones' ``affects``."""
        out: set[str] = set()
        for comp in comps:
            info = self.components.get(comp)
            out |= set(info.affects) if info is not None and info.hidden else {comp}
        return out

    def public(self, comps: Iterable[str]) -> list[str]:
        return sorted(self.expand(comps))

    def component_groups(self, comps: Iterable[str]) -> set[str]:
        """The configured component groups ``comps`` (and what they show on) belong to."""
        return {g for c in comps if c in self.components and (g := self.components[c].group)}

    def split(self, channels: list[str]) -> tuple[list[str], list[str]]:
        """``channels`` parted into those that post at once and those that need an approval."""
        auto = [c for c in channels if self.channels[c].approval != "approve"]
        return auto, [c for c in channels if self.channels[c].approval == "approve"]


@dataclass
class Step:
    """One call into the engine: what it reads and what it collects."""

    settings: EngineSettings
    catalog: Catalog
    state: EngineState
    now: float
    out: list[Action] = field(default_factory=list)

    def emit(self, action: Action) -> None:
        self.out.append(action)

    def decide(
        self, group: str | None, kind: str, message: str, alert: str | None = None, maintenance: str | None = None
    ) -> None:
        """Log one decision, stamped with this step's time."""
        self.out.append(Decision(group, self.now, kind, message, alert=alert, maintenance=maintenance))

    def touch(self, kind: str, ident: str) -> None:
        """Mark a group, component or window as changed, for the caller to save."""
        self.state.touched.add(f"{kind}:{ident}")

    def finish(self) -> list[Action]:
        """Every group an action or decision names was changed by it: mark it for saving."""
        for action in self.out:
            gid = getattr(action, "group", None)
            if gid is not None and gid in self.state.groups:
                self.touch("group", gid)
        return self.out
