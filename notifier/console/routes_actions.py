"""A publisher's buttons: approve a draft, merge two incidents, retry a delivery, mark one posted.

Each is a form on the timeline or dashboard; on success it redirects back there with a ``done`` note,
on a refusal from the service it shows the error page with a 400.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from notifier.console.guards import AsPublisher, ConsoleDep, Posted
from notifier.console.pages import Console
from notifier.console.redirects import back_to
from notifier.errors import NotifierError
from notifier.services import delivery
from notifier.services.incidents import approve_draft
from notifier.services.merge import merge_incidents

router = APIRouter()


def _field(posted_form: dict[str, list[str]], name: str) -> str:
    return (posted_form.get(name) or [""])[0]


def _then_back(ui: Console, posted: Posted, done: str, call: Callable[[], object]) -> Response:
    """Run a service call: its refusal (a NotifierError) is the error page with a 400; success goes
    back to the page the form came from, with the ``done`` note."""
    try:
        call()
    except NotifierError as exc:
        return ui.refuse(posted.session, 400, str(exc))
    return RedirectResponse(back_to(posted.form, done), status_code=303)


@router.post("/drafts/approve")
async def approve(ui: ConsoleDep, posted: AsPublisher) -> Response:
    update_id, approver = _field(posted.form, "update_id"), posted.session.member.name
    return _then_back(ui, posted, "approved", lambda: approve_draft(ui.app, update_id, approver=approver))


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
    notice_id, force = _field(posted.form, "notice_id"), _field(posted.form, "force") == "yes"
    return _then_back(ui, posted, "retried", lambda: delivery.retry_delivery(ui.app, notice_id, force=force))


@router.post("/deliveries/mark-posted")
async def mark_posted(ui: ConsoleDep, posted: AsPublisher) -> Response:
    notice_id = _field(posted.form, "notice_id")
    return _then_back(ui, posted, "marked", lambda: delivery.mark_posted(ui.app, notice_id))
