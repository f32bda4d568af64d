"""Grouping: which group (one future incident) an alert belongs to, and what the public would see of it.

An alert joins, in this order: the group it is already active in; the group its source's group key
names; a group sharing a component (a person's open incident first); with ``grouping.related: group``
a group of the same component group that fired within ``grouping.window_seconds``; else a new group.

What a group shows (``effective``) is its alerts' worst status per component, hidden components mapped
onto the public ones they affect, components under maintenance left out. That view must hold for the
settle window before it is posted (``settled``). Flap damping watches each component's transitions
between problem and no problem (``transitions``, ``rescore``) and marks the groups it touches.
"""

from __future__ import annotations

from notifier.domain.events import AlertEvent
from notifier.domain.model import ComponentStatus
from notifier.engine import flap, maintenance
from notifier.engine.context import Step
from notifier.engine.routing import Routed
from notifier.engine.state import Group


def alert_id(event: AlertEvent) -> str:
    return f"{event.source}:{event.fingerprint}"


def alert_fired(step: Step, event: AlertEvent, routed: Routed) -> Group:
    """Put a firing, routed alert into its group and return the group (not yet evaluated)."""
    alert = alert_id(event)
    group, why = find_group(step, event, routed.components)
    before = step.state.problem_components()
    relapse = group.quiet_since is not None
    _join(step, group, alert, routed.components)
    reason_key = why.split(":")[0]
    group.reasons[reason_key] = group.reasons.get(reason_key, 0) + 1
    group.joined += 1
    if group.joined <= step.settings.decision_detail_limit:
        summary = f" ({event.summary[:120]})" if event.summary else ""
        step.decide(group.id, "joined", f"{why}; {routed.reason}{summary}", alert=alert)
    if relapse:
        step.decide(
            group.id,
            "relapse",
            "alert fired again within the resolve delay: the same incident continues",
            alert=alert,
        )
    maintenance.note_alert(step, group, routed.components, alert)
    transitions(step, before)
    return group


def _join(step: Step, group: Group, alert: str, comps: dict[str, str]) -> None:
    group.add_alert(alert, comps)
    step.state.alert_index[alert] = group.id
    for comp in comps:
        if comp not in group.components:
            group.components.append(comp)
    group.last_alert_at = step.now
    if group.firing_since is None:
        group.firing_since = step.now
    group.quiet_since = None
    step.touch("group", group.id)


def alert_resolved(step: Step, alert: str) -> Group | None:
    """Take a resolved alert out of its group; return the group, None when the alert was not active."""
    state = step.state
    gid = state.alert_index.pop(alert, None)
    if gid is None or gid not in state.groups:
        step.decide(None, "ignored", "resolved alert is not active in any group", alert=alert)
        return None
    group = state.groups[gid]
    before = state.problem_components()
    group.remove_alert(alert)
    step.touch("group", gid)
    if not group.alerts:
        group.quiet_since = step.now
        group.firing_since = None
        step.decide(
            gid,
            "quiet",
            f"last active alert resolved; resolving after {step.settings.resolve.seconds:g}s without a relapse",
            alert=alert,
        )
    transitions(step, before)
    return group


# ------------------------------------------------------------------------------------- finding a group


def find_group(step: Step, event: AlertEvent, comps: dict[str, str]) -> tuple[Group, str]:
    """The group an alert for ``comps`` joins, and why (the reason's text before ':' is counted)."""
    state = step.state
    alert = alert_id(event)
    if alert in state.alert_index:
        return state.groups[state.alert_index[alert]], "same alert: already active in this group"
    if event.group_key and event.group_key in state.keys:
        return state.groups[state.keys[event.group_key]], f"same source group key: {event.group_key}"
    found = _by_component(step, event, comps)
    if found is None and step.settings.grouping.related == "group":
        found = _by_related(step, event, comps)
    return found or _new_group(step, event, comps)


def _by_component(step: Step, event: AlertEvent, comps: dict[str, str]) -> tuple[Group, str] | None:
    mine = set(comps) | step.catalog.expand(comps)
    # a person's open incident first: an alert for one of its components joins it
    for group in sorted(step.state.groups.values(), key=lambda g: not g.adopted):
        shared = sorted(mine & (set(group.components) | step.catalog.expand(group.components)))
        if not shared:
            continue
        _adopt_key(step, event, group)
        if group.adopted:
            return group, f"joined the open staff incident {group.incident_id}: same component {', '.join(shared)}"
        return group, f"same component: {', '.join(shared)} already in this group"
    return None


def _by_related(step: Step, event: AlertEvent, comps: dict[str, str]) -> tuple[Group, str] | None:
    catalog, window = step.catalog, step.settings.grouping.window_seconds
    mine = catalog.component_groups(set(comps) | catalog.expand(comps))
    for group in step.state.groups.values():
        if step.now - group.last_alert_at > window:
            continue
        theirs = catalog.component_groups(set(group.components) | catalog.expand(group.components))
        common = sorted(mine & theirs)
        if common:
            _adopt_key(step, event, group)
            return group, (
                f"related component: same component group {', '.join(map(str, common))} "
                f"within the {window:g}s group window"
            )
    return None


def _new_group(step: Step, event: AlertEvent, comps: dict[str, str]) -> tuple[Group, str]:
    state = step.state
    gid = f"g{state.next_id}"
    state.next_id += 1
    key = event.group_key or alert_id(event)
    group = Group(id=gid, key=key, created=step.now, last_alert_at=step.now)
    group.flapping = any(state.component(c).flapping for c in comps)
    state.groups[gid] = group
    state.keys[key] = gid
    return group, f"new group: no open group shares its group key or components (key {key})"


def _adopt_key(step: Step, event: AlertEvent, group: Group) -> None:
    if event.group_key and event.group_key not in step.state.keys:
        step.state.keys[event.group_key] = group.id


# ------------------------------------------------------------------------------------- flap damping


def transitions(step: Step, before: set[str]) -> None:
    """Feed flap detection every component that changed between problem and no problem."""
    state = step.state
    after = state.problem_components()
    for comp in sorted(before ^ after):
        started = flap.observe(state.component(comp), comp in after, step.now, step.settings.flap)
        step.touch("component", comp)
        if started is not None:
            flap_changed(step, comp, started)


def rescore(step: Step) -> None:
    """On a tick: let old changes age out of each component's flap score."""
    for comp in list(step.state.components.values()):
        if comp.changes or comp.flapping:
            before = (comp.score, len(comp.changes))
            started = flap.observe(comp, None, step.now, step.settings.flap)
            if (comp.score, len(comp.changes)) != before or started is not None:
                step.touch("component", comp.id)
            if started is not None:
                flap_changed(step, comp.id, started)


def flap_changed(step: Step, comp: str, started: bool) -> None:
    """``comp`` started or stopped flapping: update every group it is in."""
    state, flap_settings = step.state, step.settings.flap
    score = state.component(comp).score
    for group in state.groups.values():
        if comp not in group.components:
            continue
        flapping = any(state.component(c).flapping for c in group.components)
        if flapping == group.flapping:
            continue
        group.flapping = flapping
        step.touch("group", group.id)
        if started:
            step.decide(
                group.id,
                "flapping",
                f"{comp} is flapping (score {score:g}% >= {flap_settings.high:g}%): "
                "one 'intermittent problems' update, then per-transition posts are "
                "suppressed",
            )
        else:
            step.decide(
                group.id,
                "flapping-ended",
                f"{comp} stopped flapping (score {score:g}% < {flap_settings.low:g}%)",
            )


# ---------------------------------------------------------------------------------- the public view


def _milder(a: str, b: str) -> str:
    return a if ComponentStatus(a).severity <= ComponentStatus(b).severity else b


def effective(step: Step, group: Group) -> dict[str, str]:
    """What the public sees: hidden components mapped onto the ones they affect, maintenance left out."""
    state = step.state
    out: dict[str, str] = {}
    for comp, status in group.current().items():
        info = step.catalog.components.get(comp)
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


def settled(step: Step, group: Group, view: dict[str, str]) -> bool:
    """Has the public state held for the settle window? (A state that keeps changing counts as
    settled once it has been changing for ``settle.max_wait_seconds``.)"""
    settle, now = step.settings.settle, step.now
    if view != group.seen:
        if group.changed_at is None or now - group.changed_at >= settle.seconds:
            group.unsettled_since = now
        group.seen = dict(view)
        group.changed_at = now
    if group.changed_at is None or now - group.changed_at >= settle.seconds:
        return True
    return group.unsettled_since is not None and now - group.unsettled_since >= settle.max_wait_seconds
