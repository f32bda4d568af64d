"""The checks in front of the console's routes, as FastAPI dependencies.

A page (GET) needs a session: ``signed_in`` gives it, or sends the browser to the sign-in form. A form
(POST) goes through one chain, in this order, each step refusing with its own page:

1. ``posted_form``: the session (if any) and the submitted fields; a field that is not valid Unicode
   is a 400 (nothing that cannot be shown again gets further);
2. ``csrf_checked_form``: no session is a 401; a missing or wrong CSRF token a 403;
3. ``needs_role(role)``: a member without ``role`` (or a stronger one) is a 403.

A dependency refuses by raising ``Refused`` with the page to send; ``mount`` registers the handler
that sends it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response

from notifier import limits
from notifier.console.auth import SESSION_COOKIE, Session, require_role, still_valid, tokens_match
from notifier.console.pages import Console, console
from notifier.staff import ROLES

Form = dict[str, list[str]]


class Refused(Exception):
    """A guard's answer instead of the route's: an error page or a redirect to sign in."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


async def send_refusal(request: Request, exc: Exception) -> Response:
    """The exception handler for ``Refused``: send the page the guard chose."""
    assert isinstance(exc, Refused)
    return exc.response


ConsoleDep = Annotated[Console, Depends(console)]


def current_session(ui: ConsoleDep) -> Session | None:
    """The session the cookie names, with the member as configured now; a revoked token ends it."""
    store = ui.sessions()
    session = store.get(ui.request.cookies.get(SESSION_COOKIE))
    if session is None:
        return None
    member = still_valid(ui.app.settings, session.member, session.fingerprint)
    if member is None:  # the token was revoked: the session ends with it
        store.delete(session.id)
        return None
    return replace(session, member=member)


SessionDep = Annotated[Session | None, Depends(current_session)]


def signed_in(ui: ConsoleDep, session: SessionDep) -> Session:
    """The session of a page's viewer; without one, a redirect to sign in and come back here."""
    if session is None:
        url = ui.request.url
        target = quote(url.path + (f"?{url.query}" if url.query else ""))
        raise Refused(RedirectResponse(f"/console/login?next={target}", status_code=303))
    return session


@dataclass(frozen=True)
class Posted:
    """A submitted form that passed the guards: who sent it and the fields (each a list of values)."""

    session: Session
    form: Form


async def posted_form(ui: ConsoleDep, session: SessionDep) -> tuple[Session | None, Form]:
    """The session (if any) and the form, every field valid Unicode."""
    raw = await ui.request.form()
    form = {k: [str(v) for v in raw.getlist(k)] for k in raw}
    bad = next((k for k, vs in form.items()
                if not (limits.valid_unicode(k) and all(limits.valid_unicode(v) for v in vs))), None)
    if bad is not None:  # nothing that cannot be shown again gets past this point
        raise Refused(ui.refuse(session, 400, f"The field {limits.printable(bad)!r} is not valid Unicode. "
                                "Type the text again."))
    return session, form


async def csrf_checked_form(
    ui: ConsoleDep, submitted: Annotated[tuple[Session | None, Form], Depends(posted_form)]
) -> Posted:
    """The form, sent by a signed-in member from a console page (its CSRF token matches the session's)."""
    session, form = submitted
    if session is None:
        raise Refused(ui.refuse(None, 401, "Your session has ended. Sign in again."))
    if not tokens_match(session.csrf, (form.get("csrf") or [""])[0]):
        raise Refused(ui.refuse(session, 403, "This form was not sent from the console (missing or wrong "
                                "CSRF token). Reload the page and try again."))
    return Posted(session, form)


def needs_role(role: str) -> Callable[[Console, Posted], Awaitable[Posted]]:
    """A dependency: the CSRF-checked form of a member holding ``role`` (or a stronger one)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; choose one of: {', '.join(ROLES)}")

    async def guard(ui: ConsoleDep, posted: Annotated[Posted, Depends(csrf_checked_form)]) -> Posted:
        if not require_role(posted.session.member, role):
            raise Refused(ui.refuse(posted.session, 403, f"You need the {role} role for this; you are "
                                    f"signed in as {posted.session.member.role}."))
        return posted

    return guard


SignedIn = Annotated[Session, Depends(signed_in)]
AsViewer = Annotated[Posted, Depends(needs_role("viewer"))]
AsEditor = Annotated[Posted, Depends(needs_role("editor"))]
AsPublisher = Annotated[Posted, Depends(needs_role("publisher"))]
