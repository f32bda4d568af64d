"""Lifecycle of a group: pending -> opened (investigating) -> monitoring -> resolved, and what is posted.

``evaluate`` runs after every alert and on every tick. A pending group opens once its problem has
lasted a channel's confirm delay and its public view has settled (or at once with an 'intermittent'
text when a component flaps), or closes silently when it went quiet first. An opened group posts
changes within the update budget (a worse state at once), tells late channels once their confirm
delay passes, posts 'recovering' once quiet, and resolves after the resolve delay, unless a component
still flaps or staff have posted in it (then a person resolves it). Channels that need an approval get
drafts, auto-published after their delay.
"""

from __future__ import annotations

from dataclasses import dataclass

from notifier.domain.model import ComponentStatus, Impact, impact_of
from notifier.engine import grouping, texts
from notifier.engine.actions import ApproveDraft, OpenIncident, PostUpdate, ResolveIncident, SetComponentStatus
from notifier.engine.context import Step
from notifier.engine.state import Draft, Group


@dataclass(frozen=True)
class View:
    """A group as one evaluation sees it."""

    effective: dict[str, str]  # what the public would see (grouping.effective)
    settled: bool  # the view held for the settle window
    firing: bool  # alerts are active and show on some public component
    duration: float  # how long the problem has lasted (0 when quiet)


@dataclass(frozen=True)
class Post:
    """One public update to post to ``channels`` (drafts for those that need an approval)."""

    status: str
    body: dict[str, str]
    components: dict[str, str]
    channels: list[str]
    reason: str
    count: bool = True  # counts against the update budget and becomes what was published


def _worse_state(new: dict[str, str], old: dict[str, str]) -> list[str]:
    """Components newly affected or affected more severely (an empty list: not worse)."""
    return sorted(
        c for c, s in new.items() if c not in old or ComponentStatus(s).severity > ComponentStatus(old[c]).severity
    )


def evaluate(step: Step, group: Group) -> None:
    """Decide what ``group`` does now: open, post, recover, resolve, close, or wait."""
    effective = grouping.effective(step, group)
    settled = grouping.settled(step, group, effective)
    firing = group.firing_since is not None and bool(effective)
    group.ever_effective = group.ever_effective or bool(effective)
    duration = step.now - group.firing_since if group.firing_since is not None else 0.0
    view = View(effective, settled, firing, duration)
    sync_components(step, group, effective, firing and duration >= step.settings.confirm.component_status_seconds)
    if not group.opened:
        _pending(step, group, view)
    elif firing:
        _firing(step, group, view)
    elif group.quiet_since is not None:
        _quiet(step, group, view, step.now - group.quiet_since)


# ------------------------------------------------------------------------------------------ pending


def _pending(step: Step, group: Group, view: View) -> None:
    settings, channels = step.settings, step.catalog.channels
    if group.flapping and settings.flap.open_incident and group.alerts and view.effective:
        open_incident(step, group, view.effective, list(channels), intermittent=True)
    elif view.firing and view.settled:
        due = [ch for ch in channels if view.duration >= settings.confirm_for(ch)]
        if due or (not channels and view.duration >= settings.confirm.seconds):
            open_incident(step, group, view.effective, due)
    elif group.quiet_since is not None and step.now - group.quiet_since >= settings.resolve.seconds:
        if not group.ever_effective and group.maintenance_ids:
            why = (
                "every alert was for components under maintenance "
                f"({', '.join(group.maintenance_ids)}): nothing was published"
            )
        else:
            why = f"problem ended before the confirm delay ({settings.confirm.seconds:g}s): nothing was published"
        window = group.maintenance_ids[-1] if group.maintenance_ids else None
        step.decide(group.id, "suppressed", why, maintenance=window)
        close(step, group)


def open_incident(
    step: Step, group: Group, effective: dict[str, str], channels: list[str], intermittent: bool = False
) -> None:
    """Open the group's incident on ``channels`` (a draft where they need an approval)."""
    group.opened = True
    sync_components(step, group, effective)
    names = step.catalog.names
    body = texts.intermittent(sorted(effective), names) if intermittent else texts.opening(effective, names)
    settle = step.settings.settle.seconds
    why = (
        "component flapping"
        if intermittent
        else f"problem lasted {step.now - (group.firing_since or step.now):g}s >= confirm delay, "
        f"state unchanged for {step.now - (group.changed_at or step.now):g}s >= settle window {settle:g}s"
    )
    step.decide(
        group.id,
        "opened",
        f"incident opened ({why}); channels now: {', '.join(channels) or 'none yet'}; "
        f"{group.joined} alert(s) so far: " + ", ".join(f"{k} x{v}" for k, v in sorted(group.reasons.items())),
    )
    _post_opening(step, group, effective, channels, body)
    group.intermittent_sent = intermittent


def _post_opening(
    step: Step, group: Group, effective: dict[str, str], channels: list[str], body: dict[str, str]
) -> None:
    auto, approve = step.catalog.split(channels)
    impact = impact_of(effective).value
    ref = group.next_ref()
    names = texts.title(sorted(effective), step.catalog.names)
    if auto or not approve:
        step.emit(OpenIncident(group.id, ref, names["en"], effective, impact, body, auto, names=names))
        if approve:
            step.emit(
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
        step.emit(OpenIncident(group.id, ref, names["en"], effective, impact, body, approve, draft=True, names=names))
    _mark_told(step, group, auto, approve)
    group.published = {"impact": impact, "components": dict(effective)}
    group.last_public_at = step.now
    group.public_updates += 1
    step.touch("group", group.id)


# ------------------------------------------------------------------------------------------- opened


def _firing(step: Step, group: Group, view: View) -> None:
    late = [
        ch for ch in step.catalog.channels if ch not in group.told and view.duration >= step.settings.confirm_for(ch)
    ]
    if late:
        step.decide(
            group.id,
            "published",
            f"told {', '.join(late)}: the problem has lasted {view.duration:g}s, past this channel's confirm delay",
        )
        body = texts.opening(view.effective, step.catalog.names)
        publish(step, group, Post("investigating", body, view.effective, late, "catch-up", count=False))
    if view.settled:
        _maybe_update(step, group, view.effective)


def _maybe_update(step: Step, group: Group, effective: dict[str, str]) -> None:
    told = list(group.told)
    if group.flapping:
        _flapping_update(step, group, effective, told)
        return
    if group.published.get("components") == effective or not told:
        group.held = False
        return
    published = group.published.get("components") or {}
    worse_comps = _worse_state(effective, published)
    worse = bool(worse_comps) or impact_of(effective).rank > Impact(group.published.get("impact", "none")).rank
    interval = step.settings.budget.interval_seconds
    if worse or group.last_public_at is None or step.now - group.last_public_at >= interval:
        why = (
            f"worse: {', '.join(worse_comps) or 'impact'} newly or more affected, posted once settled"
            if worse
            else "within the update budget"
        )
        settle = step.now - (group.changed_at or step.now)
        step.decide(group.id, "published", f"status change posted ({why}; state held {settle:g}s)")
        recovered = [c for c in published if c not in effective]
        # the engine never claims a finding; a person's "identified" stays theirs
        status = "identified" if group.staff_status == "identified" else "investigating"
        body = texts.change(effective, step.catalog.names, recovered)
        publish(step, group, Post(status, body, effective, told, "change"))
    elif not group.held:
        group.held = True
        wait = interval - (step.now - group.last_public_at)
        step.decide(
            group.id,
            "held",
            f"status change held by the update budget ({interval:g}s per update; next post possible in {wait:g}s)",
        )


def _flapping_update(step: Step, group: Group, effective: dict[str, str], told: list[str]) -> None:
    """While flapping: one 'intermittent problems' update, then no per-transition posts."""
    if not group.intermittent_sent and told:
        group.intermittent_sent = True
        body = texts.intermittent(sorted(effective), step.catalog.names)
        publish(step, group, Post("investigating", body, effective, told, "intermittent"))
    elif group.published.get("components") != effective and not group.held:
        group.held = True
        step.decide(group.id, "suppressed", "component change not posted: flapping (see the intermittent update)")


# -------------------------------------------------------------------------------------------- quiet


def _quiet(step: Step, group: Group, view: View, quiet: float) -> None:
    """No alert has fired for ``quiet`` seconds: post the recovery, then resolve unless something holds it."""
    settings = step.settings
    auto = settings.resolve.staff_auto_resolve_seconds
    staff_hold = group.staff_at is not None and (auto is None or quiet < auto)
    # no "recovering" post right before the resolution itself
    resolving = quiet >= settings.resolve.seconds and not staff_hold
    recovering = view.settled and not group.monitoring_sent and not group.flapping and bool(group.told)
    if recovering and not resolving:
        _recovering(step, group, quiet)
    if quiet < settings.resolve.seconds:
        return
    if group.flapping:
        if not group.held:
            group.held = True
            step.decide(group.id, "held", "resolve held: a component is still flapping")
        return
    if staff_hold:
        if not group.staff_hold_logged:
            group.staff_hold_logged = True
            after = "never" if auto is None else f"after {auto:g}s without alerts"
            step.decide(
                group.id,
                "held",
                "resolve left to a person: staff have posted in this incident, so their words "
                f"close it (the engine resolves it itself {after})",
            )
        return
    resolve(step, group)


def _recovering(step: Step, group: Group, quiet: float) -> None:
    """Every alert cleared: post 'recovering, we are watching' once the update budget allows."""
    settings = step.settings
    interval = settings.budget.interval_seconds
    if group.last_public_at is not None and step.now - group.last_public_at < interval:
        if not group.held:
            group.held = True
            step.decide(
                group.id,
                "held",
                f"recovery not posted yet: an improvement waits for the update budget ({interval:g}s per update)",
            )
        return
    step.decide(
        group.id,
        "monitoring",
        f"every alert cleared {quiet:g}s ago (settle window {settings.settle.seconds:g}s): "
        f"posted 'recovering, we are watching'; resolving after {settings.resolve.seconds:g}s "
        "without a relapse",
    )
    body = texts.monitoring(step.catalog.public(group.components), step.catalog.names)
    publish(step, group, Post("monitoring", body, {}, list(group.told), "monitoring"))
    group.monitoring_sent = True


# ------------------------------------------------------------------------------------------ posting


def sync_components(step: Step, group: Group, effective: dict[str, str], firing: bool = True) -> None:
    """The page follows each component's own alerts: ``firing`` (past the component status delay)
    sets the affected ones; a component whose alerts all cleared goes back to operational after
    ``resolve.component_seconds``, even while others of the incident are still down."""
    if firing:
        for comp, status in sorted(effective.items()):
            old = group.component_status.get(comp)
            # while flapping, hold the worst status rather than toggling the page with every transition
            if old == status or (
                group.flapping and old is not None and ComponentStatus(old).severity > ComponentStatus(status).severity
            ):
                continue
            group.component_status[comp] = status
            step.emit(SetComponentStatus(comp, status, group.id))
    delay = step.settings.resolve.component_seconds
    for comp in sorted(group.component_status):
        if comp in effective or group.flapping or step.state.running_maintenance(comp) is not None:
            group.comp_quiet.pop(comp, None)
            continue
        since = group.comp_quiet.setdefault(comp, step.now)
        if step.now - since >= delay:
            del group.component_status[comp]
            del group.comp_quiet[comp]
            step.emit(SetComponentStatus(comp, ComponentStatus.OPERATIONAL.value, group.id))
            step.decide(
                group.id,
                "component",
                f"{comp} operational again on the page: its own alerts cleared {step.now - since:g}s ago "
                f"(>= resolve.component_seconds {delay:g}s)",
            )


def publish(step: Step, group: Group, post: Post) -> None:
    """Post one update: at once where a channel posts on its own, as a draft where it needs an approval."""
    auto, approve = step.catalog.split(post.channels)
    impact = impact_of(post.components).value
    for channels, draft in ((auto, False), (approve, True)):
        if channels:
            ref = group.next_ref()
            step.emit(
                PostUpdate(
                    group.id,
                    ref,
                    post.status,
                    post.body,
                    post.components,
                    impact,
                    channels,
                    draft=draft,
                    reason=post.reason,
                )
            )
    _mark_told(step, group, auto, approve)
    if post.count:
        group.published = {"impact": impact, "components": dict(post.components)}
        group.last_public_at = step.now
        group.public_updates += 1
        group.held = False
        group.monitoring_sent = False
    step.touch("group", group.id)


def _mark_told(step: Step, group: Group, auto: list[str], approve: list[str]) -> None:
    for ch in auto:
        group.told[ch] = "posted"
    for ch in approve:
        group.told.setdefault(ch, "draft")
    if not approve:
        return
    minutes = [step.catalog.channels[c].auto_publish_after_minutes for c in approve]
    # one draft covers the approve channels; the shortest auto-publish setting wins
    deadlines = [m for m in minutes if m is not None]
    publish_at = step.now + 60 * min(deadlines) if deadlines else None
    group.drafts.append(Draft(f"{group.id}.{group.seq}", approve, publish_at))
    when = f"auto-publish in {min(deadlines):g} min" if deadlines else "no auto-publish"
    step.decide(group.id, "draft", f"update for {', '.join(approve)} is a draft awaiting a publisher ({when})")


def auto_publish(step: Step, group: Group) -> None:
    """Publish the drafts whose auto-publish delay has passed without an answer."""
    for draft in group.drafts:
        if draft.done or draft.publish_at is None or step.now < draft.publish_at:
            continue
        draft.done = True
        for ch in draft.channels:
            group.told[ch] = "posted"
        step.touch("group", group.id)
        step.emit(ApproveDraft(group.id, draft.ref))
        step.decide(
            group.id,
            "auto-published",
            f"draft {draft.ref} for {', '.join(draft.channels)} published: no answer within the auto-publish delay",
        )


# ------------------------------------------------------------------------------------------- ending


def resolve(step: Step, group: Group) -> None:
    """Resolve the group's incident on every channel told of it, and stop tracking the group."""
    posted = [ch for ch, how in group.told.items() if how == "posted"]
    for draft in group.drafts:
        if not draft.done:
            draft.done = True
            step.decide(group.id, "suppressed", f"draft {draft.ref} no longer auto-published: the incident resolved")
    body = texts.resolved(step.catalog.public(group.components), step.catalog.names)
    step.emit(ResolveIncident(group.id, group.next_ref(), body, posted))
    step.decide(
        group.id,
        "resolved",
        f"no alert for {step.settings.resolve.seconds:g}s: resolved "
        f"({group.joined} alert(s) joined in all: "
        + ", ".join(f"{k} x{v}" for k, v in sorted(group.reasons.items()))
        + ")",
    )
    close(step, group)


def close(step: Step, group: Group) -> None:
    """Forget the group: its components back to operational (unless under maintenance), its keys freed."""
    state = step.state
    for comp in sorted(group.component_status):
        if state.running_maintenance(comp) is None:
            step.emit(SetComponentStatus(comp, ComponentStatus.OPERATIONAL.value, group.id))
    del state.groups[group.id]
    for alert in group.alerts:
        state.alert_index.pop(alert, None)
    for key, gid in list(state.keys.items()):
        if gid == group.id:
            del state.keys[key]
    state.closed.append(group.id)
    state.touched.discard("group:" + group.id)
