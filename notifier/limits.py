"""Input limits, stated once, and the one check every text passes on its way in.

The staff API, the console, the CLI and the webhook sources all read these numbers, and docs/api.md
lists them. Every text that enters must be valid Unicode (encodable as UTF-8): a lone surrogate such
as ``"\\udc80"`` (which JSON's ``\\u`` escapes and ``surrogateescape`` argv can carry) is refused with
the field's name, so no stored text can break a page, a feed or a terminal later.
"""

from __future__ import annotations

from typing import Any

MAX_BODY_BYTES = 1024 * 1024  # one request body, declared or streamed, read by the route or not
MAX_TEXT = 5000  # one message body, per language
MAX_NAME = 200  # an incident's, maintenance's or broadcast's title
MAX_COMPONENTS = 100  # components named in one write
MAX_LANGUAGES = 10  # languages in one message body
MAX_CHANNELS = 50  # channels named in one write
MAX_ID = 100  # a path parameter (incident, update or notice id)
MAX_HEADER_COUNT = 100  # request headers (uvicorn)
MAX_HEADER_BYTES = 16 * 1024  # one request's headers in total (uvicorn's h11 limit)


class InvalidText(ValueError):
    """A text that is not valid Unicode; ``field`` is where it was found."""

    def __init__(self, field: str) -> None:
        self.field = field
        super().__init__(f"{field}: not valid Unicode (a lone surrogate or undecodable bytes); send UTF-8 text")


def valid_unicode(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_text(value: str, field: str) -> str:
    """``value`` unchanged, or ``InvalidText`` naming ``field``."""
    if not valid_unicode(value):
        raise InvalidText(field)
    return value


def first_invalid(data: Any, path: str = "") -> str | None:
    """The path (``alerts.0.annotations.summary``) of the first invalid text in parsed JSON, or None.

    Keys count as texts too (their path ends in the key, shown with its bad characters escaped).
    """
    if isinstance(data, str):
        return None if valid_unicode(data) else (path or "(body)")
    if isinstance(data, dict):
        for key, value in data.items():
            name = str(key)
            where = f"{path}.{_printable(name)}" if path else _printable(name)
            if not valid_unicode(name):
                return where
            found = first_invalid(value, where)
            if found:
                return found
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found = first_invalid(value, f"{path}.{i}" if path else str(i))
            if found:
                return found
    return None


def printable(value: str) -> str:
    """``value`` with anything UTF-8 cannot carry escaped (``\\udc80``): safe to put in any answer."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


_printable = printable
