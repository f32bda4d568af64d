"""Merging two incidents into one story (issue 13): the CLI, the staff API and the console call this.

The source incident is closed with a note pointing at the target; its components join the target; and
the engine's group (its active alerts, its decision log) continues in the target's group, so alerts
for either incident's components post only into the target from now on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from notifier.engine import actions as act
from notifier.engine import texts
from notifier.errors import UsageError
from notifier.services import engine_runner, idempotent

if TYPE_CHECKING:
    from notifier.app import App
    from notifier.domain.model import Incident


def merge_incidents(app: App, source_id: str, into_id: str, *, author: str = "staff") -> Incident:
    """Merge ``source_id`` into ``into_id``; returns the target incident. Both must be open incidents.

    The merge's write (the source resolved with its note, its components added to the target, and a
    staff API ``Idempotency-Key``'s op) is one transaction, after the engine's groups were joined (which
    a second run finds already done). A repeat of a committed request answers with the target instead of
    merging (or refusing) again.
    """
    from notifier.services import incidents

    op = idempotent.current_op.get()
    if op and incidents.committed(app, op) is not None:
        return app.store.get_incident(into_id)  # the key's fingerprint pins the request: same source, same target
    if source_id == into_id:
        raise UsageError("into: an incident cannot be merged into itself; give two different incident ids")
    source, into = app.store.get_incident(source_id), app.store.get_incident(into_id)
    for label, inc in (("source", source), ("into", into)):
        if inc.kind != "incident":
            raise UsageError(f"{label}: {inc.id} is a {inc.kind}; only incidents can be merged")
        if not inc.is_open:
            raise UsageError(f"{label}: {inc.id} is already {inc.status}; only open incidents can be merged")
    lock = engine_runner.engine_lock(app, wait=5)
    if not lock.acquire():
        raise UsageError("the engine is busy; try again in a moment")
    app.extras["engine_lock"] = lock
    try:
        _merge_groups(app, source_id, into_id)
        # under the lock: the engine's next run must not take this resolution for a person closing a group
        incidents.close_into(app, source_id, into_id, body=texts.merged(into.id, {"en": into.name, **into.names}),
                             author=author)
    finally:
        engine_runner.release_lock(app, lock)
    return app.store.get_incident(into_id)


def _merge_groups(app: App, source_id: str, into_id: str) -> None:
    state = engine_runner.load_state(app)
    now = app.clock.timestamp()
    src = engine_runner.group_of(app, source_id)
    dst = engine_runner.group_of(app, into_id)
    src = src if src in state.groups else None
    dst = dst if dst in state.groups else None
    if src is None:
        return  # nothing of the engine's to carry over
    engine = engine_runner.build_engine(app)
    if dst is not None:
        actions = engine.merge(state, src, dst, now)
        engine_runner.commit_decided(app, state, actions, [])
        app.store.engine_state.unlink(src, source_id)
    else:  # the source's group now stands for the target incident
        group = state.groups[src]
        group.incident_id = into_id
        group.staff_at = now
        state.touched.add("group:" + src)
        decision = act.Decision(src, now, "merged", f"{source_id} merged into {into_id} by a person: "
                                "this group posts into the target from now on")
        engine_runner.commit_decided(app, state, [decision], [])
        app.store.engine_state.relink(src, source_id, into_id)
    engine_runner.drain_journal(app)
