"""What people do to the engine's incidents: post in one, open one, merge two, or close one.

Once staff have posted in a group's incident the engine keeps posting changes but leaves the resolve
to a person (``resolve.staff_auto_resolve_seconds`` aside; see ``lifecycle``). An incident a person
opened is adopted as a group so that alerts for its components join it; a closed one is detached.
"""

from __future__ import annotations

from notifier.domain.model import impact_of
from notifier.engine import lifecycle
from notifier.engine.context import Step
from notifier.engine.state import Group


def note_staff(step: Step, group_id: str, status: str) -> None:
    """Staff posted in this group's incident: from now on their words close it, not the engine's."""
    group = step.state.groups.get(group_id)
    if group is None:
        return
    first = group.staff_at is None
    group.staff_at = step.now
    group.staff_status = status
    step.touch("group", group_id)
    if first:
        step.decide(
            group_id,
            "staff",
            f"staff posted an update ({status}): the engine keeps posting changes but leaves the incident in "
            "monitoring for a person to resolve",
        )


def detach(step: Step, group_id: str, why: str) -> None:
    """Stop tracking a group whose incident a person closed; its alerts start afresh if they fire."""
    group = step.state.groups.get(group_id)
    if group is None:
        return
    step.decide(
        group_id,
        "detached",
        f"{why}: the engine stops posting to it; alerts firing again open a new group "
        f"({len(group.alerts)} active alert(s) dropped)",
    )
    group.component_status.clear()  # the person's resolution already set the components
    lifecycle.close(step, group)


def adopt(step: Step, incident_id: str, components: dict[str, str], status: str) -> str:
    """A person opened ``incident_id``: alerts for its components join it instead of opening another.

    A pending group (alerts that have not been posted yet) sharing a component becomes that incident;
    otherwise a new group stands for it. Returns the group id."""
    state, comps = step.state, set(components)
    for group in state.groups.values():
        if not group.opened and comps & step.catalog.expand(group.components):
            _take_over(step, group, incident_id, components, status)
            why = (
                f"{incident_id} opened by a person for {', '.join(sorted(comps))}: this group's "
                f"{len(group.alerts)} unposted alert(s) join it instead of opening a second incident"
            )
            step.decide(group.id, "joined-staff", why)
            return group.id
    gid = f"g{state.next_id}"
    state.next_id += 1
    group = Group(id=gid, key=f"incident:{incident_id}", created=step.now, last_alert_at=step.now)
    group.components = sorted(comps)
    state.groups[gid] = group
    state.keys[group.key] = gid
    _take_over(step, group, incident_id, components, status)
    why = f"{incident_id} opened by a person for {', '.join(sorted(comps)) or 'no component'}: alerts for "
    why += "these components join it"
    step.decide(gid, "adopted", why)
    return gid


def _take_over(step: Step, group: Group, incident_id: str, components: dict[str, str], status: str) -> None:
    """Make ``group`` stand for the person's incident: already public everywhere, held for staff."""
    group.opened = group.adopted = True
    group.incident_id = incident_id
    group.told = {ch: "posted" for ch in step.catalog.channels}
    group.published = {"impact": impact_of(components).value, "components": dict(components)}
    group.component_status.update(components)
    group.last_public_at = step.now
    group.staff_at, group.staff_status = step.now, status
    step.touch("group", group.id)


def merge(step: Step, source: str, into: str) -> None:
    """Staff merged two incidents: the source group's alerts and history continue in ``into``."""
    src, dst = step.state.groups.get(source), step.state.groups.get(into)
    if src is None or dst is None or src is dst:
        return
    _absorb(step, src, dst)
    # drop the source without touching its components: they are the target's now
    src.component_status.clear()
    src.alerts.clear()
    step.decide(
        dst.id,
        "merged",
        f"incident of group {src.id} merged into this one by a person: {len(dst.alerts)} active alert(s), "
        f"components {', '.join(sorted(dst.components))}",
    )
    lifecycle.close(step, src)
    step.touch("group", dst.id)


def _absorb(step: Step, src: Group, dst: Group) -> None:
    for alert, comps in src.alerts.items():
        dst.add_alert(alert, comps)
        step.state.alert_index[alert] = dst.id
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
        dst.firing_since = min(starts) if starts else step.now
    dst.last_alert_at = max(src.last_alert_at, dst.last_alert_at)
    dst.staff_at = step.now
    dst.staff_status = dst.staff_status or src.staff_status
