"""A request body cap for the routes that let FastAPI parse the body (the staff API).

FastAPI reads a JSON body before it runs the auth dependency, so without a cap anyone could make the
API buffer an unbounded body. The webhook routes read their bodies themselves (with the same limit,
counted in the metrics) and are left alone here.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

Scope = dict[str, Any]


class BodyTooLarge(Exception):
    pass


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
        seen = 0
        rejected = False

        async def limited_receive() -> Any:
            nonlocal seen, rejected
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit and not rejected:
                    # answer now, while the app is still reading: FastAPI turns any error raised
                    # from here into a 400 of its own, which tracking_send then drops
                    rejected = True
                    await self._too_large(send)
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Any) -> None:
            if not rejected:
                await send(message)

        with contextlib.suppress(BodyTooLarge):  # already answered 413
            await self.app(scope, limited_receive, tracking_send)

    async def _too_large(self, send: Any) -> None:
        body = json.dumps({"detail": f"body over {self.limit} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
