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
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from notifier.domain.events import AlertEvent
from notifier.domain.model import ComponentStatus, Impact, impact_of
from notifier.engine import flap, texts
from notifier.engine.actions import (
    Action,
    ApproveDraft,
    Decision,
    MaintenanceUpdate,
    OpenIncident,
    PostUpdate,
    ResolveIncident,
    SetComponentStatus,
)
from notifier.engine.routing import route
from notifier.engine.settings import EngineSettings
from notifier.engine.state import Draft, EngineState, Group, Window


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


def _milder(a: str, b: str) -> str:
    return a if ComponentStatus(a).severity <= ComponentStatus(b).severity else b


def _worse_state(new: dict[str, str], old: dict[str, str]) -> list[str]:
    """Components newly affected or affected more severely (an empty list: not worse)."""
    return sorted(
        c for c, s in new.items() if c not in old or ComponentStatus(s).severity > ComponentStatus(old[c]).severity
    )


class Engine:
    def __init__(
        self,
        settings: EngineSettings,
        components: list[ComponentInfo],
        channels: dict[str, ChannelPolicy],
    ) -> None:
        self.settings = settings
        self.components = {c.id: c for c in components}
        self.names = texts.Names({c.id: c.name for c in components}, {c.id: dict(c.names) for c in components})
        self.hidden = {c.id for c in components if c.hidden}
        self.channels = channels

    def _expand(self, comps: Iterable[str]) -> set[str]:
        """Components an outage of ``comps`` shows on: public ones as they are, hidden ones' ``affects``."""
        out: set[str] = set()
        for comp in comps:
            info = self.components.get(comp)
            out |= set(info.affects) if info is not None and info.hidden else {comp}
        return out

    def _public(self, comps: Iterable[str]) -> list[str]:
        return sorted(self._expand(comps))

    # ------------------------------------------------------------------------------------------ input

    def handle(self, state: EngineState, event: AlertEvent, now: float) -> list[Action]:
        """Apply one alert event; return the actions it causes."""
        out: list[Action] = []
        alert = f"{event.source}:{event.fingerprint}"
        if event.status == "resolved":
            self._resolved(state, alert, now, out)
            return self._touch(state, out)
        routed = route(event, self.settings, set(self.components))
        if not routed.components:
            out.append(Decision(None, now, "unrouted", routed.reason, alert=alert))
            return out
        group, why = self._find_group(state, event, alert, routed.components, now)
        before = self._problem_components(state)
        relapse = group.quiet_since is not None
        group.add_alert(alert, routed.components)
        state.alert_index[alert] = group.id
        for comp in routed.components:
            if comp not in group.components:
                group.components.append(comp)
        group.last_alert_at = now
        if group.firing_since is None:
            group.firing_since = now
        group.quiet_since = None
        state.touched.add("group:" + group.id)
        reason_key = why.split(":")[0]
        group.reasons[reason_key] = group.reasons.get(reason_key, 0) + 1
        group.joined += 1
        if group.joined <= self.settings.decision_detail_limit:
            summary = f" ({event.summary[:120]})" if event.summary else ""
            out.append(Decision(group.id, now, "joined", f"{why}; {routed.reason}{summary}", alert=alert))
        if relapse:
            out.append(
                Decision(
                    group.id,
                    now,
                    "relapse",
                    "alert fired again within the resolve delay: the same incident continues",
                    alert=alert,
                )
            )
        for comp in sorted(set(routed.components) | self._expand(routed.components)):
            win = state.running_maintenance(comp)
            if win is not None and win.id not in group.maintenance_ids:
                group.maintenance_ids.append(win.id)
            if win is not None and group.joined <= self.settings.decision_detail_limit:
                out.append(
                    Decision(
                        group.id,
                        now,
                        "maintenance",
                        f"{comp} is under maintenance ({win.id}): no incident for it until the window ends",
                        alert=alert,
                        maintenance=win.id,
                    )
                )
        self._transitions(state, before, now, out)
        self._evaluate(state, group, now, out)
        return self._touch(state, out)

    @staticmethod
    def _touch(state: EngineState, out: list[Action]) -> list[Action]:
        """Every group an action or decision names was changed by it: mark it for saving."""
        for action in out:
            gid = getattr(action, "group", None)
            if gid is not None and gid in state.groups:
                state.touched.add("group:" + gid)
        return out

    def tick(self, state: EngineState, now: float) -> list[Action]:
        """Advance timers: confirm and resolve delays, budget flushes, maintenance, auto-publish."""
        out: list[Action] = []
        self._maintenance(state, now, out)
        for comp in list(state.components.values()):
            if comp.changes or comp.flapping:
                before = (comp.score, len(comp.changes))
                started = flap.observe(comp, None, now, self.settings.flap)
                if (comp.score, len(comp.changes)) != before or started is not None:
                    state.touched.add("component:" + comp.id)
                if started is not None:
                    self._flap_changed(state, comp.id, started, now, out)
        for group in list(state.groups.values()):
            self._evaluate(state, group, now, out)
            self._auto_publish(state, group, now, out)
        return self._touch(state, out)

    # --------------------------------------------------------------------------------------- grouping

    def _find_group(
        self, state: EngineState, event: AlertEvent, alert: str, comps: dict[str, str], now: float
    ) -> tuple[Group, str]:
        if alert in state.alert_index:
            return state.groups[state.alert_index[alert]], "same alert: already active in this group"
        if event.group_key and event.group_key in state.keys:
            return state.groups[state.keys[event.group_key]], f"same source group key: {event.group_key}"
        mine_comps = set(comps) | self._expand(comps)
        # a person's open incident first: an alert for one of its components joins it
        ordered = sorted(state.groups.values(), key=lambda g: not g.adopted)
        for group in ordered:
            shared = sorted(mine_comps & (set(group.components) | self._expand(group.components)))
            if shared:
                self._adopt_key(state, event, group)
                if group.adopted:
                    return group, (
                        f"joined the open staff incident {group.incident_id}: same component {', '.join(shared)}"
                    )
                return group, f"same component: {', '.join(shared)} already in this group"
        if self.settings.grouping.related == "group":
            mine = {g for c in mine_comps if c in self.components and (g := self.components[c].group)}
            for group in state.groups.values():
                if now - group.last_alert_at > self.settings.grouping.window_seconds:
                    continue
                theirs = {
                    g
                    for c in set(group.components) | self._expand(group.components)
                    if c in self.components and (g := self.components[c].group)
                }
                common = sorted(mine & theirs)
                if common:
                    self._adopt_key(state, event, group)
                    return group, (
                        f"related component: same component group {', '.join(map(str, common))} "
                        f"within the {self.settings.grouping.window_seconds:g}s group window"
                    )
        gid = f"g{state.next_id}"
        state.next_id += 1
        key = event.group_key or alert
        group = Group(id=gid, key=key, created=now, last_alert_at=now)
        group.flapping = any(state.component(c).flapping for c in comps)
        state.groups[gid] = group
        state.keys[key] = gid
        return group, f"new group: no open group shares its group key or components (key {key})"

    @staticmethod
    def _adopt_key(state: EngineState, event: AlertEvent, group: Group) -> None:
        if event.group_key and event.group_key not in state.keys:
            state.keys[event.group_key] = group.id

    def _resolved(self, state: EngineState, alert: str, now: float, out: list[Action]) -> None:
        gid = state.alert_index.pop(alert, None)
        if gid is None or gid not in state.groups:
            out.append(Decision(None, now, "ignored", "resolved alert is not active in any group", alert=alert))
            return
        group = state.groups[gid]
        before = self._problem_components(state)
        group.remove_alert(alert)
        state.touched.add("group:" + gid)
        if not group.alerts:
            group.quiet_since = now
            group.firing_since = None
            out.append(
                Decision(
                    gid,
                    now,
                    "quiet",
                    f"last active alert resolved; resolving after {self.settings.resolve.seconds:g}s without a relapse",
                    alert=alert,
                )
            )
        self._transitions(state, before, now, out)
        self._evaluate(state, group, now, out)

    # ------------------------------------------------------------------------------------ flap damping

    @staticmethod
    def _problem_components(state: EngineState) -> set[str]:
        return state.problem_components()

    def _transitions(self, state: EngineState, before: set[str], now: float, out: list[Action]) -> None:
        after = self._problem_components(state)
        for comp in sorted(before ^ after):
            started = flap.observe(state.component(comp), comp in after, now, self.settings.flap)
            state.touched.add("component:" + comp)
            if started is not None:
                self._flap_changed(state, comp, started, now, out)

    def _flap_changed(self, state: EngineState, comp: str, started: bool, now: float, out: list[Action]) -> None:
        score = state.component(comp).score
        for group in state.groups.values():
            if comp not in group.components:
                continue
            flapping = any(state.component(c).flapping for c in group.components)
            if flapping == group.flapping:
                continue
            group.flapping = flapping
            state.touched.add("group:" + group.id)
            if started:
                out.append(
                    Decision(
                        group.id,
                        now,
                        "flapping",
                        f"{comp} is flapping (score {score:g}% >= {self.settings.flap.high:g}%): "
                        "one 'intermittent problems' update, then per-transition posts are "
                        "suppressed",
                    )
                )
            else:
                out.append(
                    Decision(
                        group.id,
                        now,
                        "flapping-ended",
                        f"{comp} stopped flapping (score {score:g}% < {self.settings.flap.low:g}%)",
                    )
                )

    # -------------------------------------------------------------------------------------- decisions

    def _effective(self, state: EngineState, group: Group) -> dict[str, str]:
        """What the public sees: hidden components mapped onto the ones they affect, maintenance left out."""
        out: dict[str, str] = {}
        for comp, status in group.current().items():
            info = self.components.get(comp)
            hidden = info is not None and info.hidden
            if hidden and state.running_maintenance(comp) is not None:
                continue
            targets = [(comp, status)]
            if hidden and info is not None:
                targets = [(t, _milder(caused, status)) for t, caused in info.affects.items()]
            for target, caused in targets:
                if state.running_maintenance(target) is not None:
                    continue
                if target not in out or ComponentStatus(caused).severity > ComponentStatus(out[target]).severity:
                    out[target] = caused
        return out

    def _settled(self, group: Group, effective: dict[str, str], now: float) -> bool:
        """Has the public state held for the settle window? (A state that keeps changing counts as
        settled once it has been changing for ``settle.max_wait_seconds``.)"""
        settle = self.settings.settle
        if effective != group.seen:
            if group.changed_at is None or now - group.changed_at >= settle.seconds:
                group.unsettled_since = now
            group.seen = dict(effective)
            group.changed_at = now
        if group.changed_at is None or now - group.changed_at >= settle.seconds:
            return True
        return group.unsettled_since is not None and now - group.unsettled_since >= settle.max_wait_seconds

    def _evaluate(self, state: EngineState, group: Group, now: float, out: list[Action]) -> None:
        effective = self._effective(state, group)
        settled = self._settled(group, effective, now)
        firing = group.firing_since is not None and bool(effective)
        group.ever_effective = group.ever_effective or bool(effective)
        duration = now - group.firing_since if group.firing_since is not None else 0.0
        self._sync_components(
            state, group, effective, now, out, firing and duration >= self.settings.confirm.component_status_seconds
        )
        if not group.opened:
            if group.flapping and self.settings.flap.open_incident and group.alerts and effective:
                self._open(state, group, effective, list(self.channels), now, out, intermittent=True)
            elif firing and settled:
                due = [ch for ch in self.channels if duration >= self.settings.confirm_for(ch)]
                if due or (not self.channels and duration >= self.settings.confirm.seconds):
                    self._open(state, group, effective, due, now, out)
            elif group.quiet_since is not None and now - group.quiet_since >= self.settings.resolve.seconds:
                if not group.ever_effective and group.maintenance_ids:
                    why = (
                        "every alert was for components under maintenance "
                        f"({', '.join(group.maintenance_ids)}): nothing was published"
                    )
                else:
                    why = (
                        f"problem ended before the confirm delay ({self.settings.confirm.seconds:g}s): "
                        "nothing was published"
                    )
                window = group.maintenance_ids[-1] if group.maintenance_ids else None
                out.append(Decision(group.id, now, "suppressed", why, maintenance=window))
                self._close(state, group, now, out)
            return
        if firing:
            late = [ch for ch in self.channels if ch not in group.told and duration >= self.settings.confirm_for(ch)]
            if late:
                out.append(
                    Decision(
                        group.id,
                        now,
                        "published",
                        f"told {', '.join(late)}: the problem has lasted {duration:g}s, past "
                        "this channel's confirm delay",
                    )
                )
                self._publish(
                    state,
                    group,
                    "investigating",
                    texts.opening(effective, self.names),
                    effective,
                    late,
                    now,
                    out,
                    reason="catch-up",
                    count=False,
                )
            if settled:
                self._maybe_update(state, group, effective, now, out)
        elif group.quiet_since is not None:
            quiet = now - group.quiet_since
            interval = self.settings.budget.interval_seconds
            budget_ok = group.last_public_at is None or now - group.last_public_at >= interval
            recovering = settled and not group.monitoring_sent and not group.flapping and bool(group.told)
            auto = self.settings.resolve.staff_auto_resolve_seconds
            staff_hold = group.staff_at is not None and (auto is None or quiet < auto)
            # no "recovering" post right before the resolution itself
            resolving = quiet >= self.settings.resolve.seconds and not staff_hold
            if recovering and not budget_ok and not resolving and not group.held:
                group.held = True
                out.append(
                    Decision(
                        group.id,
                        now,
                        "held",
                        f"recovery not posted yet: an improvement waits for the update budget ({interval:g}s "
                        "per update)",
                    )
                )
            if recovering and budget_ok and not resolving:
                out.append(
                    Decision(
                        group.id,
                        now,
                        "monitoring",
                        f"every alert cleared {quiet:g}s ago (settle window {self.settings.settle.seconds:g}s): "
                        f"posted 'recovering, we are watching'; resolving after {self.settings.resolve.seconds:g}s "
                        "without a relapse",
                    )
                )
                self._publish(
                    state,
                    group,
                    "monitoring",
                    texts.monitoring(self._public(group.components), self.names),
                    {},
                    list(group.told),
                    now,
                    out,
                    reason="monitoring",
                )
                group.monitoring_sent = True
            if quiet < self.settings.resolve.seconds:
                return
            if group.flapping:
                if not group.held:
                    group.held = True
                    out.append(Decision(group.id, now, "held", "resolve held: a component is still flapping"))
                return
            if staff_hold:
                if not group.staff_hold_logged:
                    group.staff_hold_logged = True
                    after = "never" if auto is None else f"after {auto:g}s without alerts"
                    out.append(
                        Decision(
                            group.id,
                            now,
                            "held",
                            "resolve left to a person: staff have posted in this incident, so their words "
                            f"close it (the engine resolves it itself {after})",
                        )
                    )
                return
            self._resolve(state, group, now, out)

    def _sync_components(
        self,
        state: EngineState,
        group: Group,
        effective: dict[str, str],
        now: float,
        out: list[Action],
        firing: bool = True,
    ) -> None:
        """The page follows each component's own alerts: ``firing`` (past the component status delay)
        sets the affected ones; a component whose alerts all cleared goes back to operational after
        ``resolve.component_seconds``, even while others of the incident are still down."""
        if firing:
            for comp, status in sorted(effective.items()):
                old = group.component_status.get(comp)
                # while flapping, hold the worst status rather than toggling the page with every transition
                if old == status or (
                    group.flapping
                    and old is not None
                    and ComponentStatus(old).severity > ComponentStatus(status).severity
                ):
                    continue
                group.component_status[comp] = status
                out.append(SetComponentStatus(comp, status, group.id))
        for comp in sorted(group.component_status):
            if comp in effective or group.flapping or state.running_maintenance(comp) is not None:
                group.comp_quiet.pop(comp, None)
                continue
            since = group.comp_quiet.setdefault(comp, now)
            if now - since >= self.settings.resolve.component_seconds:
                del group.component_status[comp]
                del group.comp_quiet[comp]
                out.append(SetComponentStatus(comp, ComponentStatus.OPERATIONAL.value, group.id))
                out.append(
                    Decision(
                        group.id,
                        now,
                        "component",
                        f"{comp} operational again on the page: its own alerts cleared {now - since:g}s ago "
                        f"(>= resolve.component_seconds {self.settings.resolve.component_seconds:g}s)",
                    )
                )

    def _open(
        self,
        state: EngineState,
        group: Group,
        effective: dict[str, str],
        channels: list[str],
        now: float,
        out: list[Action],
        intermittent: bool = False,
    ) -> None:
        group.opened = True
        self._sync_components(state, group, effective, now, out)
        impact = impact_of(effective).value
        body = (
            texts.intermittent(sorted(effective), self.names) if intermittent else texts.opening(effective, self.names)
        )
        settle = self.settings.settle.seconds
        why = (
            "component flapping"
            if intermittent
            else f"problem lasted {now - (group.firing_since or now):g}s >= confirm delay, "
            f"state unchanged for {now - (group.changed_at or now):g}s >= settle window {settle:g}s"
        )
        out.append(
            Decision(
                group.id,
                now,
                "opened",
                f"incident opened ({why}); channels now: {', '.join(channels) or 'none yet'}; "
                f"{group.joined} alert(s) so far: " + ", ".join(f"{k} x{v}" for k, v in sorted(group.reasons.items())),
            )
        )
        auto, approve = self._split(channels)
        ref = group.next_ref()
        names = texts.title(sorted(effective), self.names)
        name = names["en"]
        if auto or not approve:
            out.append(OpenIncident(group.id, ref, name, effective, impact, body, auto, names=names))
            if approve:
                out.append(
                    PostUpdate(
                        group.id,
                        group.next_ref(),
                        "investigating",
                        body,
                        effective,
                        impact,
                        approve,
                        draft=True,
                        reason="approval",
                    )
                )
        else:
            out.append(OpenIncident(group.id, ref, name, effective, impact, body, approve, draft=True, names=names))
        self._mark_told(group, auto, approve, now, out)
        group.published = {"impact": impact, "components": dict(effective)}
        group.last_public_at = now
        group.public_updates += 1
        group.intermittent_sent = intermittent
        state.touched.add("group:" + group.id)

    def _maybe_update(
        self, state: EngineState, group: Group, effective: dict[str, str], now: float, out: list[Action]
    ) -> None:
        told = list(group.told)
        if group.flapping:
            if not group.intermittent_sent and told:
                group.intermittent_sent = True
                self._publish(
                    state,
                    group,
                    "investigating",
                    texts.intermittent(sorted(effective), self.names),
                    effective,
                    told,
                    now,
                    out,
                    reason="intermittent",
                )
            elif group.published.get("components") != effective and not group.held:
                group.held = True
                out.append(
                    Decision(
                        group.id,
                        now,
                        "suppressed",
                        "component change not posted: flapping (see the intermittent update)",
                    )
                )
            return
        if group.published.get("components") == effective or not told:
            group.held = False
            return
        published = group.published.get("components") or {}
        worse_comps = _worse_state(effective, published)
        worse = bool(worse_comps) or impact_of(effective).rank > Impact(group.published.get("impact", "none")).rank
        interval = self.settings.budget.interval_seconds
        if worse or group.last_public_at is None or now - group.last_public_at >= interval:
            why = (
                f"worse: {', '.join(worse_comps) or 'impact'} newly or more affected, posted once settled"
                if worse
                else "within the update budget"
            )
            settle = now - (group.changed_at or now)
            out.append(
                Decision(group.id, now, "published", f"status change posted ({why}; state held {settle:g}s)")
            )
            recovered = [c for c in published if c not in effective]
            # the engine never claims a finding; a person's "identified" stays theirs
            status = "identified" if group.staff_status == "identified" else "investigating"
            self._publish(
                state,
                group,
                status,
                texts.change(effective, self.names, recovered),
                effective,
                told,
                now,
                out,
                reason="change",
            )
        elif not group.held:
            group.held = True
            wait = interval - (now - group.last_public_at)
            out.append(
                Decision(
                    group.id,
                    now,
                    "held",
                    f"status change held by the update budget ({interval:g}s per update; "
                    f"next post possible in {wait:g}s)",
                )
            )

    def _publish(
        self,
        state: EngineState,
        group: Group,
        status: str,
        body: dict[str, str],
        effective: dict[str, str],
        channels: list[str],
        now: float,
        out: list[Action],
        reason: str,
        count: bool = True,
    ) -> None:
        auto, approve = self._split(channels)
        impact = impact_of(effective).value
        if auto:
            out.append(PostUpdate(group.id, group.next_ref(), status, body, effective, impact, auto, reason=reason))
        if approve:
            out.append(
                PostUpdate(
                    group.id,
                    group.next_ref(),
                    status,
                    body,
                    effective,
                    impact,
                    approve,
                    draft=True,
                    reason=reason,
                )
            )
        self._mark_told(group, auto, approve, now, out)
        if count:
            group.published = {"impact": impact, "components": dict(effective)}
            group.last_public_at = now
            group.public_updates += 1
            group.held = False
            group.monitoring_sent = False
        state.touched.add("group:" + group.id)

    def _split(self, channels: list[str]) -> tuple[list[str], list[str]]:
        auto = [c for c in channels if self.channels[c].approval != "approve"]
        return auto, [c for c in channels if self.channels[c].approval == "approve"]

    def _mark_told(self, group: Group, auto: list[str], approve: list[str], now: float, out: list[Action]) -> None:
        for ch in auto:
            group.told[ch] = "posted"
        for ch in approve:
            group.told.setdefault(ch, "draft")
        if approve:
            minutes = [self.channels[c].auto_publish_after_minutes for c in approve]
            # one draft covers the approve channels; the shortest auto-publish setting wins
            deadlines = [m for m in minutes if m is not None]
            publish_at = now + 60 * min(deadlines) if deadlines else None
            ref = f"{group.id}.{group.seq}"
            group.drafts.append(Draft(ref, approve, publish_at))
            when = f"auto-publish in {min(deadlines):g} min" if deadlines else "no auto-publish"
            out.append(
                Decision(
                    group.id,
                    now,
                    "draft",
                    f"update for {', '.join(approve)} is a draft awaiting a publisher ({when})",
                )
            )

    def _auto_publish(self, state: EngineState, group: Group, now: float, out: list[Action]) -> None:
        for draft in group.drafts:
            if draft.done or draft.publish_at is None or now < draft.publish_at:
                continue
            draft.done = True
            for ch in draft.channels:
                group.told[ch] = "posted"
            state.touched.add("group:" + group.id)
            out.append(ApproveDraft(group.id, draft.ref))
            out.append(
                Decision(
                    group.id,
                    now,
                    "auto-published",
                    f"draft {draft.ref} for {', '.join(draft.channels)} published: no answer "
                    "within the auto-publish delay",
                )
            )

    def _resolve(self, state: EngineState, group: Group, now: float, out: list[Action]) -> None:
        posted = [ch for ch, how in group.told.items() if how == "posted"]
        for draft in group.drafts:
            if not draft.done:
                draft.done = True
                out.append(
                    Decision(
                        group.id,
                        now,
                        "suppressed",
                        f"draft {draft.ref} no longer auto-published: the incident resolved",
                    )
                )
        out.append(
            ResolveIncident(
                group.id, group.next_ref(), texts.resolved(self._public(group.components), self.names), posted
            )
        )
        out.append(
            Decision(
                group.id,
                now,
                "resolved",
                f"no alert for {self.settings.resolve.seconds:g}s: resolved "
                f"({group.joined} alert(s) joined in all: "
                + ", ".join(f"{k} x{v}" for k, v in sorted(group.reasons.items()))
                + ")",
            )
        )
        self._close(state, group, now, out)

    def _close(self, state: EngineState, group: Group, now: float, out: list[Action]) -> None:
        for comp in sorted(group.component_status):
            if state.running_maintenance(comp) is None:
                out.append(SetComponentStatus(comp, ComponentStatus.OPERATIONAL.value, group.id))
        del state.groups[group.id]
        for alert in group.alerts:
            state.alert_index.pop(alert, None)
        for key, gid in list(state.keys.items()):
            if gid == group.id:
                del state.keys[key]
        state.closed.append(group.id)
        state.touched.discard("group:" + group.id)

    def detach(self, state: EngineState, group_id: str, now: float, why: str) -> list[Action]:
        """Stop tracking a group whose incident a person closed; its alerts start afresh if they fire."""
        group = state.groups.get(group_id)
        if group is None:
            return []
        out: list[Action] = [
            Decision(
                group_id,
                now,
                "detached",
                f"{why}: the engine stops posting to it; alerts firing again open a new group "
                f"({len(group.alerts)} active alert(s) dropped)",
            )
        ]
        group.component_status.clear()  # the person's resolution already set the components
        self._close(state, group, now, out)
        return out

    # ------------------------------------------------------------------------------------------ staff

    def note_staff(self, state: EngineState, group_id: str, status: str, now: float) -> list[Action]:
        """Staff posted in this group's incident: from now on their words close it, not the engine's."""
        group = state.groups.get(group_id)
        if group is None:
            return []
        first = group.staff_at is None
        group.staff_at = now
        group.staff_status = status
        state.touched.add("group:" + group_id)
        if not first:
            return []
        return [
            Decision(
                group_id,
                now,
                "staff",
                f"staff posted an update ({status}): the engine keeps posting changes but leaves the incident in "
                "monitoring for a person to resolve",
            )
        ]

    def adopt(
        self, state: EngineState, incident_id: str, components: dict[str, str], status: str, now: float
    ) -> tuple[str, list[Action]]:
        """A person opened ``incident_id``: alerts for its components join it instead of opening another.

        A pending group (alerts that have not been posted yet) sharing a component becomes that incident;
        otherwise a new group stands for it. Returns the group id and the decisions."""
        comps = set(components)
        for group in state.groups.values():
            if not group.opened and comps & self._expand(group.components):
                group.opened = True
                group.adopted = True
                group.incident_id = incident_id
                group.told = {ch: "posted" for ch in self.channels}
                group.published = {"impact": impact_of(components).value, "components": dict(components)}
                group.component_status.update(components)
                group.last_public_at = now
                group.staff_at, group.staff_status = now, status
                state.touched.add("group:" + group.id)
                why = (
                    f"{incident_id} opened by a person for {', '.join(sorted(comps))}: this group's "
                    f"{len(group.alerts)} unposted alert(s) join it instead of opening a second incident"
                )
                return group.id, [Decision(group.id, now, "joined-staff", why)]
        gid = f"g{state.next_id}"
        state.next_id += 1
        group = Group(id=gid, key=f"incident:{incident_id}", created=now, last_alert_at=now)
        group.opened = group.adopted = True
        group.incident_id = incident_id
        group.told = {ch: "posted" for ch in self.channels}
        group.published = {"impact": impact_of(components).value, "components": dict(components)}
        group.component_status = dict(components)
        group.components = sorted(comps)
        group.last_public_at = now
        group.staff_at, group.staff_status = now, status
        state.groups[gid] = group
        state.keys[group.key] = gid
        state.touched.add("group:" + gid)
        why = f"{incident_id} opened by a person for {', '.join(sorted(comps)) or 'no component'}: alerts for "
        why += "these components join it"
        return gid, [Decision(gid, now, "adopted", why)]

    def merge(self, state: EngineState, source: str, into: str, now: float) -> list[Action]:
        """Staff merged two incidents: the source group's alerts and history continue in ``into``."""
        src, dst = state.groups.get(source), state.groups.get(into)
        if src is None or dst is None or src is dst:
            return []
        for alert, comps in src.alerts.items():
            dst.add_alert(alert, comps)
            state.alert_index[alert] = dst.id
        for comp in src.components:
            if comp not in dst.components:
                dst.components.append(comp)
        for reason, n in src.reasons.items():
            dst.reasons[reason] = dst.reasons.get(reason, 0) + n
        dst.joined += src.joined
        for ch, how in src.told.items():
            if dst.told.get(ch) != "posted":
                dst.told[ch] = how
        dst.component_status.update({c: s for c, s in src.component_status.items() if c not in dst.component_status})
        if dst.alerts:
            dst.quiet_since = None
            starts = [t for t in (src.firing_since, dst.firing_since) if t is not None]
            dst.firing_since = min(starts) if starts else now
        dst.last_alert_at = max(src.last_alert_at, dst.last_alert_at)
        dst.staff_at = now
        dst.staff_status = dst.staff_status or src.staff_status
        # drop the source without touching its components: they are the target's now
        src.component_status.clear()
        src.alerts.clear()
        out: list[Action] = [
            Decision(
                dst.id,
                now,
                "merged",
                f"incident of group {src.id} merged into this one by a person: {len(dst.alerts)} active alert(s), "
                f"components {', '.join(sorted(dst.components))}",
            )
        ]
        self._close(state, src, now, out)
        state.touched.add("group:" + dst.id)
        return out

    # ------------------------------------------------------------------------------------ maintenance

    def _maintenance(self, state: EngineState, now: float, out: list[Action]) -> None:
        remind = self.settings.maintenance.remind_before_minutes * 60
        for win in state.windows.values():
            if (
                win.state == "scheduled"
                and not win.reminded
                and "before" in win.announce
                and win.start - remind <= now < win.start
            ):
                win.reminded = True
                state.touched.add("window:" + win.id)
                out.append(MaintenanceUpdate(win.id, "scheduled", texts.maintenance(win.name, "before"), None))
            if win.state == "scheduled" and now >= win.start:
                win.state = "in_progress"
                state.touched.add("window:" + win.id)
                out.append(
                    MaintenanceUpdate(
                        win.id,
                        "in_progress",
                        texts.maintenance(win.name, "start"),
                        None if "start" in win.announce else [],
                        {c: ComponentStatus.UNDER_MAINTENANCE.value for c in win.components},
                    )
                )
                out.append(
                    Decision(
                        None,
                        now,
                        "maintenance",
                        f"window {win.id} started: alerts for {', '.join(win.components)} open no incidents",
                        maintenance=win.id,
                    )
                )
            if win.state == "in_progress" and now >= win.end:
                self._end_window(state, win, now, out)

    def _end_window(self, state: EngineState, win: Window, now: float, out: list[Action]) -> None:
        win.state = "completed"
        state.touched.add("window:" + win.id)
        down = self._problem_components(state)
        out.append(
            MaintenanceUpdate(
                win.id,
                "completed",
                texts.maintenance(win.name, "end"),
                None if "end" in win.announce else [],
                {c: ComponentStatus.OPERATIONAL.value for c in win.components if c not in down},
            )
        )
        for comp in win.components:
            if comp in down:
                out.append(
                    Decision(
                        None,
                        now,
                        "maintenance",
                        f"{comp} still down when window {win.id} ended: it now counts as a real problem",
                        maintenance=win.id,
                    )
                )

    def cancel_window(self, state: EngineState, window_id: str, now: float) -> list[Action]:
        """Cancel a scheduled or running window (the service announces the cancellation itself)."""
        out: list[Action] = []
        win = state.windows[window_id]
        if win.state == "in_progress":
            down = self._problem_components(state)
            for comp in win.components:
                if comp not in down:
                    out.append(SetComponentStatus(comp, ComponentStatus.OPERATIONAL.value))
        win.state = "cancelled"
        state.touched.add("window:" + win.id)
        out.append(Decision(None, now, "maintenance", f"window {win.id} cancelled", maintenance=win.id))
        return out
