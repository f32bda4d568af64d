"""A fake Facebook Graph API for one Page: feed posts, comments, edits, and reading them back.

Routes (``{ver}`` must look like ``v21.0``): POST /{ver}/{page_id}/feed, POST /{ver}/{post_id}/comments,
POST /{ver}/{post_id} (edit), GET /{ver}/{page_id}/posts, GET /{ver}/{post_id}/comments.
Errors come in Graph's shape ``{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}``
with Graph's HTTP statuses; every answer carries ``X-Business-Use-Case-Usage``. An app secret, when
set, makes ``appsecret_proof`` mandatory and checked.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.http_fake import FakeServer, Reply, Request

PAGE_ID = "104000000000001"
TOKEN = "page-token-1"


@dataclass
class Post:
    id: str
    message: str
    link: str | None
    created_time: float
    comments: list[Post] = field(default_factory=list)
    edits: list[str] = field(default_factory=list)


def graph_error(status: int, code: int, message: str, kind: str = "OAuthException",
                subcode: int | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"message": message, "type": kind, "code": code, "fbtrace_id": "AbCdEfGhIjK"}
    if subcode is not None:
        err["error_subcode"] = subcode
    return {"error": err}


class FakeGraphApi(FakeServer):
    def __init__(self, app_secret: str | None = None) -> None:
        super().__init__()
        self.app_secret = app_secret
        self.tokens = {TOKEN}
        self.expired: set[str] = set()
        self.posts_by_id: dict[str, Post] = {}
        self.feed: list[Post] = []
        self._ids = itertools.count(500000000000001)
        self.call_count = 0
        self.regain_minutes = 0
        self.refuse_duplicates = True  # Graph's error 506; off, it behaves like a receiver without the check

    # -- test helpers -----------------------------------------------------------------------------

    def all_posts(self) -> list[Post]:
        with self.lock:
            return list(self.feed)

    def expire(self, token: str = TOKEN) -> None:
        with self.lock:
            self.expired.add(token)

    def throttle_next(self, code: int = 32, regain_minutes: int = 1, times: int = 1) -> None:
        """The next POST answers a Graph throttling error with a usage header saying when to return."""
        usage = self._usage(regain_minutes, 100)
        body = graph_error(400, code, f"(#{code}) Page request limit reached")
        self.inject("POST", "/", "reply", reply=Reply(400, body, {"X-Business-Use-Case-Usage": usage}),
                    times=times)

    def error_next(self, status: int, code: int, message: str, method: str = "POST", **kw: Any) -> None:
        self.inject(method, "/", "reply", reply=Reply(status, graph_error(status, code, message, **kw),
                                                      {"X-Business-Use-Case-Usage": self._usage(0, 1)}))

    # -- API --------------------------------------------------------------------------------------

    def _usage(self, regain: int, percent: int) -> str:
        return json.dumps({PAGE_ID: [{"type": "pages", "call_count": percent, "total_cputime": 1,
                                      "total_time": 1, "estimated_time_to_regain_access": regain}]})

    def _auth(self, params: dict[str, str]) -> Reply | None:
        token = params.get("access_token", "")
        if token in self.expired:
            return Reply(400, graph_error(400, 190, "Error validating access token: Session has expired on "
                                                    "Monday, 23-Nov-26 10:00:00 PST. The current time is "
                                                    "Tuesday, 24-Nov-26 12:00:00 PST.", subcode=463))
        if token not in self.tokens:
            return Reply(400, graph_error(400, 190, "Invalid OAuth access token - Cannot parse access token"))
        if self.app_secret is not None:
            proof = hmac.new(self.app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()
            given = params.get("appsecret_proof", "")
            if not given:
                msg = "API calls from the server require an appsecret_proof argument"
                return Reply(400, graph_error(400, 100, msg, "GraphMethodException"))
            if not hmac.compare_digest(proof, given):
                msg = "Invalid appsecret_proof provided in the API argument"
                return Reply(400, graph_error(400, 100, msg, "GraphMethodException"))
        return None

    def _listing(self, items: list[Post], params: dict[str, str]) -> dict[str, Any]:
        """Graph's cursor paging: ``since`` (unix seconds) bounds the range; ``paging.cursors.after`` goes
        back as ``after`` and ``paging.next`` is present only while there is more."""
        limit = int(params.get("limit", "25"))
        if since := params.get("since"):
            items = [p for p in items if p.created_time >= float(since)]
        if after := params.get("after"):
            ids = [p.id for p in items]
            items = items[ids.index(after) + 1:] if after in ids else []
        page = items[:limit]
        body: dict[str, Any] = {"data": [
            {"id": p.id, "message": p.message,
             "created_time": time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(p.created_time))}
            for p in page]}
        if page:
            body["paging"] = {"cursors": {"before": page[0].id, "after": page[-1].id}}
            if len(items) > limit:
                body["paging"]["next"] = f"{self.url}/next?after={page[-1].id}"
        return body

    def handle(self, req: Request) -> Reply:
        params = req.form() if req.method == "POST" else dict(req.query)
        reply = self._route(req, params)
        reply.headers.setdefault("X-Business-Use-Case-Usage", self._usage(self.regain_minutes, 1))
        return reply

    def _route(self, req: Request, params: dict[str, str]) -> Reply:
        match = re.fullmatch(r"/(v\d+\.\d+)/([0-9_]+)(/feed|/comments|/posts)?", req.path)
        if not match:
            return Reply(400, graph_error(400, 2500, f"Unknown path components: {req.path}"))
        denied = self._auth(params)
        if denied:
            return denied
        node, edge = match.group(2), match.group(3) or ""
        with self.lock:
            self.call_count += 1
            now = time.time()
            if req.method == "POST" and edge == "/feed":
                if node != PAGE_ID:
                    return Reply(400, graph_error(400, 100, "(#100) Invalid page id", "GraphMethodException"))
                message = params.get("message", "")
                if not message and not params.get("link"):
                    return Reply(400, graph_error(400, 100, "(#100) Missing message or attachment"))
                if self.refuse_duplicates and any(p.message == message for p in self.feed):
                    return Reply(400, graph_error(400, 506, "(#506) Duplicate status message",
                                                  subcode=1455006))
                post = Post(f"{PAGE_ID}_{next(self._ids)}", message, params.get("link"), now)
                self.feed.append(post)
                self.posts_by_id[post.id] = post
                return Reply(200, {"id": post.id})
            if req.method == "GET" and edge == "/posts":
                if node != PAGE_ID:
                    return Reply(400, graph_error(400, 100, "(#100) Invalid page id", "GraphMethodException"))
                return Reply(200, self._listing(list(reversed(self.feed)), params))
            target = self.posts_by_id.get(node)
            if target is None:
                msg = f"(#100) Unsupported request - object {node} does not exist"
                return Reply(400, graph_error(400, 100, msg, "GraphMethodException", subcode=33))
            if req.method == "POST" and edge == "/comments":
                comment_id = f"{node.split('_')[-1]}_{next(self._ids)}"
                comment = Post(comment_id, params.get("message", ""), None, now)
                target.comments.append(comment)
                self.posts_by_id[comment.id] = comment
                return Reply(200, {"id": comment.id})
            if req.method == "POST" and edge == "":
                target.edits.append(target.message)
                target.message = params.get("message", target.message)
                return Reply(200, {"success": True})
            if req.method == "GET" and edge == "/comments":
                order = params.get("order", "chronological")
                newest_first = order == "reverse_chronological"
                items = list(reversed(target.comments)) if newest_first else target.comments
                return Reply(200, self._listing(items, params))
        return Reply(400, graph_error(400, 100, f"(#100) Unsupported {req.method} request"))
