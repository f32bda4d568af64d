"""Subscribers' use-cases: sign up (double opt-in), confirm, manage, unsubscribe; staff counts and export.

A sign-up stores nothing: it sends a confirmation mail whose signed, expiring link carries the address,
scope and language. Confirming stores the subscriber. Unsubscribing deletes the address. The public
endpoint answers a sign-up the same way whether or not the address is already subscribed (it always
sends a confirmation mail, limited per client and per address), so it tells nobody who subscribes.
"""

from __future__ import annotations

import csv
import hmac
import io
import json
from dataclasses import dataclass

from notifier.app import App
from notifier.channels.email import links
from notifier.channels.hook_target import check_target
from notifier.channels.mail import RelayConnection, compose
from notifier.channels.subscriber_hooks import post_challenge
from notifier.domain.subscribers import (
    ALL,
    CONFIRM,
    HOOK_CONFIRM,
    HOOK_MANAGE,
    MANAGE,
    BadToken,
    Subscriber,
    WebhookSubscriber,
    address_hash,
    confirm_token,
    hook_confirm_token,
    hook_secret,
    normalise_address,
    normalise_hook_url,
    verify,
)
from notifier.errors import DeliveryError, NotifierError, UsageError
from notifier.ports import SubscriberRepository
from notifier.statuspage.i18n import strings


class InvalidField(UsageError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class RateLimited(NotifierError):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many sign-ups; try again in {int(retry_after)} s")
        self.retry_after = retry_after


class Unavailable(NotifierError):
    """The relay cannot take the confirmation mail now."""


class NotConfigured(Unavailable):
    """This installation has no subscriptions (no Redis, subscribers.secret or page.subscribe_url)."""

    exit_code = 69


@dataclass(frozen=True)
class Setup:
    repo: SubscriberRepository
    secret: bytes
    subscribe_url: str


def setup(app: App) -> Setup:
    conf, page = app.settings.subscribers, app.settings.page
    if app.subscribers is None or conf.secret is None or page.subscribe_url is None:
        raise NotConfigured("subscriptions need Redis, subscribers.secret and page.subscribe_url")
    return Setup(app.subscribers, conf.secret.get_secret_value().encode(), page.subscribe_url)


def public_components(app: App) -> list[str]:
    return [c.id for c in app.settings.components if not c.hidden]


def check_choice(app: App, components: list[str] | None, language: str) -> tuple[tuple[str, ...] | str, str]:
    """The scope (ALL, or component ids) and language a form asked for, or InvalidField."""
    known = public_components(app)
    if components is None:
        scope: tuple[str, ...] | str = ALL
    else:
        unknown = [c for c in components if c not in known]
        if unknown or not components:
            raise InvalidField("components", "choose one or more of " + ", ".join(known) if not unknown
                               else f"no such component {unknown[0][:40]!r}")
        scope = tuple(sorted(set(components)))
    if language not in app.settings.page.languages:
        raise InvalidField("language", "one of " + ", ".join(app.settings.page.languages))
    return scope, language


def request(app: App, raw_address: str, components: list[str] | None, language: str, client: str) -> None:
    """A sign-up from the public form: validate, count against the limits, send the confirmation mail."""
    s = setup(app)
    try:
        address = normalise_address(raw_address)
    except ValueError as exc:
        raise InvalidField("email", str(exc)) from None
    scope, language = check_choice(app, components, language)
    conf = app.settings.subscribers
    for kind, key, limit in (("client", client, conf.per_client), ("address", address_hash(address), conf.per_address)):
        wait = s.repo.hit(kind, key, limit, conf.window_seconds)
        if wait is not None:
            raise RateLimited(wait)
    now = app.clock.timestamp()
    token = confirm_token(s.secret, address, scope, language, now)
    unsubscribe, _ = links(s.subscribe_url, s.secret, address)
    page = app.settings.page
    names = {c.id: c.name_in(language) for c in app.settings.components}
    described = ", ".join(names[c] for c in scope) if scope != ALL else strings(language)["sub_scope_all"]
    text = app.templates.render("email", "confirm", language, page=page, scope=described,
                                hours=f"{conf.confirm_hours:g}", confirm_url=f"{s.subscribe_url}/confirm?token={token}",
                                unsubscribe_url=unsubscribe)
    subject, _, body = text.partition("\n")
    message = compose(conf.relay, page.name, address, subject.strip(), body.strip() + "\n", None,
                      message_id=f"<confirm.{address_hash(address)}.{int(now)}@{conf.relay.from_address.rpartition('@')[2]}>",
                      language=language, unsubscribe_url=unsubscribe, date=now)
    try:
        with RelayConnection(conf.relay) as conn:
            conn.send(address, message)
    except DeliveryError as exc:
        raise Unavailable(f"the confirmation mail could not be sent now ({exc.reason})") from exc


def _confirmed(app: App, token: str, purpose: str) -> tuple[str, tuple[str, ...] | str, str, float, float]:
    """What a valid, unexpired confirmation token names: (address or URL, scope, language, asked, now).
    Components removed since the sign-up are dropped; none left is a BadToken."""
    s = setup(app)
    now = app.clock.timestamp()
    payload = verify(s.secret, token, purpose, now, max_age=app.settings.subscribers.confirm_hours * 3600)
    raw_scope = payload.get("s")
    scope: tuple[str, ...] | str = ALL if raw_scope == ALL else tuple(
        c for c in (raw_scope if isinstance(raw_scope, list) else []) if c in public_components(app))
    if scope == ():
        raise BadToken("the components of this link no longer exist")
    language = str(payload.get("l"))
    if language not in app.settings.page.languages:
        language = app.settings.page.language
    return str(payload["a"]), scope, language, float(payload["t"]), now  # type: ignore[arg-type]


def confirm(app: App, token: str) -> Subscriber:
    """Store the subscriber a valid, unexpired confirmation link names (again: it may change scope)."""
    address, scope, language, requested_at, now = _confirmed(app, token, CONFIRM)
    subscriber = Subscriber(address, scope, language, requested_at, now)
    setup(app).repo.save(subscriber)
    return subscriber


def address_of(app: App, token: str) -> str:
    """The address an unsubscribe/manage link was made for (those links do not expire)."""
    s = setup(app)
    return str(verify(s.secret, token, MANAGE, app.clock.timestamp())["a"])


def unsubscribe(app: App, token: str) -> bool:
    """One-click: delete the address. True when it was subscribed (the answer is the same either way)."""
    s = setup(app)
    return s.repo.delete(address_of(app, token))


def current(app: App, token: str) -> Subscriber | None:
    return setup(app).repo.get(address_of(app, token))


def manage(app: App, token: str, components: list[str] | None, language: str) -> Subscriber | None:
    """Change a subscriber's components or language; None when the address is not subscribed."""
    s = setup(app)
    existing = s.repo.get(address_of(app, token))
    if existing is None:
        return None
    scope, language = check_choice(app, components, language)
    changed = Subscriber(existing.address, scope, language, existing.requested_at, existing.confirmed_at)
    s.repo.save(changed)
    return changed


# ---- staff ---------------------------------------------------------------------------------------
def _repo(app: App) -> SubscriberRepository:
    """Staff need only the store (not the links' secret): the CLI on another host has no secret."""
    if app.subscribers is None:
        raise NotConfigured("subscribers are kept in Redis; this App has none")
    return app.subscribers


def counts(app: App) -> dict[str, int]:
    """Confirmed subscribers: ``total``, ``all`` (every component) and one count per public component
    (those who get its updates: the all-subscribers included)."""
    return _per_component(app, [s.scope for s in _repo(app).all()])


def hook_counts(app: App) -> dict[str, int]:
    """Confirmed webhook subscribers, in the shape of ``counts``."""
    return _per_component(app, [h.scope for h in _repo(app).hooks()])


def _per_component(app: App, scopes: list[tuple[str, ...] | str]) -> dict[str, int]:
    out = {"total": len(scopes), "all": sum(1 for scope in scopes if scope == ALL)}
    for component in public_components(app):
        out[component] = sum(1 for scope in scopes if scope == ALL or component in scope)
    return out


def export_csv(app: App) -> str:
    """Every confirmed subscriber as CSV: address, components (``*`` = all), language, both times."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["address", "components", "language", "requested_at", "confirmed_at"])
    for s in _repo(app).all():
        # a leading =, +, - or @ would start a formula in a spreadsheet (and local parts may start so)
        cell = "'" + s.address if s.address[0] in "=+-@" else s.address
        writer.writerow([cell, s.scope if s.scope == ALL else " ".join(s.scope), s.language,
                         int(s.requested_at), int(s.confirmed_at)])
    return buf.getvalue()


def remove(app: App, raw_address: str) -> bool:
    """Staff: forget an address. True when it was subscribed."""
    try:
        address = normalise_address(raw_address)
    except ValueError as exc:
        raise InvalidField("address", str(exc)) from None
    return _repo(app).delete(address)


# ---- webhook subscribers --------------------------------------------------------------------------
def request_hook(app: App, raw_url: str, components: list[str] | None, language: str, client: str) -> bool:
    """A webhook sign-up: validate the URL (public hosts only, unless allowed), count it against the
    limits, POST the signed challenge to it. True when the receiver echoed the challenge and is
    subscribed already; False when it must POST the challenge's ``confirm_url`` (or did not answer:
    the public answer is the same)."""
    s = setup(app)
    conf = app.settings.subscribers
    try:
        url = normalise_hook_url(raw_url)
    except ValueError as exc:
        raise InvalidField("url", str(exc)) from None
    scope, language = check_choice(app, components, language)
    try:  # after the cheap checks: this one asks DNS
        check_target(url, conf.webhook_allow_private)
    except ValueError as exc:
        raise InvalidField("url", str(exc)) from None
    for kind, key, limit in (("client", client, conf.per_client), ("hook", address_hash(url), conf.per_address)):
        wait = s.repo.hit(kind, key, limit, conf.window_seconds)
        if wait is not None:
            raise RateLimited(wait)
    now = app.clock.timestamp()
    token = hook_confirm_token(s.secret, url, scope, language, now)
    signing_key = hook_secret(s.secret, url)
    challenge = {
        "type": "subscription_challenge", "challenge": token,
        "confirm_url": f"{s.subscribe_url}/webhook/confirm?token={token}",
        "signing_secret": signing_key.decode(), "signature_header": "X-Notifier-Signature",
        "expires_in": int(conf.confirm_hours * 3600), "page": {"name": app.settings.page.name,
                                                              "url": app.settings.page.url},
    }
    answer = post_challenge(url, challenge, signing_key, conf.webhook_timeout, now)
    if answer is not None and _echoes(answer, token):
        confirm_hook(app, token)
        return True
    return False


def _echoes(answer: str, token: str) -> bool:
    text = answer.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return False
        text = str(data.get("challenge", "")) if isinstance(data, dict) else ""
    return hmac.compare_digest(text.encode(), token.encode())


def confirm_hook(app: App, token: str) -> WebhookSubscriber:
    """Store the webhook subscriber a valid, unexpired challenge names (again: it may change scope)."""
    url, scope, language, requested_at, now = _confirmed(app, token, HOOK_CONFIRM)
    hook = WebhookSubscriber(url, scope, language, requested_at, now)
    setup(app).repo.save_hook(hook)
    return hook


def unsubscribe_hook(app: App, token: str) -> bool:
    """The ``meta.unsubscribe`` link of every notification: forget the URL. True when it was there."""
    s = setup(app)
    return s.repo.delete_hook(str(verify(s.secret, token, HOOK_MANAGE, app.clock.timestamp())["a"]))


def remove_hook(app: App, raw_url: str) -> bool:
    """Staff: forget a webhook subscriber. True when it was subscribed."""
    try:
        url = normalise_hook_url(raw_url)
    except ValueError as exc:
        raise InvalidField("url", str(exc)) from None
    return _repo(app).delete_hook(url)
