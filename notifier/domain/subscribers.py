"""Subscribers: who gets an update by e-mail, and the signed links that confirm, manage and end it.

Pure (stdlib only). A subscriber is an address, a scope (every component, or some) and a language,
with the times the subscription was asked for and confirmed: nothing else is stored. A sign-up that
is not confirmed is stored nowhere; its confirmation link carries it, signed.

Links carry a token ``<payload>.<mac>``: the payload is base64url JSON, the mac base64url
HMAC-SHA256 of the payload under ``subscribers.secret``, compared in constant time. A confirmation
token expires (``subscribers.confirm_hours``); unsubscribe and manage tokens do not (a mail from last
year must still unsubscribe), and they carry only the address.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

ALL = "*"  # the scope of a subscriber who wants every component
CONFIRM = "c"
MANAGE = "m"  # also the unsubscribe links: both prove only that the mail reached the address
MAX_ADDRESS = 254  # RFC 5321's path limit minus the brackets
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


@dataclass(frozen=True)
class Subscriber:
    address: str
    scope: tuple[str, ...] | str  # ALL, or component ids
    language: str
    requested_at: float
    confirmed_at: float

    def wants(self, components: Iterable[str]) -> bool:
        """Whether an update of an incident on ``components`` goes to this subscriber. An update that
        names no component (a staff broadcast) goes to everyone."""
        if self.scope == ALL:
            return True
        wanted = list(components)
        return not wanted or any(c in self.scope for c in wanted)

    def to_json(self) -> str:
        return json.dumps({"scope": self.scope if self.scope == ALL else list(self.scope),
                           "language": self.language, "requested_at": self.requested_at,
                           "confirmed_at": self.confirmed_at}, separators=(",", ":"))

    @classmethod
    def from_json(cls, address: str, raw: str | bytes) -> Subscriber:
        data = json.loads(raw)
        scope = data["scope"]
        return cls(address=address, scope=ALL if scope == ALL else tuple(scope), language=data["language"],
                   requested_at=float(data["requested_at"]), confirmed_at=float(data["confirmed_at"]))


def normalise_address(raw: str) -> str:
    """The address as we store and compare it (trimmed, the domain lowercased, IDNA as ASCII), or
    ValueError saying what is wrong with it. Deliberately strict: no quoted local parts, no comments,
    no IP literals; nothing that could smuggle a header (CR, LF) or a second recipient (, ;)."""
    value = raw.strip()
    if not value:
        raise ValueError("is empty")
    if len(value) > MAX_ADDRESS:
        raise ValueError(f"is longer than {MAX_ADDRESS} characters")
    local, sep, domain = value.rpartition("@")
    if not sep or not local or not domain:
        raise ValueError("is not an e-mail address like name@example.com")
    if len(local) > 64 or not _LOCAL.fullmatch(local):
        raise ValueError("has a part before the @ that mail servers do not accept")
    try:
        ascii_domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise ValueError("has a domain that is not a valid host name") from None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels) or labels[-1].isdigit():
        raise ValueError("has a domain that is not a valid host name")
    return f"{local}@{ascii_domain}"


def address_hash(address: str) -> str:
    """A short stable digest of an address (Message-IDs, rate-limit keys): never the address itself."""
    return hashlib.sha256(address.lower().encode()).hexdigest()[:20]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret: bytes, payload: dict[str, object]) -> str:
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    return f"{body}.{_mac(secret, body)}"


def _mac(secret: bytes, body: str) -> str:
    return _b64(hmac.new(secret, body.encode(), hashlib.sha256).digest())


class BadToken(ValueError):
    """A link that is forged, damaged, expired or for another purpose (the reason says which)."""


def verify(secret: bytes, token: str, purpose: str, now: float, max_age: float | None = None) -> dict[str, object]:
    """The token's payload, or BadToken. ``max_age`` seconds (for confirmation links) after issue."""
    body, dot, mac = token.partition(".")
    if not dot or len(token) > 4096:
        raise BadToken("the link is damaged")
    if not hmac.compare_digest(_mac(secret, body).encode(), mac.encode()):
        raise BadToken("the link is not valid")
    try:
        payload = json.loads(_unb64(body))
    except (ValueError, UnicodeDecodeError):
        raise BadToken("the link is damaged") from None
    if not isinstance(payload, dict) or payload.get("p") != purpose or not isinstance(payload.get("a"), str):
        raise BadToken("the link is for something else")
    if max_age is not None:
        issued = payload.get("t")
        if not isinstance(issued, int | float) or now - issued > max_age or issued - now > 300:
            raise BadToken("the link has expired")
    return payload


def confirm_token(secret: bytes, address: str, scope: tuple[str, ...] | str, language: str, now: float) -> str:
    return sign(secret, {"p": CONFIRM, "a": address, "s": scope if scope == ALL else list(scope),
                         "l": language, "t": int(now)})


def manage_token(secret: bytes, address: str) -> str:
    return sign(secret, {"p": MANAGE, "a": address})


# ---- webhook subscribers (a URL that gets Statuspage-style notifications) -------------------------
HOOK_CONFIRM = "hc"
HOOK_MANAGE = "hm"  # the unsubscribe link in every notification's ``meta.unsubscribe``
MAX_URL = 2048


@dataclass(frozen=True)
class WebhookSubscriber:
    """A confirmed webhook subscriber: the URL, its scope and language, the two times, and how many
    deliveries in a row it refused or failed (``subscribers.webhook_max_failures`` of them end it)."""

    url: str
    scope: tuple[str, ...] | str
    language: str
    requested_at: float
    confirmed_at: float
    failures: int = 0

    def wants(self, components: Iterable[str]) -> bool:
        return Subscriber(self.url, self.scope, self.language, self.requested_at, self.confirmed_at).wants(components)

    def to_json(self) -> str:
        return json.dumps({"scope": self.scope if self.scope == ALL else list(self.scope),
                           "language": self.language, "requested_at": self.requested_at,
                           "confirmed_at": self.confirmed_at, "failures": self.failures}, separators=(",", ":"))

    @classmethod
    def from_json(cls, url: str, raw: str | bytes) -> WebhookSubscriber:
        data = json.loads(raw)
        scope = data["scope"]
        return cls(url=url, scope=ALL if scope == ALL else tuple(scope), language=data["language"],
                   requested_at=float(data["requested_at"]), confirmed_at=float(data["confirmed_at"]),
                   failures=int(data.get("failures", 0)))


def normalise_hook_url(raw: str) -> str:
    """The receiver URL as stored (scheme and host lowercased, no fragment), or ValueError saying what
    is wrong. Only http(s), a host name or IP, no user:password (a credential in a URL ends up in logs),
    no CR/LF/space. Whether the host is public is checked separately (it needs DNS)."""
    value = raw.strip()
    if not value:
        raise ValueError("is empty")
    if len(value) > MAX_URL:
        raise ValueError(f"is longer than {MAX_URL} characters")
    if any(c in value for c in "\r\n\t ") or not value.isprintable():
        raise ValueError("contains spaces or control characters")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ValueError("is not a URL like https://hooks.example.com/status") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not contain a user name or password")
    try:
        host = parts.hostname.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise ValueError("has a host that is not a valid host name") from None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", parts.query, ""))


def hook_secret(secret: bytes, url: str) -> bytes:
    """The HMAC key that signs every request to ``url``: derived from ``subscribers.secret``, so nothing
    more is stored; the receiver learns it from the challenge, which only the URL receives."""
    return hmac.new(secret, b"webhook-subscriber\x00" + url.encode(), hashlib.sha256).hexdigest().encode()


def hook_confirm_token(secret: bytes, url: str, scope: tuple[str, ...] | str, language: str, now: float) -> str:
    return sign(secret, {"p": HOOK_CONFIRM, "a": url, "s": scope if scope == ALL else list(scope),
                         "l": language, "t": int(now)})


def hook_manage_token(secret: bytes, url: str) -> str:
    return sign(secret, {"p": HOOK_MANAGE, "a": url})


def delivery_id(update_id: str, url: str) -> str:
    """The stable id of one update's request to one receiver (the ``X-Notifier-Delivery-Id`` header):
    a resent request after a crash carries the same id, so the receiver can drop the copy."""
    return f"{update_id}.{address_hash(url)}"
