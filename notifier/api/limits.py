"""The ASGI gates every request passes before any route parses it.

``RequestGate`` (outermost): request headers over ``MAX_HEADER_COUNT``/``MAX_HEADER_BYTES`` get a 431,
and a staff API request (``/api/v1/``) without a known staff token gets its 401 before a byte of its
body is read, so an unauthenticated client learns nothing about the schema and costs no parsing. The
member it authenticated is left in the request's state (``auth.PRINCIPAL``) for everything after it.

``BodyLimit``: the body of every request is read up to the limit before the route runs, whether the
route would read it or not (an endpoint without a body must not accept a gigabyte either); over the
limit, declared or streamed (chunked), is a 413. The webhook routes read their bodies themselves
(with the same limit, counted in the metrics) and are left alone here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from notifier import limits
from notifier.api.auth import remember_principal

Scope = dict[str, Any]


async def _answer(send: Any, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class RequestGate:
    def __init__(self, app: Any, authenticate: Callable[[str | None], Any], protected: str = "/api/v1/") -> None:
        self.app = app
        self.authenticate = authenticate
        self.protected = protected

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers") or []
        if len(headers) > limits.MAX_HEADER_COUNT or \
                sum(len(k) + len(v) for k, v in headers) > limits.MAX_HEADER_BYTES:
            await _answer(send, 431, f"at most {limits.MAX_HEADER_COUNT} request headers of "
                          f"{limits.MAX_HEADER_BYTES} bytes in all")
            return
        if scope["path"].startswith(self.protected):
            auth = dict(headers).get(b"authorization", b"").decode("latin-1")
            scheme, _, token = auth.partition(" ")
            presented = token.strip() if scheme.lower() == "bearer" else None
            member = self.authenticate(presented or None)
            if member is None:
                await _answer(send, 401, "missing or unknown staff token",
                              [(b"www-authenticate", b'Bearer realm="notifier"')])
                return
            remember_principal(scope, member)  # checked once: the gates and routes after us reuse it
        await self.app(scope, receive, send)


class BodyLimit:
    def __init__(self, app: Any, limit: int, skip_prefixes: tuple[str, ...] = ()) -> None:
        self.app = app
        self.limit = limit
        self.skip = skip_prefixes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.skip):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await self._too_large(send)
            return
        # read it all now (at most the limit), then hand the route a replay of it
        chunks, seen = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.limit:
                await self._too_large(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as the server would

        await self.app(scope, replay, send)

    async def _too_large(self, send: Any) -> None:
        await _answer(send, 413, f"body over {self.limit} bytes")
