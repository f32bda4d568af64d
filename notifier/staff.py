"""Staff identities and roles, shared by the staff API, the console and the CLI.

Roles are ordered: a ``publisher`` may do all an ``editor`` may (draft), who may do all a ``viewer``
may (read). Tokens are compared in constant time against every configured token, so the time taken
does not reveal which, or how much of one, matched.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from notifier.config import Settings

ROLES = ("viewer", "editor", "publisher")


@dataclass(frozen=True)
class StaffMember:
    name: str
    role: str

    def can(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


def authenticate(settings: Settings, presented: str | None) -> StaffMember | None:
    """The staff member whose token equals ``presented``, or None."""
    if not presented:
        return None
    found = None
    given = presented.encode()
    for entry in settings.staff.tokens:
        if hmac.compare_digest(entry.token.get_secret_value().encode(), given):
            found = StaffMember(entry.name, entry.role)  # keep looping: constant work per call
    return found
