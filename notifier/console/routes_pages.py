"""The pages that only show: the dashboard, an incident's timeline and the subscriber counts."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from notifier.console import queries
from notifier.console.guards import ConsoleDep, SignedIn
from notifier.errors import NotFound
from notifier.services import subscriptions
from notifier.services.subscriptions import NotConfigured

router = APIRouter()


@router.get("/")
def dashboard(ui: ConsoleDep, session: SignedIn) -> Response:
    return ui.page("dashboard.html", session=session, refresh=ui.options.refresh_seconds,
                   **queries.dashboard(ui.app))


@router.get("/incidents/{incident_id}")
def incident(ui: ConsoleDep, session: SignedIn, incident_id: str) -> Response:
    try:
        data = queries.timeline(ui.app, incident_id)
    except NotFound as exc:
        return ui.refuse(session, 404, str(exc))
    return ui.page("incident.html", session=session, refresh=ui.options.refresh_seconds, **data)


@router.get("/subscribers")
def subscribers(ui: ConsoleDep, session: SignedIn) -> Response:
    """Confirmed subscribers per component (any role: counts only, no addresses), from the same
    service as ``GET /api/v1/subscribers/counts`` and ``notifier subscribers count``; and the webhook
    subscribers (``hook_counts``)."""
    try:
        counts, hooks = subscriptions.counts(ui.app), subscriptions.hook_counts(ui.app)
    except NotConfigured as exc:
        return ui.page("subscribers.html", status=404, session=session, counts=None, reason=str(exc))
    rows = [(c.id, c.name, c.group, counts[c.id], hooks[c.id]) for c in ui.app.settings.components if c.id in counts]
    return ui.page("subscribers.html", session=session, counts=counts, hooks=hooks, rows=rows, reason="")
