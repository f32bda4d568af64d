"""The public subscriber endpoints, for the status page's sign-up form and the links in every mail.

``POST /subscribe`` takes the page's plain form (no JavaScript, another origin: a top-level form
navigation needs no CORS) and answers with a small page in the form's language. Every route here is
public, so each is limited per client (and a sign-up also per address), bodies over 4 KiB get a 413,
and only ``application/x-www-form-urlencoded`` is read. Links from mails open a page with a button
(``GET``); only the ``POST`` changes anything, so a mail scanner that fetches links confirms nothing.
``POST /subscribe/unsubscribe?token=...`` is RFC 8058's one-click unsubscribe.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import jinja2
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from notifier.domain.subscribers import ALL, BadToken
from notifier.services import subscriptions
from notifier.services.subscriptions import InvalidField, NotConfigured, RateLimited, Unavailable
from notifier.statuspage.i18n import STRINGS, strings

MAX_FORM = 4096
router = APIRouter(tags=["subscribers"], include_in_schema=True)

PAGE = jinja2.Environment(autoescape=True).from_string("""<!doctype html>
<html lang="{{ lang }}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{{ heading }} – {{ page.name }}</title></head>
<body><main>
<h1>{{ heading }}</h1>
{% if message %}<p id="message"{% if field %} data-field="{{ field }}"{% endif %}>{{ message }}</p>{% endif %}
{% if action %}<form method="post" action="{{ action }}">
<input type="hidden" name="token" value="{{ token }}">
{% if components %}
<p><label><input type="radio" name="scope" value="all"{% if all %} checked{% endif %}> {{ w.sub_all }}</label></p>
<p><label><input type="radio" name="scope" value="some"{% if not all %} checked{% endif %}> {{ w.sub_only }}</label></p>
<ul>{% for id, name in components %}<li><label><input type="checkbox" name="components" value="{{ id }}"
{%- if id in chosen %} checked{% endif %}> {{ name }}</label></li>{% endfor %}</ul>
<p><label>{{ w.language }} <select name="language">{% for code in languages %}<option value="{{ code }}"
{%- if code == chosen_lang %} selected{% endif %}>{{ code }}</option>{% endfor %}</select></label></p>
{% endif %}
<button type="submit">{{ button }}</button></form>{% endif %}
<p><a href="{{ page.url }}">{{ w.back }}</a></p>
</main></body></html>""")


def _page(app: Any, lang: str, status: int, heading: str, message: str = "", **extra: Any) -> HTMLResponse:
    lang = lang if lang in STRINGS else "en"
    body = PAGE.render(lang=lang, page=app.settings.page, heading=heading, message=message, w=strings(lang),
                       action=extra.pop("action", None), **extra)
    headers = {"Content-Security-Policy": "default-src 'none'; form-action 'self'; base-uri 'none'; "
                                          "frame-ancestors 'none'",
               "Cache-Control": "no-store", "Referrer-Policy": "no-referrer", **extra.pop("headers", {})}
    return HTMLResponse(body, status_code=status, headers=headers)


async def _form(request: Request) -> dict[str, list[str]] | None:
    body = await request.body()
    if len(body) > MAX_FORM:
        return None
    try:
        return parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=64)
    except (UnicodeDecodeError, ValueError):
        return {}


def _one(form: dict[str, list[str]], name: str, default: str = "") -> str:
    return (form.get(name) or [default])[0]


def _scope(form: dict[str, list[str]]) -> list[str] | None:
    if _one(form, "scope", "all") == "all" and "components" not in form:
        return None
    return None if _one(form, "scope") == "all" else form.get("components", [])


def _lang_of(app: Any, form: dict[str, list[str]]) -> str:
    lang = _one(form, "language", app.settings.page.language)
    return lang if lang in app.settings.page.languages else app.settings.page.language


async def _guard(request: Request, lang: str) -> HTMLResponse | None:
    """Every public route: a per-client limit (five times the sign-up limit, for the mail links)."""
    app = request.app.state.notifier
    conf = app.settings.subscribers
    try:
        repo = subscriptions.setup(app).repo
    except NotConfigured:  # like a webhook source that is not listed: there is nothing here
        return _page(app, lang, 404, strings(lang)["sub_unavailable"])
    client = request.client.host if request.client else "-"
    wait = await run_in_threadpool(repo.hit, "public", client, conf.per_client * 5, conf.window_seconds)
    if wait is not None:
        return _page(app, lang, 429, strings(lang)["sub_limited"], headers={"Retry-After": str(int(wait))})
    return None


def _problem(app: Any, lang: str, exc: Exception) -> HTMLResponse:
    w = strings(lang)
    if isinstance(exc, InvalidField):
        return _page(app, lang, 422, w["sub_invalid"], str(exc), field=exc.field)
    if isinstance(exc, RateLimited):
        return _page(app, lang, 429, w["sub_limited"], headers={"Retry-After": str(int(exc.retry_after))})
    if isinstance(exc, BadToken):
        return _page(app, lang, 400, w["sub_bad_link"], str(exc))
    if isinstance(exc, NotConfigured):
        return _page(app, lang, 404, w["sub_unavailable"])
    return _page(app, lang, 503, w["sub_unavailable"], headers={"Retry-After": "60"})


async def _sign_up(request: Request, action: Any, field: str, heading: str, done: str) -> HTMLResponse:
    """A sign-up form: ``action(app, form[field], scope, language, client)``, answered in the form's
    language the same way whatever became of it (so it tells nobody who subscribes)."""
    app = request.app.state.notifier
    lang = app.settings.page.language
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return _page(app, lang, 415, strings(lang)["sub_invalid"],
                     "send the form as application/x-www-form-urlencoded")
    form = await _form(request)
    if form is None:
        return _page(app, lang, 413, strings(lang)["sub_invalid"], f"form over {MAX_FORM} bytes")
    lang = _lang_of(app, form)
    blocked = await _guard(request, lang)
    if blocked is not None:
        return blocked
    client = request.client.host if request.client else "-"
    try:
        await run_in_threadpool(action, app, _one(form, field), _scope(form),
                                _one(form, "language", app.settings.page.language), client)
    except (InvalidField, RateLimited, Unavailable) as exc:
        return _problem(app, lang, exc)
    w = strings(lang)
    return _page(app, lang, 200, w[heading], w[done])


@router.post("/subscribe", response_class=HTMLResponse, summary="Public: sign up for e-mail updates (a form post)")
async def subscribe(request: Request) -> HTMLResponse:
    return await _sign_up(request, subscriptions.request, "email", "sub_check_mail", "sub_sent")


def _token_page(name: str, button: str) -> Any:
    async def show(request: Request, token: str = "") -> HTMLResponse:
        app = request.app.state.notifier
        lang = app.settings.page.language
        blocked = await _guard(request, lang)
        if blocked is not None:
            return blocked
        w = strings(lang)
        extra: dict[str, Any] = {}
        if name == "manage":
            try:
                current = await run_in_threadpool(subscriptions.current, app, token)
            except BadToken as exc:
                return _problem(app, lang, exc)
            if current is None:
                return _page(app, lang, 404, w["sub_manage"], w["sub_not_subscribed"])
            lang = current.language
            w = strings(lang)
            extra = {"components": [(c.id, c.name_in(lang)) for c in app.settings.components if not c.hidden],
                     "all": current.scope == ALL, "chosen": () if current.scope == ALL else current.scope,
                     "languages": app.settings.page.languages, "chosen_lang": current.language}
        return _page(app, lang, 200, w["sub_" + button], action=f"{app.settings.page.subscribe_url}/{name}",
                     token=token, button=w["sub_" + button], **extra)

    return show


async def _token_from(request: Request) -> tuple[str, dict[str, list[str]] | None]:
    form = await _form(request)
    token = request.query_params.get("token") or (_one(form, "token") if form else "")
    return token, form


async def _token_action(request: Request, action: Any, heading: str, done: str) -> HTMLResponse:
    """A POST that carries a link's token (query or form) and calls ``action(app, token)``; the answer
    is in the subscriber's language when ``action`` returns a subscriber, else the page's."""
    app = request.app.state.notifier
    lang = app.settings.page.language
    token, form = await _token_from(request)
    if form is None:
        return _page(app, lang, 413, "413", f"form over {MAX_FORM} bytes")
    blocked = await _guard(request, lang)
    if blocked is not None:
        return blocked
    try:
        result = await run_in_threadpool(action, app, token)
    except (BadToken, Unavailable) as exc:
        return _problem(app, lang, exc)
    lang = getattr(result, "language", lang)
    w = strings(lang)
    return _page(app, lang, 200, w[heading], w[done])


@router.post("/subscribe/confirm", response_class=HTMLResponse, summary="Public: confirm a sign-up")
async def confirm(request: Request) -> HTMLResponse:
    return await _token_action(request, subscriptions.confirm, "sub_confirm", "sub_confirmed")


@router.post("/subscribe/unsubscribe", response_class=HTMLResponse,
             summary="Public: one-click unsubscribe (RFC 8058): the address is deleted")
async def unsubscribe(request: Request) -> HTMLResponse:
    return await _token_action(request, subscriptions.unsubscribe, "sub_unsubscribe", "sub_unsubscribed")


@router.post("/subscribe/manage", response_class=HTMLResponse, summary="Public: change components or language")
async def manage(request: Request) -> HTMLResponse:
    app = request.app.state.notifier
    token, form = await _token_from(request)
    if form is None:
        return _page(app, app.settings.page.language, 413, "413", f"form over {MAX_FORM} bytes")
    lang = _lang_of(app, form)
    blocked = await _guard(request, lang)
    if blocked is not None:
        return blocked
    try:
        changed = await run_in_threadpool(subscriptions.manage, app, token, _scope(form),
                                          _one(form, "language", app.settings.page.language))
    except (BadToken, InvalidField, Unavailable) as exc:
        return _problem(app, lang, exc)
    w = strings(lang)
    return _page(app, lang, 200 if changed else 404, w["sub_manage"],
                 w["sub_saved"] if changed else w["sub_not_subscribed"])


@router.post("/subscribe/webhook", response_class=HTMLResponse,
             summary="Public: subscribe a URL to Statuspage-style webhooks (a form post; a signed challenge follows)")
async def subscribe_webhook(request: Request) -> HTMLResponse:
    # the same answer whether the receiver confirmed at once, will confirm later, or never answered
    return await _sign_up(request, subscriptions.request_hook, "url", "sub_confirm", "sub_hook_sent")


@router.post("/subscribe/webhook/confirm", response_class=HTMLResponse,
             summary="Public: the receiver confirms its subscription (the challenge's confirm_url)")
async def confirm_webhook(request: Request) -> HTMLResponse:
    return await _token_action(request, subscriptions.confirm_hook, "sub_confirm", "sub_hook_confirmed")


@router.post("/subscribe/webhook/unsubscribe", response_class=HTMLResponse,
             summary="Public: end a webhook subscription (every notification's meta.unsubscribe)")
async def unsubscribe_webhook(request: Request) -> HTMLResponse:
    return await _token_action(request, subscriptions.unsubscribe_hook, "sub_unsubscribe", "sub_hook_unsubscribed")


router.add_api_route("/subscribe/confirm", _token_page("confirm", "confirm"), methods=["GET"],
                     response_class=HTMLResponse, summary="Public: the confirmation link's page (a button)")
router.add_api_route("/subscribe/unsubscribe", _token_page("unsubscribe", "unsubscribe"), methods=["GET"],
                     response_class=HTMLResponse, summary="Public: the unsubscribe link's page (a button)")
router.add_api_route("/subscribe/manage", _token_page("manage", "manage"), methods=["GET"],
                     response_class=HTMLResponse, summary="Public: the manage link's page (a form)")
