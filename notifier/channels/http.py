"""Shared HTTP error mapping for channels that use requests: did the request possibly take effect?"""

from __future__ import annotations

import requests
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NameResolutionError, NewConnectionError

from notifier.errors import DeliveryError, OutcomeUnknown, Transient

_BEFORE_SENDING = (NewConnectionError, ConnectTimeoutError, NameResolutionError)


def request_error(exc: requests.RequestException) -> DeliveryError:
    """Transient only when the request provably never left (no connection); otherwise unknown.

    ``requests.ConnectionError`` also wraps "connection aborted" after the body was sent, which the
    server may well have processed: that one must be reconciled, not retried blind.
    """
    if isinstance(exc, requests.ConnectTimeout):
        return Transient(f"cannot connect: {exc.__class__.__name__}")
    if isinstance(exc, requests.ConnectionError):
        reason = exc.args[0] if exc.args else None
        if isinstance(reason, MaxRetryError):
            reason = reason.reason
        if isinstance(reason, _BEFORE_SENDING):
            return Transient(f"cannot connect: {reason.__class__.__name__}")
        return OutcomeUnknown(f"connection dropped mid-request ({exc.__class__.__name__}); it may have arrived")
    if isinstance(exc, requests.Timeout):
        return OutcomeUnknown("timed out after the request was sent; the other side may have it")
    # Not the exception's text: requests puts the URL in it, and URLs can carry credentials.
    return OutcomeUnknown(f"request failed mid-way: {exc.__class__.__name__}")
