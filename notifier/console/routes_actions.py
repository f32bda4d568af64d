"""A publisher's buttons: approve a draft, merge two incidents, retry a delivery, mark one posted.

Each is a form on the timeline or dashboard; on success it redirects back there with a ``done`` note,
on a refusal from the service it shows the error page with a 400.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from notifier.console.guards import AsPublisher, ConsoleDep
from notifier.console.redirects import back_to
from notifier.errors import NotifierError
from notifier.services import delivery
from notifier.services.incidents import approve_draft
from notifier.services.merge import merge_incidents

router = APIRouter()


def _field(posted_form: dict[str, list[str]], name: str) -> str:
    return (posted_form.get(name) or [""])[0]


@router.post("/drafts/approve")
async def approve(ui: ConsoleDep, posted: AsPublisher) -> Response:
    try:
        approve_draft(ui.app, _field(posted.form, "update_id"), approver=posted.session.member.name)
    except NotifierError as exc:
        return ui.refuse(posted.session, 400, str(exc))
    return RedirectResponse(back_to(posted.form, "approved"), status_code=303)


@router.post("/incidents/merge")
async def merge(ui: ConsoleDep, posted: AsPublisher) -> Response:
    """Merge the form's ``source`` incident into ``into`` (issue 13): one story, one thread."""
    source, into = (_field(posted.form, k).strip() for k in ("source", "into"))
    if not into:
        return ui.refuse(posted.session, 400, "into: give the id of the incident this one continues in")
    try:
        target = merge_incidents(ui.app, source, into, author=posted.session.member.name)
    except NotifierError as exc:
        return ui.refuse(posted.session, 400, str(exc))
    return RedirectResponse(back_to({"back": [target.id]}, "merged"), status_code=303)


@router.post("/deliveries/retry")
async def retry(ui: ConsoleDep, posted: AsPublisher) -> Response:
    try:
        delivery.retry_delivery(ui.app, _field(posted.form, "notice_id"), force=_field(posted.form, "force") == "yes")
    except NotifierError as exc:
        return ui.refuse(posted.session, 400, str(exc))
    return RedirectResponse(back_to(posted.form, "retried"), status_code=303)


@router.post("/deliveries/mark-posted")
async def mark_posted(ui: ConsoleDep, posted: AsPublisher) -> Response:
    try:
        delivery.mark_posted(ui.app, _field(posted.form, "notice_id"))
    except NotifierError as exc:
        return ui.refuse(posted.session, 400, str(exc))
    return RedirectResponse(back_to(posted.form, "marked"), status_code=303)
