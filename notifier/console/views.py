"""The staff console: an APIRouter serving server-rendered pages under ``/console``.

Every page works without JavaScript; ``static/console.js`` only adds a live preview while typing.
Handlers parse a form, check the session, its CSRF token and the role, call the same service
functions as the CLI and the staff API, and redirect (POST-redirect-GET) or re-render with errors.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from notifier import limits
from notifier.console import forms, queries
from notifier.console.auth import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    Session,
    SessionStore,
    SignInLimiter,
    new_token,
    require_role,
    still_valid,
    token_fingerprint,
    tokens_match,
)
from notifier.console.publishing import preview_channels, submit
from notifier.errors import NotFound, NotifierError
from notifier.staff import authenticate

HERE = Path(__file__).parent
STATIC = {"console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8"}
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


def _fmt_when(value: datetime | float | None) -> str:
    if not value:
        return "—"
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def console_router(
    app_source: Any,
    *,
    session_ttl: int = 8 * 3600,
    signin_limit: int = 5,
    signin_window: int = 60,
    trust_proxy: bool = False,
    refresh_seconds: int = 10,
) -> APIRouter:
    """Build the console's router (prefix ``/console``) around a notifier ``App``.

    ``app_source`` is the App or a zero-argument callable returning it (for apps built lazily).
    ``trust_proxy``: believe ``X-Forwarded-Proto``/``X-Forwarded-For`` from a TLS-terminating proxy.
    ``refresh_seconds``: how often the dashboard and timelines refresh themselves (JavaScript; 0: never).
    """
    get_app: Callable[[], Any] = app_source if callable(app_source) else (lambda: app_source)
    env = _environment()
    router = APIRouter(prefix="/console", include_in_schema=False)

    def sessions() -> SessionStore:
        app = get_app()
        return SessionStore(app.store.redis, app.store.prefix, session_ttl)

    def is_https(request: Request) -> bool:
        if request.url.scheme == "https":
            return True
        forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
        return trust_proxy and forwarded == "https"

    def client_address(request: Request) -> str:
        if trust_proxy and request.headers.get("x-forwarded-for"):
            # the rightmost entry is the one our proxy added; the ones left of it the client can forge
            return request.headers["x-forwarded-for"].split(",")[-1].strip()
        return request.client.host if request.client else "unknown"

    def current(request: Request) -> Session | None:
        store = sessions()
        session = store.get(request.cookies.get(SESSION_COOKIE))
        if session is None:
            return None
        member = still_valid(get_app().settings, session.member, session.fingerprint)
        if member is None:  # the token was revoked: the session ends with it
            store.delete(session.id)
            return None
        return replace(session, member=member)

    def page(request: Request, name: str, status: int = 200, session: Session | None = None,
             **context: Any) -> HTMLResponse:
        app = get_app()
        html = env.get_template(name).render(
            session=session, member=session.member if session else None,
            csrf=session.csrf if session else "", page_name=app.settings.page.name,
            done=DONE_MESSAGES.get(request.query_params.get("done", "")), path=request.url.path,
            can=lambda role: require_role(session.member if session else None, role),
            component_names={c.id: c.name for c in app.settings.components}, **context,
        )
        return _html(html, status, SECURITY_HEADERS)

    def refuse(request: Request, session: Session | None, status: int, message: str) -> HTMLResponse:
        return page(request, "error.html", status=status, session=session, message=message)

    async def guarded(
        request: Request, role: str
    ) -> tuple[Session | None, dict[str, list[str]], Response | None]:
        """Session, CSRF and role checks shared by every POST; returns the form or a refusal."""
        session = current(request)
        raw = await request.form()
        form = {k: [str(v) for v in raw.getlist(k)] for k in raw}
        bad = next((k for k, vs in form.items()
                    if not (limits.valid_unicode(k) and all(limits.valid_unicode(v) for v in vs))), None)
        if bad is not None:  # nothing that cannot be shown again gets past this point
            return session, {}, refuse(request, session, 400, f"The field {limits.printable(bad)!r} is not "
                                       "valid Unicode. Type the text again.")
        if session is None:
            return None, form, refuse(request, None, 401, "Your session has ended. Sign in again.")
        if not tokens_match(session.csrf, (form.get("csrf") or [""])[0]):
            return session, form, refuse(
                request, session, 403, "This form was not sent from the console (missing or wrong CSRF "
                "token). Reload the page and try again.")
        if not require_role(session.member, role):
            return session, form, refuse(
                request, session, 403, f"You need the {role} role for this; you are signed in as "
                f"{session.member.role}.")
        return session, form, None

    def sign_in_page(request: Request, status: int = 200, error: str = "") -> HTMLResponse:
        token = new_token()
        response = page(request, "login.html", status=status, login_csrf=token, error=error,
                        next=_safe_next(request.query_params.get("next")))
        response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict",
                            secure=is_https(request), path="/console")
        return response

    @router.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in STATIC:
            return Response("not found", status_code=404)
        return Response((HERE / "static" / name).read_bytes(), media_type=STATIC[name],
                        headers={"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"})

    @router.get("/login")
    def login_form(request: Request) -> Response:
        if current(request) is not None:
            return RedirectResponse("/console/", status_code=303)
        return sign_in_page(request)

    @router.post("/login")
    async def login(request: Request) -> Response:
        app = get_app()
        limiter = SignInLimiter(app.store.redis, app.store.prefix, signin_limit, signin_window)
        verdict = limiter.hit(client_address(request))
        if not verdict.allowed:
            until = datetime.fromtimestamp(time.time() + verdict.retry_after, UTC).strftime("%H:%M:%S UTC")
            response = sign_in_page(
                request, 429, f"Too many sign-in attempts from your address. Try again in "
                f"{verdict.retry_after} seconds (at {until}).")
            response.headers["Retry-After"] = str(verdict.retry_after)
            return response
        form = await request.form()
        if not tokens_match(request.cookies.get(LOGIN_CSRF_COOKIE), str(form.get("csrf", ""))):
            return sign_in_page(request, 403, "The sign-in form expired or was not sent from this page. "
                                "Please try again.")
        member = authenticate(app.settings, str(form.get("token", "")).strip())
        if member is None:
            return sign_in_page(request, 401, "That token is not valid.")
        session = sessions().create(member, time.time(), token_fingerprint(str(form.get("token", "")).strip()))
        redirect = RedirectResponse(_safe_next(str(form.get("next", ""))), status_code=303)
        redirect.set_cookie(SESSION_COOKIE, session.id, max_age=session_ttl, httponly=True,
                            samesite="lax", secure=is_https(request), path="/console")
        redirect.delete_cookie(LOGIN_CSRF_COOKIE, path="/console")
        return redirect

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        session, _, refusal = await guarded(request, "viewer")
        if refusal is not None:
            return refusal
        assert session is not None
        sessions().delete(session.id)
        response = RedirectResponse("/console/login?done=signed_out", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/console")
        return response

    def signed_in(request: Request) -> Session | Response:
        session = current(request)
        if session is None:
            target = quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
            return RedirectResponse(f"/console/login?next={target}", status_code=303)
        return session

    @router.get("/")
    def dashboard(request: Request) -> Response:
        session = signed_in(request)
        if isinstance(session, Response):
            return session
        return page(request, "dashboard.html", session=session, refresh=refresh_seconds,
                    **queries.dashboard(get_app()))

    @router.get("/incidents/{incident_id}")
    def incident(request: Request, incident_id: str) -> Response:
        session = signed_in(request)
        if isinstance(session, Response):
            return session
        try:
            data = queries.timeline(get_app(), incident_id)
        except NotFound as exc:
            return refuse(request, session, 404, str(exc))
        return page(request, "incident.html", session=session, refresh=refresh_seconds, **data)

    def composer(request: Request, session: Session, comp: forms.Composition, errors: dict[str, str],
                 previews: list[dict[str, Any]] | None, status: int = 200) -> HTMLResponse:
        app = get_app()
        existing = _existing(app, comp)
        return page(
            request, "compose.html", status=status, session=session, comp=comp, errors=errors,
            previews=previews, existing=existing,
            open_incidents=[i for i in app.store.list_incidents(open_only=True, limit=100)
                            if i.kind in ("incident", "maintenance")],
            statuses=forms.statuses_for(comp.kind, existing.kind if existing else "incident"),
            components=queries.components(app), channels=list(app.channels.values()),
            impacts=["none", "minor", "major", "critical"], component_statuses=_COMPONENT_STATUSES,
            kinds=forms.KINDS, languages=forms.LANGUAGES,
        )

    @router.get("/compose")
    def compose_form(request: Request) -> Response:
        session = signed_in(request)
        if isinstance(session, Response):
            return session
        app = get_app()
        kind = request.query_params.get("kind", "incident")
        kind = kind if kind in forms.KINDS else "incident"
        comp = forms.Composition(kind=kind, incident_id=request.query_params.get("incident", ""),
                                 channels=list(app.channels))
        existing = _existing(app, comp)
        comp.status = (forms.statuses_for(kind, existing.kind if existing else "incident") or [""])[0]
        names = [c.name for c in app.settings.components if existing and c.id in existing.components]
        comp.body = forms.prefill(kind, names)
        return composer(request, session, comp, {}, None)

    def parse(app: Any, form: dict[str, list[str]]) -> tuple[forms.Composition, dict[str, str]]:
        incident_kind = "incident"
        wanted = (form.get("incident_id") or [""])[0]
        if wanted:
            with contextlib.suppress(NotFound):  # parse() reports the missing incident by field
                incident_kind = app.store.get_incident(wanted).kind
        return forms.parse(form, [c.id for c in app.settings.components], list(app.channels), incident_kind)

    @router.post("/preview")
    async def preview(request: Request) -> Response:
        session, form, refusal = await guarded(request, "editor")
        if refusal is not None:
            return refusal
        app = get_app()
        comp, errors = parse(app, form)
        html = env.get_template("_previews.html").render(
            previews=preview_channels(app, comp, _existing(app, comp)), errors=errors)
        return _html(html, 200, SECURITY_HEADERS)

    @router.post("/compose")
    async def compose(request: Request) -> Response:
        session, form, refusal = await guarded(request, "editor")
        if refusal is not None:
            return refusal
        assert session is not None
        app = get_app()
        comp, errors = parse(app, form)
        if comp.action == "publish" and not require_role(session.member, "publisher"):
            return refuse(request, session, 403, "Publishing needs the publisher role. Save a draft "
                          "instead; a publisher will approve it.")
        existing = _existing(app, comp)
        if comp.kind in ("update", "resolve") and existing is None and "incident_id" not in errors:
            errors["incident_id"] = f"no open incident {comp.incident_id!r}"
        if comp.action == "preview" or errors:
            previews = preview_channels(app, comp, existing) if not errors else None
            return composer(request, session, comp, errors, previews, 400 if errors else 200)
        try:
            incident_id = submit(app, comp, author=session.member.name, draft=comp.action == "draft")
        except NotifierError as exc:
            return composer(request, session, comp, {"form": str(exc)}, None, 400)
        done = "draft" if comp.action == "draft" else "published"
        return RedirectResponse(f"/console/incidents/{quote(incident_id)}?done={done}", status_code=303)

    @router.post("/drafts/approve")
    async def approve(request: Request) -> Response:
        session, form, refusal = await guarded(request, "publisher")
        if refusal is not None:
            return refusal
        assert session is not None
        from notifier.services.incidents import approve_draft

        update_id = (form.get("update_id") or [""])[0]
        try:
            approve_draft(get_app(), update_id, approver=session.member.name)
        except NotifierError as exc:
            return refuse(request, session, 400, str(exc))
        return RedirectResponse(_back(form, "approved"), status_code=303)

    @router.post("/incidents/merge")
    async def merge(request: Request) -> Response:
        """Merge the form's ``source`` incident into ``into`` (issue 13): one story, one thread."""
        session, form, refusal = await guarded(request, "publisher")
        if refusal is not None:
            return refusal
        assert session is not None
        from notifier.services.merge import merge_incidents

        source, into = ((form.get(k) or [""])[0].strip() for k in ("source", "into"))
        if not into:
            return refuse(request, session, 400, "into: give the id of the incident this one continues in")
        try:
            target = merge_incidents(get_app(), source, into, author=session.member.name)
        except NotifierError as exc:
            return refuse(request, session, 400, str(exc))
        return RedirectResponse(_back({"back": [target.id]}, "merged"), status_code=303)

    @router.post("/deliveries/retry")
    async def retry(request: Request) -> Response:
        session, form, refusal = await guarded(request, "publisher")
        if refusal is not None:
            return refusal
        from notifier.services.delivery import retry_delivery

        notice_id = (form.get("notice_id") or [""])[0]
        try:
            retry_delivery(get_app(), notice_id, force=(form.get("force") or [""])[0] == "yes")
        except NotifierError as exc:
            return refuse(request, session, 400, str(exc))
        return RedirectResponse(_back(form, "retried"), status_code=303)

    @router.post("/deliveries/mark-posted")
    async def mark_posted(request: Request) -> Response:
        session, form, refusal = await guarded(request, "publisher")
        if refusal is not None:
            return refusal
        from notifier.services import delivery

        try:
            delivery.mark_posted(get_app(), (form.get("notice_id") or [""])[0])
        except NotifierError as exc:
            return refuse(request, session, 400, str(exc))
        return RedirectResponse(_back(form, "marked"), status_code=303)

    return router


_COMPONENT_STATUSES = ["degraded_performance", "partial_outage", "major_outage", "under_maintenance",
                       "operational"]


def _existing(app: Any, comp: forms.Composition) -> Any:
    if comp.kind not in ("update", "resolve") or not comp.incident_id:
        return None
    try:
        return app.store.get_incident(comp.incident_id)
    except NotFound:
        return None


def _html(html: str, status: int, headers: dict[str, str]) -> HTMLResponse:
    """A page as UTF-8. Text stored before input was checked (a lone surrogate from an old webhook) shows
    as ? instead of failing the page every time (issue 12)."""
    return HTMLResponse(html.encode("utf-8", "replace"), status_code=status, headers=headers,
                        media_type="text/html; charset=utf-8")


def _safe_next(target: str | None) -> str:
    """Only ever redirect inside the console after sign-in (no open redirect)."""
    if target and target.startswith("/console/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/console/"


def _back(form: dict[str, list[str]], done: str) -> str:
    incident_id = (form.get("back") or [""])[0]
    if incident_id and incident_id.isalnum():
        return f"/console/incidents/{incident_id}?done={done}"
    return f"/console/?done={done}"
