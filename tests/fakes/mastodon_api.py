"""A fake Mastodon server: statuses with Idempotency-Key, the account's timeline, credentials.

Routes: POST /api/v1/statuses (form), GET /api/v1/accounts/verify_credentials,
GET /api/v1/accounts/:id/statuses. Status ``content`` is HTML like Mastodon's (escaped, ``<br />``
line breaks, hashtags as links), so reconcile must read it as Mastodon really returns it. Errors are
``{"error": "..."}`` with Mastodon's statuses (401, 404, 422, 429 + ``X-RateLimit-*`` with an ISO
8601 reset). A repeated Idempotency-Key within an hour returns the original status.
"""

from __future__ import annotations

import html
import itertools
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from notifier.channels.mastodon import mastodon_length
from tests.fakes.http_fake import FakeServer, Reply, Request

ACCOUNT_ID = "109000000000000001"
TOKEN = "mastodon-token-1"
_HASHTAG = re.compile(r"#([\w\u00b7]+)")


@dataclass
class Status:
    id: str
    text: str
    in_reply_to_id: str | None
    created_at: float
    visibility: str
    language: str | None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FakeMastodon(FakeServer):
    def __init__(self, max_characters: int = 500, limit_per_3h: int = 300) -> None:
        super().__init__()
        self.statuses: list[Status] = []
        self.tokens = {TOKEN}
        self.keys: dict[tuple[str, str], tuple[float, Status]] = {}
        self.max_characters = max_characters
        self.limit = limit_per_3h
        self._ids = itertools.count(111000000000000001)

    def posts(self) -> list[Status]:
        with self.lock:
            return list(self.statuses)

    def rate_limit_next(self, reset_in: float) -> None:
        headers = {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "0",
                   "X-RateLimit-Reset": _iso(time.time() + reset_in)}
        self.inject("POST", "/api/v1/statuses", "reply", reply=Reply(429, {"error": "Too many requests"}, headers))

    def _json(self, status: Status) -> dict[str, Any]:
        text = html.escape(status.text)
        base = self.url
        text = _HASHTAG.sub(lambda m: f'<a href="{base}/tags/{m.group(1)}" class="mention hashtag" rel="tag">'
                                      f"#<span>{m.group(1)}</span></a>", text)
        content = "<p>" + text.replace("\n\n", "</p><p>").replace("\n", "<br />") + "</p>"
        return {"id": status.id, "created_at": _iso(status.created_at), "in_reply_to_id": status.in_reply_to_id,
                "visibility": status.visibility, "language": status.language, "content": content,
                "url": f"{self.url}/@status/{status.id}", "uri": f"{self.url}/users/status/statuses/{status.id}",
                "account": {"id": ACCOUNT_ID, "username": "status", "acct": "status"}}

    def handle(self, req: Request) -> Reply:
        auth = req.headers.get("authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
        if token not in self.tokens:
            return Reply(401, {"error": "The access token is invalid"})
        with self.lock:
            now = time.time()
            if req.method == "GET" and req.path == "/api/v1/accounts/verify_credentials":
                return Reply(200, {"id": ACCOUNT_ID, "username": "status", "acct": "status"})
            match = re.fullmatch(r"/api/v1/accounts/(\d+)/statuses", req.path)
            if req.method == "GET" and match:
                limit = min(40, int(req.query.get("limit", "20")))
                newest = list(reversed(self.statuses)) if match.group(1) == ACCOUNT_ID else []
                if max_id := req.query.get("max_id"):  # Mastodon's paging: statuses older than this id
                    newest = [st for st in newest if int(st.id) < int(max_id)]
                newest = newest[:limit]
                return Reply(200, [self._json(s) for s in newest])
            if req.method == "POST" and req.path == "/api/v1/statuses":
                return self._create(req, token, now)
        return Reply(404, {"error": "Record not found"})

    def _create(self, req: Request, token: str, now: float) -> Reply:
        recent = [s for s in self.statuses if s.created_at > now - 3 * 3600]
        headers = {"X-RateLimit-Limit": str(self.limit),
                   "X-RateLimit-Remaining": str(max(0, self.limit - len(recent) - 1)),
                   "X-RateLimit-Reset": _iso((recent[0].created_at if recent else now) + 3 * 3600)}
        if len(recent) >= self.limit:
            return Reply(429, {"error": "Too many requests"}, headers)
        key = req.headers.get("idempotency-key")
        if key and (token, key) in self.keys and self.keys[(token, key)][0] > now - 3600:
            return Reply(200, self._json(self.keys[(token, key)][1]), headers)
        form = req.form()
        text = form.get("status", "")
        if not text.strip():
            return Reply(422, {"error": "Validation failed: Text can't be blank"})
        if mastodon_length(text) > self.max_characters:
            return Reply(422, {"error": f"Validation failed: Text character limit of {self.max_characters} "
                                        "exceeded"})
        parent = form.get("in_reply_to_id")
        if parent and not any(s.id == parent for s in self.statuses):
            return Reply(404, {"error": "Record not found"})
        status = Status(str(next(self._ids)), text, parent or None, now, form.get("visibility", "public"),
                        form.get("language"))
        self.statuses.append(status)
        if key:
            self.keys[(token, key)] = (now, status)
        return Reply(200, self._json(status), headers)
