"""A fake chat endpoint for the apprise channel: what Apprise's ntfy and json plugins talk to.

- ntfy: ``POST /`` with a JSON body ``{"topic", "message", ...}`` (how the plugin publishes), answered
  like ntfy.sh: 200 ``{"id", "time", "topic", "message"}``.
- json: ``POST /<path>`` with Apprise's JSON envelope ``{"version", "title", "message", "type", ...}``,
  answered 200 ``{}``.

Faults come from ``FakeServer.inject`` (answer 503/400, stall after accepting, drop the connection).
``messages()`` counts at the far end: each accepted message once, a stalled-but-accepted one included.
"""

from __future__ import annotations

import threading
from typing import Any

from tests.fakes.http_fake import FakeServer, Reply, Request


class ChatServer(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.accepted: list[dict[str, Any]] = []
        self._count = threading.Lock()

    def handle(self, req: Request) -> Reply:
        if req.method != "POST":
            return Reply(405, {"error": "method not allowed"})
        try:
            body = req.json()
        except ValueError:
            return Reply(400, {"code": 40001, "error": "invalid request: body is not JSON"})
        if not isinstance(body, dict) or not body.get("message"):
            return Reply(400, {"code": 40002, "error": "invalid request: no message"})
        with self._count:
            self.accepted.append({"path": req.path, **body})
            number = len(self.accepted)
        if req.path == "/":  # ntfy's publish-as-JSON
            return Reply(200, {"id": f"ntfy{number}", "topic": body.get("topic"), "message": body["message"]})
        return Reply(200, {})

    def messages(self, topic: str | None = None) -> list[str]:
        with self._count:
            return [m["message"] for m in self.accepted if topic is None or m.get("topic") == topic]
