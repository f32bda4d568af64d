"""What every source parser shares: the error type and small field readers that name the failing field.

A parser turns one webhook body into ``AlertEvent``s. It raises ``ParseError`` for a payload that can
never be accepted (the API answers 422 with ``field`` and ``message``); it never touches I/O.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from notifier.errors import UsageError
from notifier.limits import valid_unicode

# Alertmanager and Grafana write this for "no end yet"
ZERO_TIME = "0001-01-01T00:00:00Z"
_FRACTION = re.compile(r"\.(\d+)")
_EPOCH = re.compile(r"\d{9,11}(\.\d+)?")


class ParseError(UsageError):
    """A payload that can never be accepted; ``field`` is the JSON path of the culprit."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


def obj(data: Any, path: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ParseError(path or "(body)", "must be a JSON object")
    return data


def req(data: dict[str, Any], key: str, path: str) -> Any:
    if key not in data or data[key] is None:
        raise ParseError(_join(path, key), "required")
    return data[key]


def text(data: dict[str, Any], key: str, path: str, *, required: bool = True, default: str = "") -> str:
    value = req(data, key, path) if required else data.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ParseError(_join(path, key), "must be a string")
    if not valid_unicode(value):
        raise ParseError(_join(path, key), "not valid Unicode (a lone surrogate); send UTF-8 text")
    if required and not value.strip():
        raise ParseError(_join(path, key), "must not be empty")
    return value


def str_map(data: dict[str, Any], key: str, path: str, *, required: bool = False) -> dict[str, str]:
    value = req(data, key, path) if required else data.get(key)
    if value is None:
        return {}
    where = _join(path, key)
    if not isinstance(value, dict):
        raise ParseError(where, "must be an object of strings")
    out: dict[str, str] = {}
    for k, v in value.items():
        if isinstance(v, bool) or not isinstance(v, str | int | float):
            raise ParseError(f"{where}.{k}", "must be a string")
        if not (valid_unicode(str(k)) and valid_unicode(str(v))):
            raise ParseError(f"{where}.{str(k).encode('utf-8', 'backslashreplace').decode()}",
                             "not valid Unicode (a lone surrogate); send UTF-8 text")
        out[str(k)] = str(v)
    return out


def timestamp(value: Any, where: str, *, optional: bool = False) -> datetime | None:
    """RFC 3339 (any offset, fractions of any length) or epoch seconds -> aware UTC.

    The zero time (``0001-01-01T00:00:00Z``) means 'none'.
    """
    if value in (None, "", ZERO_TIME):
        if optional:
            return None
        raise ParseError(where, "required")
    if isinstance(value, bool):
        raise ParseError(where, "must be an RFC 3339 timestamp")
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(float(value), UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise ParseError(where, "epoch seconds out of range") from exc
    if not isinstance(value, str):
        raise ParseError(where, "must be an RFC 3339 timestamp")
    if _EPOCH.fullmatch(value.strip()):  # template languages ($DATE_POSIX, $TIMET$) only make strings
        return timestamp(float(value), where, optional=optional)
    raw = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    # Go writes nanoseconds; Python takes at most microseconds
    raw = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), raw, count=1)
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise ParseError(where, f"not an RFC 3339 timestamp: {value[:40]!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # monitors that omit the zone mean UTC
    if parsed.year <= 1:
        if optional:
            return None
        raise ParseError(where, "required")
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:  # e.g. 9999-12-31T23:59:59-01:00 lies past datetime's range in UTC
        raise ParseError(where, f"out of range: {value[:40]!r}") from exc


def status(value: Any, where: str) -> str:
    if value not in ("firing", "resolved"):
        raise ParseError(where, "must be 'firing' or 'resolved'")
    return str(value)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
