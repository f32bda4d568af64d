"""The parts of error mapping every HTTP channel shares; each channel's ``classify_error`` maps the
API-specific answers (its error codes, rate limits, credentials) and hands the rest to these.

The rule throughout: retry blind only what provably did not take effect. A write that failed after
the request may have arrived (a 5xx, a dropped connection, a timeout) is unknown and gets reconciled.
"""

from __future__ import annotations

import requests

from notifier.channels.http import request_error
from notifier.errors import DeliveryError, OutcomeUnknown, Transient


def never_sent(exc: BaseException) -> bool:
    """True only when the request cannot have reached the server (so it did not take effect)."""
    return isinstance(exc, requests.RequestException) and isinstance(request_error(exc), Transient)


def server_error(service: str, status: int, writing: bool, where: str = "") -> DeliveryError:
    """A 5xx answer: a write may still have happened (unknown); a read is simply tried again."""
    if writing:
        return OutcomeUnknown(f"{service} answered {status}{where} after the request was sent; it may be out")
    return Transient(f"{service} answered {status}{where}", retry_after=30)


def transport_error(service: str, exc: BaseException, writing: bool) -> DeliveryError:
    """No HTTP answer at all: no connection (transient), cut mid-request (a write: unknown), or a bug."""
    if never_sent(exc):
        return Transient(f"cannot reach {service}: {type(exc).__name__}")
    if isinstance(exc, requests.RequestException):
        if writing:
            return OutcomeUnknown(f"{type(exc).__name__} after the request was sent; {service} may have it")
        return Transient(f"reading from {service} failed: {type(exc).__name__}")
    return OutcomeUnknown(f"unexpected error while talking to {service}: {type(exc).__name__}")
