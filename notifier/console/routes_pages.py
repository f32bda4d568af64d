"""The pages that only show: the dashboard and an incident's timeline."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from notifier.console import queries
from notifier.console.guards import ConsoleDep, SignedIn
from notifier.errors import NotFound

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
