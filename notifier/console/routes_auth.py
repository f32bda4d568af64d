"""Signing in and out of the console, and its two static files."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from notifier.console.auth import LOGIN_CSRF_COOKIE, SESSION_COOKIE, SignInLimiter, token_fingerprint, tokens_match
from notifier.console.guards import AsViewer, ConsoleDep, SessionDep
from notifier.console.pages import HERE
from notifier.console.redirects import safe_next
from notifier.staff import authenticate

STATIC = {"console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8"}

router = APIRouter()


@router.get("/static/{name}")
def static(name: str) -> Response:
    if name not in STATIC:
        return Response("not found", status_code=404)
    return Response((HERE / "static" / name).read_bytes(), media_type=STATIC[name],
                    headers={"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"})


@router.get("/login")
def login_form(ui: ConsoleDep, session: SessionDep) -> Response:
    if session is not None:
        return RedirectResponse("/console/", status_code=303)
    return ui.sign_in_page()


@router.post("/login")
async def login(ui: ConsoleDep) -> Response:
    """Sign in with a staff token: rate-limited per address, the form's own double-submit CSRF check."""
    options = ui.options
    limiter = SignInLimiter(ui.app.require_redis(), ui.app.settings.redis.key_prefix,
                            options.signin_limit, options.signin_window)
    verdict = limiter.hit(ui.client_address())
    if not verdict.allowed:
        until = datetime.fromtimestamp(time.time() + verdict.retry_after, UTC).strftime("%H:%M:%S UTC")
        response = ui.sign_in_page(429, f"Too many sign-in attempts from your address. Try again in "
                                   f"{verdict.retry_after} seconds (at {until}).")
        response.headers["Retry-After"] = str(verdict.retry_after)
        return response
    form = await ui.request.form()
    if not tokens_match(ui.request.cookies.get(LOGIN_CSRF_COOKIE), str(form.get("csrf", ""))):
        return ui.sign_in_page(403, "The sign-in form expired or was not sent from this page. Please try again.")
    token = str(form.get("token", "")).strip()
    member = authenticate(ui.app.settings, token)
    if member is None:
        return ui.sign_in_page(401, "That token is not valid.")
    session = ui.sessions().create(member, time.time(), token_fingerprint(token))
    redirect = RedirectResponse(safe_next(str(form.get("next", ""))), status_code=303)
    redirect.set_cookie(SESSION_COOKIE, session.id, max_age=options.session_ttl, httponly=True,
                        samesite="lax", secure=ui.is_https(), path="/console")
    redirect.delete_cookie(LOGIN_CSRF_COOKIE, path="/console")
    return redirect


@router.post("/logout")
async def logout(ui: ConsoleDep, posted: AsViewer) -> Response:
    ui.sessions().delete(posted.session.id)
    response = RedirectResponse("/console/login?done=signed_out", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/console")
    return response
