"""Who may call what: per-source webhook authentication and staff bearer tokens with roles.

Webhooks: a bearer token (Alertmanager, Grafana, Kuma's extra headers) or an HMAC-SHA256 signature of
``"<timestamp>.<raw body>"`` with the source's secret, sent as ``X-Notifier-Signature: sha256=<hex>``
next to ``X-Notifier-Timestamp: <unix seconds>``; a timestamp further than ``tolerance_seconds`` from
now is rejected, so a captured request cannot be replayed later (a replay inside the window carries
the same events, which ingest de-duplicates). Every comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from fastapi import Depends, HTTPException, Request

from notifier.sources.settings import SourceSettings
from notifier.staff import StaffMember, authenticate

BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="notifier"'}
PRINCIPAL = "notifier.staff_member"
"""The key in a request's ``scope["state"]`` under which ``RequestGate`` leaves the staff member it
authenticated, so the idempotency gate and the routes' role checks reuse it instead of comparing the
token again (once per request; issue 14: the staff API's CPU)."""


def remember_principal(scope: Any, member: StaffMember) -> None:
    scope.setdefault("state", {})[PRINCIPAL] = member


def principal_of(scope: Any) -> StaffMember | None:
    """The staff member ``RequestGate`` authenticated for this request, if it did."""
    state = scope.get("state")
    member = state.get(PRINCIPAL) if isinstance(state, dict) else None
    return member if isinstance(member, StaffMember) else None


class Unauthorized(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def bearer_of(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def check_bearer(conf: SourceSettings, request: Request) -> None:
    presented = bearer_of(request)
    if presented is None:
        raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
    expected = conf.token.get_secret_value() if conf.token else ""
    if not expected or not hmac.compare_digest(expected.encode(), presented.encode()):
        raise Unauthorized("bad bearer token")


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The signature a sender puts in the signature header (``sha256=<hex>``)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def check_signature(conf: SourceSettings, request: Request, body: bytes, now: float) -> None:
    stamp = request.headers.get(conf.timestamp_header)
    given = request.headers.get(conf.signature_header)
    if not stamp or not given:
        raise Unauthorized(f"missing {conf.signature_header} or {conf.timestamp_header} header")
    try:
        when = int(stamp)
    except ValueError:
        raise Unauthorized(f"{conf.timestamp_header} must be unix seconds") from None
    if abs(now - when) > conf.tolerance_seconds:
        raise Unauthorized(f"{conf.timestamp_header} is outside the {conf.tolerance_seconds:g} s tolerance")
    secret = conf.secret.get_secret_value() if conf.secret else ""
    expected = sign(secret, stamp, body)
    if not given.startswith("sha256="):
        given = "sha256=" + given
    if not secret or not hmac.compare_digest(expected.encode(), given.strip().lower().encode()):
        raise Unauthorized("bad signature")


# --------------------------------------------------------------------------------------------------
# Staff


async def staff_member(request: Request) -> StaffMember:
    """Async: it only compares tokens, so it runs on the event loop. A plain ``def`` dependency is run in
    the thread pool, one thread hand-off per dependency per request (issue 14: the staff API's CPU).
    The member ``RequestGate`` already authenticated for this request is reused (the token is compared
    once per request); without the gate (an app assembled otherwise) the token is checked here."""
    member = principal_of(request.scope)
    if member is None:
        app: Any = request.app.state.notifier
        member = authenticate(app.settings, bearer_of(request))
    if member is None:
        raise HTTPException(401, "missing or unknown staff token", headers=BEARER_CHALLENGE)
    return member


def require(role: str) -> Any:
    """A dependency: the caller's staff identity, with at least ``role`` (else 403)."""

    async def check(member: StaffMember = Depends(staff_member)) -> StaffMember:  # noqa: B008
        if not member.can(role):
            raise HTTPException(403, f"needs the {role} role; {member.name} is a {member.role}")
        return member

    return check
