"""Console sign-in: server-side sessions in Redis, per-session CSRF tokens and a sign-in rate limit.

The cookie holds only a random session id; Redis holds the staff member and the CSRF token under
``<prefix>console:session:<sha256(id)>`` (hashed, so a Redis dump does not hand out live sessions)
with an expiry. Every state-changing form carries the session's CSRF token, compared in constant time.
Before sign-in there is no session, so the sign-in form uses a double-submit cookie instead.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any

from notifier.config import Settings
from notifier.staff import ROLES, StaffMember

SESSION_COOKIE = "notifier_console"
LOGIN_CSRF_COOKIE = "notifier_console_login"


def new_token() -> str:
    """A fresh unguessable token (session ids, CSRF tokens)."""
    return secrets.token_urlsafe(32)


def tokens_match(expected: str | None, presented: str | None) -> bool:
    """Constant-time comparison; a missing or empty token never matches."""
    if not expected or not presented:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode())


def require_role(member: StaffMember | None, role: str) -> bool:
    """True when ``member`` is signed in and holds ``role`` or a stronger one."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; choose one of: {', '.join(ROLES)}")
    return member is not None and member.role in ROLES and member.can(role)


def token_fingerprint(token: str) -> str:
    """What a session remembers of the token it was opened with: enough to notice a revocation."""
    return hashlib.sha256(b"notifier-console:" + token.encode()).hexdigest()


def still_valid(settings: Settings, member: StaffMember, fingerprint: str) -> StaffMember | None:
    """The member as configured now, if the token the session was opened with is still configured.

    Removing a token from ``staff.tokens`` (and restarting) ends its sessions; a changed role applies
    at once.
    """
    found = None
    for entry in settings.staff.tokens:
        if hmac.compare_digest(token_fingerprint(entry.token.get_secret_value()), fingerprint):
            found = StaffMember(entry.name, entry.role)
    return found if found is not None and found.name == member.name else None


@dataclass(frozen=True)
class Session:
    id: str
    member: StaffMember
    csrf: str
    created_at: float
    fingerprint: str = ""


class SessionStore:
    """Sessions and sign-in attempt counters in Redis, under the store's key prefix."""

    def __init__(self, redis: Any, prefix: str, ttl_seconds: int = 8 * 3600) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl = ttl_seconds

    def _key(self, session_id: str) -> str:
        digest = hashlib.sha256(session_id.encode()).hexdigest()
        return f"{self.prefix}console:session:{digest}"

    def create(self, member: StaffMember, now: float, fingerprint: str = "") -> Session:
        session = Session(new_token(), member, new_token(), now, fingerprint)
        data = {"name": member.name, "role": member.role, "csrf": session.csrf, "created_at": now,
                "fingerprint": fingerprint}
        self.redis.set(self._key(session.id), json.dumps(data), ex=self.ttl)
        return session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id or len(session_id) > 128:
            return None
        raw = self.redis.get(self._key(session_id))
        if raw is None:
            return None
        data = json.loads(raw)
        return Session(session_id, StaffMember(data["name"], data["role"]), data["csrf"], data["created_at"],
                       data.get("fingerprint", ""))

    def delete(self, session_id: str) -> None:
        self.redis.delete(self._key(session_id))


@dataclass(frozen=True)
class Throttle:
    allowed: bool
    retry_after: int  # seconds until the window resets (0 when allowed)


class SignInLimiter:
    """Fixed-window counter per client address: at most ``limit`` attempts per ``window`` seconds."""

    def __init__(self, redis: Any, prefix: str, limit: int = 5, window: int = 60) -> None:
        self.redis = redis
        self.prefix = prefix
        self.limit = limit
        self.window = window

    def hit(self, client: str) -> Throttle:
        key = f"{self.prefix}console:signin:{client}"
        pipe = self.redis.pipeline()
        pipe.incr(key)
        pipe.expire(key, self.window, nx=True)  # the first attempt opens the window
        pipe.ttl(key)
        count, _, ttl = pipe.execute()
        if count > self.limit:
            return Throttle(False, max(int(ttl), 1))
        return Throttle(True, 0)
