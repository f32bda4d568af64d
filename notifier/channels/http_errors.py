"""Did a failed requests call provably never reach the server? Only then is a retry safe.

requests reports "connection refused" and "the server hung up before answering" with the same
``ConnectionError``. The first never sent a byte; the second may have delivered the whole post.
The difference is in the urllib3 error underneath: failing to open the connection (refused, DNS,
connect timeout) versus a protocol error on an open one.
"""

from __future__ import annotations

import requests
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NameResolutionError, NewConnectionError

_BEFORE_SENDING = (NewConnectionError, ConnectTimeoutError, NameResolutionError)


def never_sent(exc: BaseException) -> bool:
    """True only when the request cannot have reached the server (so it did not take effect)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if not isinstance(exc, requests.ConnectionError) or isinstance(exc, requests.ReadTimeout):
        return False
    seen: set[int] = set()
    todo: list[BaseException | object] = [exc]
    while todo:
        cur = todo.pop()
        if id(cur) in seen:
            continue
        seen.add(id(cur))
        if isinstance(cur, _BEFORE_SENDING):
            return True
        if isinstance(cur, MaxRetryError):
            todo.append(cur.reason)
        if isinstance(cur, BaseException):
            todo.extend(a for a in cur.args if isinstance(a, BaseException))
            if cur.__cause__ is not None:
                todo.append(cur.__cause__)
    return False
