"""Did a failed requests call provably never reach the server? Only then is a retry safe.

The decision itself lives in ``notifier.channels.http.request_error`` (shared by every requests-based
channel); the social channels only need the yes/no, because each maps the rest in its own
``classify_error``.
"""

from __future__ import annotations

import requests

from notifier.channels.http import request_error
from notifier.errors import Transient


def never_sent(exc: BaseException) -> bool:
    """True only when the request cannot have reached the server (so it did not take effect)."""
    return isinstance(exc, requests.RequestException) and isinstance(request_error(exc), Transient)
