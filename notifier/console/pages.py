"""How the console answers: one request's ``Console`` (the wired App, the options, the page renderer).

Pages are Jinja templates rendered with autoescape and sent with ``SECURITY_HEADERS``. The App is the
one the API app put on ``request.app.state.notifier``; the options are the ones ``mount`` put on
``request.app.state.console``. Routes get their ``Console`` through the ``console`` dependency.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from notifier.console import forms, queries
from notifier.console.auth import LOGIN_CSRF_COOKIE, Session, SessionStore, new_token, require_role
from notifier.console.redirects import safe_next

HERE = Path(__file__).parent
SECURITY_HEADERS = {
    # No inline script or style anywhere, so user text can never become code even if escaping failed.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
DONE_MESSAGES = {  # fixed texts chosen by a key in the redirect URL: nothing the user typed is reflected
    "published": "Published. Deliveries are on their way.",
    "draft": "Saved as a draft. A publisher must approve it before anything is posted.",
    "approved": "Draft approved and published.",
    "retried": "Delivery queued again.",
    "marked": "Marked as posted.",
    "merged": "Merged: the other incident is closed with a note pointing here.",
    "signed_out": "You are signed out.",
}


@dataclass(frozen=True)
class ConsoleOptions:
    """What an installation may tune (see docs/console.md)."""

    session_ttl: int = 8 * 3600  # seconds a session lives (and the cookie's max-age)
    signin_limit: int = 5  # sign-in attempts per client address per window
    signin_window: int = 60  # the rate-limit window in seconds
    trust_proxy: bool = False  # believe X-Forwarded-Proto/-For from a TLS-terminating proxy
    refresh_seconds: int = 10  # how often the dashboard and timelines refresh themselves (0: never)


def _fmt_when(value: datetime | float | None) -> str:
    if not value:
        return "—"
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(HERE / "templates")),
        autoescape=True,  # every page is HTML and shows text typed by people: always escape
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _fmt_when
    env.filters["label"] = lambda value: str(value).replace("_", " ").capitalize()
    env.globals["state_labels"] = queries.STATE_LABELS
    env.globals["kind_labels"] = forms.KIND_LABELS
    return env


TEMPLATES = _environment()


def html_response(html: str, status: int = 200) -> HTMLResponse:
    """A page as UTF-8 with the security headers. Text stored before input was checked (a lone
    surrogate from an old webhook) shows as ? instead of failing the page every time (issue 12)."""
    return HTMLResponse(html.encode("utf-8", "replace"), status_code=status, headers=SECURITY_HEADERS,
                        media_type="text/html; charset=utf-8")


@dataclass(frozen=True)
class Console:
    """One request as the console sees it: the wired App, the installation's options, the renderer."""

    request: Request
    app: Any  # notifier.bootstrap.App
    options: ConsoleOptions

    def sessions(self) -> SessionStore:
        """The sessions, in the App's Redis under its key prefix."""
        return SessionStore(self.app.require_redis(), self.app.settings.redis.key_prefix, self.options.session_ttl)

    def is_https(self) -> bool:
        """Whether the browser talks TLS to us (directly, or to a trusted proxy)."""
        if self.request.url.scheme == "https":
            return True
        forwarded = self.request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
        return self.options.trust_proxy and forwarded == "https"

    def client_address(self) -> str:
        """The address sign-in attempts are counted against."""
        headers = self.request.headers
        if self.options.trust_proxy and headers.get("x-forwarded-for"):
            # the rightmost entry is the one our proxy added; the ones left of it the client can forge
            return headers["x-forwarded-for"].split(",")[-1].strip()
        return self.request.client.host if self.request.client else "unknown"

    def page(self, name: str, status: int = 200, session: Session | None = None, **context: Any) -> HTMLResponse:
        """Render the template ``name`` with what every page shows (who is signed in, the CSRF token)."""
        settings = self.app.settings
        html = TEMPLATES.get_template(name).render(
            session=session, member=session.member if session else None,
            csrf=session.csrf if session else "", page_name=settings.page.name,
            done=DONE_MESSAGES.get(self.request.query_params.get("done", "")), path=self.request.url.path,
            can=lambda role: require_role(session.member if session else None, role),
            component_names={c.id: c.name for c in settings.components}, **context,
        )
        return html_response(html, status)

    def refuse(self, session: Session | None, status: int, message: str) -> HTMLResponse:
        """The error page with ``message``."""
        return self.page("error.html", status=status, session=session, message=message)

    def sign_in_page(self, status: int = 200, error: str = "") -> HTMLResponse:
        """The sign-in form, with a fresh double-submit CSRF cookie (there is no session yet)."""
        token = new_token()
        response = self.page("login.html", status=status, login_csrf=token, error=error,
                             next=safe_next(self.request.query_params.get("next")))
        response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict",
                            secure=self.is_https(), path="/console")
        return response


def console(request: Request) -> Console:
    """FastAPI dependency: this request's ``Console``, from the state of the app it runs in."""
    state = request.app.state
    return Console(request, state.notifier, getattr(state, "console", None) or ConsoleOptions())
