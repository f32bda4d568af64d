"""The composer: the form for a new incident, update, resolution, broadcast or maintenance, its live
preview, and publishing (or saving a draft of) what it holds."""

from __future__ import annotations

import contextlib
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from notifier.console import forms, queries
from notifier.console.auth import Session, require_role
from notifier.console.guards import AsEditor, ConsoleDep, Form, SignedIn
from notifier.console.pages import TEMPLATES, Console, html_response
from notifier.console.publishing import preview_channels, submit
from notifier.errors import NotFound, NotifierError

COMPONENT_STATUSES = ["degraded_performance", "partial_outage", "major_outage", "under_maintenance",
                      "operational"]
IMPACTS = ["none", "minor", "major", "critical"]

router = APIRouter()


@router.get("/compose")
def compose_form(ui: ConsoleDep, session: SignedIn) -> Response:
    app, query = ui.app, ui.request.query_params
    kind = query.get("kind", "incident")
    kind = kind if kind in forms.KINDS else "incident"
    comp = forms.Composition(kind=kind, incident_id=query.get("incident", ""), channels=list(app.channels))
    existing = _existing(app, comp)
    comp.status = (forms.statuses_for(kind, existing.kind if existing else "incident") or [""])[0]
    names = [c.name for c in app.settings.components if existing and c.id in existing.components]
    comp.body = forms.prefill(kind, names)
    return _composer(ui, session, comp, {}, None)


@router.post("/preview")
async def preview(ui: ConsoleDep, posted: AsEditor) -> Response:
    """The live preview's fragment: each chosen channel's rendering of the form as it stands."""
    comp, errors = _parse(ui.app, posted.form)
    html = TEMPLATES.get_template("_previews.html").render(
        previews=preview_channels(ui.app, comp, _existing(ui.app, comp)), errors=errors)
    return html_response(html)


@router.post("/compose")
async def compose(ui: ConsoleDep, posted: AsEditor) -> Response:
    """Preview, publish or save a draft; errors re-render the form with a 400."""
    app, session = ui.app, posted.session
    comp, errors = _parse(app, posted.form)
    if comp.action == "publish" and not require_role(session.member, "publisher"):
        return ui.refuse(session, 403, "Publishing needs the publisher role. Save a draft instead; a "
                         "publisher will approve it.")
    existing = _existing(app, comp)
    if comp.kind in ("update", "resolve") and existing is None and "incident_id" not in errors:
        errors["incident_id"] = f"no open incident {comp.incident_id!r}"
    if comp.action == "preview" or errors:
        previews = preview_channels(app, comp, existing) if not errors else None
        return _composer(ui, session, comp, errors, previews, 400 if errors else 200)
    try:
        incident_id = submit(app, comp, author=session.member.name, draft=comp.action == "draft")
    except NotifierError as exc:
        return _composer(ui, session, comp, {"form": str(exc)}, None, 400)
    done = "draft" if comp.action == "draft" else "published"
    return RedirectResponse(f"/console/incidents/{quote(incident_id)}?done={done}", status_code=303)


def _composer(ui: Console, session: Session, comp: forms.Composition, errors: dict[str, str],
              previews: list[dict[str, Any]] | None, status: int = 200) -> HTMLResponse:
    app = ui.app
    existing = _existing(app, comp)
    return ui.page(
        "compose.html", status=status, session=session, comp=comp, errors=errors,
        previews=previews, existing=existing,
        open_incidents=[i for i in app.store.list_incidents(open_only=True, limit=100)
                        if i.kind in ("incident", "maintenance")],
        statuses=forms.statuses_for(comp.kind, existing.kind if existing else "incident"),
        components=queries.components(app), channels=list(app.channels.values()),
        impacts=IMPACTS, component_statuses=COMPONENT_STATUSES, kinds=forms.KINDS, languages=forms.LANGUAGES,
    )


def _parse(app: Any, form: Form) -> tuple[forms.Composition, dict[str, str]]:
    incident_kind = "incident"
    wanted = (form.get("incident_id") or [""])[0]
    if wanted:
        with contextlib.suppress(NotFound):  # forms.parse() reports the missing incident by field
            incident_kind = app.store.get_incident(wanted).kind
    return forms.parse(form, [c.id for c in app.settings.components], list(app.channels), incident_kind)


def _existing(app: Any, comp: forms.Composition) -> Any:
    """The incident an update or resolution continues, if it exists."""
    if comp.kind not in ("update", "resolve") or not comp.incident_id:
        return None
    try:
        return app.store.get_incident(comp.incident_id)
    except NotFound:
        return None
