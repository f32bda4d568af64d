"""webhook: POSTs each notice as JSON, signed with HMAC-SHA256, for chat-ops bridges.

Signature header (Stripe-style, so receivers can reject replays):
    X-Notifier-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" keyed with the secret>
Every request also carries ``Idempotency-Key: <notice id>``.

Reconcile: when ``status_url`` is set, ``GET <status_url>?idempotency_key=<notice id>`` answers 200
(with an optional JSON ``{"id": ..., "url": ...}``) if the receiver has it, 404 if not. Without it an
unknown outcome cannot be checked and waits for a person (``notifier deliveries retry --force``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import requests
from pydantic import SecretStr, field_validator

from notifier.channels.base import Channel, Rendering
from notifier.channels.http import ChannelSession, request_error
from notifier.config import ChannelSettings
from notifier.domain.model import Notice, Receipt, to_iso
from notifier.errors import CannotReconcile, DeliveryError, OutcomeUnknown, Permanent, Transient


class WebhookSettings(ChannelSettings):
    # A URL that is itself the credential (Slack-style incoming hooks): write it as ${ENV_VAR}; values
    # from the environment are shown as their reference by `config show` and never put in errors.
    url: str
    secret: SecretStr | None = None
    status_url: str | None = None
    headers: dict[str, SecretStr] = {}  # e.g. {X-Api-Key: ${CHATOPS_KEY}}: header values are credentials

    @field_validator("url", "status_url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and value.split("://", 1)[0].lower() not in ("http", "https"):
            raise ValueError("must be an http:// or https:// URL")  # the URL itself may be a credential
        return value


def signature_header(secret: bytes, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(secret: bytes, body: bytes, header: str, now: float, tolerance: float = 300) -> bool:
    """For receivers (and our tests): constant-time check plus a replay window."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (ValueError, KeyError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = signature_header(secret, body, timestamp)
    return hmac.compare_digest(expected.encode(), header.encode())


def classify_error(exc: requests.RequestException | None, response: requests.Response | None) -> DeliveryError:
    """The one place where requests' errors and HTTP statuses become our error tree."""
    if isinstance(exc, requests.RequestException):
        return request_error(exc)
    assert response is not None
    status = response.status_code
    retry_after = _retry_after(response)
    if status in (408, 425, 429, 503):  # the receiver (or its gateway) says it did not take it
        # Retry-After is the least wait: a receiver refusing everything must not be asked at its pace for ever
        return Transient(f"HTTP {status} from receiver", retry_after=retry_after, grows=True)
    if 300 <= status < 400:
        return Permanent(f"HTTP {status}: the receiver redirects; set channels.<name>.url to the final address")
    if status in (401, 403):
        return Permanent(f"HTTP {status}: the receiver refused our signature; check channels.<name>.secret")
    if 400 <= status < 500:
        return Permanent(f"HTTP {status} from receiver: {response.text[:200]}")
    # 500, 502, 504, ...: a gateway can time out after the backend processed the request
    return OutcomeUnknown(f"HTTP {status} from receiver; it may have processed the notice")


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class WebhookChannel(Channel):
    type_name = "webhook"
    settings_model = WebhookSettings
    settings: WebhookSettings

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.session = ChannelSession()  # reads the proxy environment once per host
        # the receiver's status_url answers exactly; without it an unknown outcome waits for a person
        self.exact_reconcile = self.settings.status_url is not None

    # Claim and fence in one write with or without status_url (issue 14: the webhook was the last of the
    # urgent path's three posts in half the updates, behind its second write). It moves no post out of
    # the safe window: with two writes a crash between them was harmless, but the one write has no such
    # moment (the rendering, which sat between them, comes before it). What a crash can hit is the time
    # from the fence's write to the request leaving, the same code either way; there an unknown outcome
    # waits for a person without status_url, as it always did.
    fuse_fence = True

    def render(self, notice: Notice) -> Rendering:
        text = self.context.templates.render(
            self.type_name, "update", self.language,
            incident=notice.incident, update=notice.update,
            text=notice.update.text(self.language, self.context.page.language),
            url=notice.page_url, marker=notice.marker,
        )
        return Rendering(parts=(text,), language=self.language)

    def payload(self, notice: Notice, rendering: Rendering) -> dict[str, Any]:
        return {
            "notice_id": notice.id,
            "marker": notice.marker,
            "text": rendering.text,
            "language": rendering.language,
            "url": notice.page_url,
            "incident": {
                "id": notice.incident.id, "name": notice.incident.name, "kind": notice.incident.kind,
                "status": notice.incident.status, "impact": notice.incident.impact.value,
                "components": notice.incident.components,
            },
            "update": {
                "id": notice.update.id, "number": notice.update.number, "status": notice.update.status,
                "body": notice.update.body, "created_at": to_iso(notice.update.created_at),
            },
        }

    def send(self, notice: Notice, rendering: Rendering) -> Receipt:
        body = json.dumps(self.payload(notice, rendering), ensure_ascii=False, sort_keys=True).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": notice.id,
                   **{k: v.get_secret_value() for k, v in self.settings.headers.items()}}
        if self.settings.secret is not None:
            secret = self.settings.secret.get_secret_value().encode()
            headers["X-Notifier-Signature"] = signature_header(secret, body, int(self.context.clock.timestamp()))
        try:
            response = self.session.post(
                self.settings.url, data=body, headers=headers, timeout=self.context.http_timeout,
                allow_redirects=False,  # a redirect would carry our headers to another host
            )
        except requests.RequestException as exc:
            raise classify_error(exc, None) from exc
        if not response.ok:
            raise classify_error(None, response)
        return self._receipt(notice, response)

    def _receipt(self, notice: Notice, response: requests.Response) -> Receipt:
        try:
            data = response.json() if response.content else {}
        except ValueError:
            data = {}
        data = data if isinstance(data, dict) else {}
        return Receipt(remote_id=str(data.get("id") or notice.id), url=str(data.get("url") or ""))

    def reconcile(self, notice: Notice, since: float | None = None) -> Receipt | None:
        if not self.settings.status_url:
            raise CannotReconcile(
                "the receiver may or may not have this notice and channels."
                f"{self.name}.status_url is not set to ask it; check the receiver, then run "
                f"`notifier deliveries retry --force {notice.id}` or `notifier deliveries mark-posted {notice.id}`"
            )
        try:
            response = self.session.get(
                self.settings.status_url, params={"idempotency_key": notice.id},
                timeout=self.context.http_timeout, allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise Transient(f"reconcile lookup failed: {exc.__class__.__name__}") from exc
        if response.status_code == 404:
            return None
        if not response.ok:
            raise Transient(f"reconcile lookup answered HTTP {response.status_code}", _retry_after(response))
        return self._receipt(notice, response)
