"""A fake X API v2: POST /2/tweets, GET /2/users/me, GET /2/users/:id/tweets.

Real contracts: bodies in X's problem-JSON shape, ``x-rate-limit-*`` and ``x-user-limit-24hour-*``
headers on every answer, 429 when the per-user posting window is full, 403 "duplicate content" for a
text the account already posted, 403 "Unsupported Authentication" for app-only bearer tokens, 401 for
unknown or revoked tokens, 400 for posts over 280 weighted characters. OAuth 1.0a requests are checked
for their parameters (consumer key, token, signature present), not for the signature's value.
"""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from twitter_text import parse_tweet

from tests.fakes.http_fake import FakeServer, Reply, Request

USER_ID = "1500000000000000001"
USERNAME = "examplestatus"


@dataclass
class Tweet:
    id: str
    text: str
    author_id: str
    in_reply_to: str | None
    created_at: float
    auth: str = ""


@dataclass
class XState:
    tweets: list[Tweet] = field(default_factory=list)
    oauth1_tokens: set[str] = field(default_factory=lambda: {"access-token-1"})
    consumer_keys: set[str] = field(default_factory=lambda: {"consumer-key-1"})
    user_tokens: set[str] = field(default_factory=lambda: {"oauth2-user-token-1"})
    app_tokens: set[str] = field(default_factory=lambda: {"app-only-bearer-1"})
    revoked: set[str] = field(default_factory=set)
    post_limit_15min: int = 100
    post_limit_24h: int = 10000
    # X's further "300 posts per 3 hours" per user, which its headers do not report: the post past it is
    # the first to hear of it (429, reset when the 3 hours of the oldest post are over); None: no such limit
    post_limit_3h: int | None = None
    refuse_duplicates: bool = True  # X's 403 duplicate content; off, like a receiver without the check
    timeline_lag: float = 0.0  # seconds before a new post shows in GET /2/users/:id/tweets


def _problem(status: int, title: str, detail: str, kind: str = "about:blank") -> dict[str, Any]:
    return {"title": title, "detail": detail, "type": kind, "status": status}


class FakeXApi(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.state = XState()
        self._ids = itertools.count(1860000000000000000)
        # POST /2/tweets in progress here (from arrival to the end of the answer), and the most at once
        self.writes_in_flight = 0
        self.max_writes_in_flight = 0
        self.write_statuses: list[int] = []  # the status of every POST /2/tweets answered, in order

    def _serve(self, handler: Any, req: Request) -> None:
        if not (req.method == "POST" and req.path == "/2/tweets"):
            super()._serve(handler, req)
            return
        with self.lock:
            self.writes_in_flight += 1
            self.max_writes_in_flight = max(self.max_writes_in_flight, self.writes_in_flight)
        try:
            super()._serve(handler, req)
        finally:
            with self.lock:
                self.writes_in_flight -= 1

    def handle_write(self, req: Request, reply: Reply) -> Reply:
        with self.lock:
            self.write_statuses.append(reply.status)
        return reply

    # -- test helpers -----------------------------------------------------------------------------

    def posts(self) -> list[Tweet]:
        with self.lock:
            return list(self.state.tweets)

    def revoke(self, token: str) -> None:
        with self.lock:
            self.state.revoked.add(token)

    def rate_limit_next(self, reset_in: float | None, times: int = 1) -> None:
        """The next POST /2/tweets answers 429; with reset_in None the reset header is left out."""
        headers = {"x-rate-limit-limit": "100", "x-rate-limit-remaining": "0"}
        if reset_in is not None:
            headers["x-rate-limit-reset"] = str(int(time.time() + reset_in))
        body = _problem(429, "Too Many Requests", "Too Many Requests")
        self.inject("POST", "/2/tweets", "reply", reply=Reply(429, body, headers), times=times)

    # -- API --------------------------------------------------------------------------------------

    def _who(self, req: Request) -> tuple[str, str] | Reply:
        """(kind, token) of the caller: kind is oauth1, user or app."""
        auth = req.headers.get("authorization", "")
        if auth.startswith("OAuth "):
            params = dict(re.findall(r'(\w+)="([^"]*)"', auth))
            token, key = params.get("oauth_token", ""), params.get("oauth_consumer_key", "")
            ok = (token in self.state.oauth1_tokens and key in self.state.consumer_keys
                  and params.get("oauth_signature") and params.get("oauth_signature_method") == "HMAC-SHA1")
            if not ok or token in self.state.revoked:
                return Reply(401, _problem(401, "Unauthorized", "Unauthorized"))
            return "oauth1", token
        if auth.startswith("Bearer "):
            token = auth[len("Bearer "):]
            if token in self.state.revoked:
                return Reply(401, _problem(401, "Unauthorized", "Unauthorized"))
            if token in self.state.user_tokens:
                return "user", token
            if token in self.state.app_tokens:
                return "app", token
        return Reply(401, _problem(401, "Unauthorized", "Unauthorized"))

    def _limit_headers(self, now: float) -> dict[str, str]:
        recent = [t for t in self.state.tweets if t.created_at > now - 900]
        day = [t for t in self.state.tweets if t.created_at > now - 86400]
        reset = int((recent[0].created_at if recent else now) + 900)
        day_reset = int((day[0].created_at if day else now) + 86400)
        return {
            "x-rate-limit-limit": str(self.state.post_limit_15min),
            "x-rate-limit-remaining": str(max(0, self.state.post_limit_15min - len(recent))),
            "x-rate-limit-reset": str(reset),
            "x-user-limit-24hour-limit": str(self.state.post_limit_24h),
            "x-user-limit-24hour-remaining": str(max(0, self.state.post_limit_24h - len(day))),
            "x-user-limit-24hour-reset": str(day_reset),
        }

    def handle(self, req: Request) -> Reply:
        who = self._who(req)
        if isinstance(who, Reply):
            return who
        kind, token = who
        with self.lock:
            now = time.time()
            if req.method == "POST" and req.path == "/2/tweets":
                return self.handle_write(req, self._create(req, kind, token, now))
            if req.method == "GET" and req.path == "/2/users/me":
                if kind == "app":
                    return Reply(403, _problem(403, "Unsupported Authentication", _APP_ONLY,
                                               "https://api.twitter.com/2/problems/unsupported-authentication"))
                return Reply(200, {"data": {"id": USER_ID, "name": "Example Status", "username": USERNAME}})
            match = re.fullmatch(r"/2/users/(\d+)/tweets", req.path)
            if req.method == "GET" and match:
                return self._timeline(req, match.group(1))
        return Reply(404, _problem(404, "Not Found Error", f"no route for {req.method} {req.path}"))

    def _create(self, req: Request, kind: str, token: str, now: float) -> Reply:
        if kind == "app":
            return Reply(403, _problem(403, "Unsupported Authentication", _APP_ONLY,
                                       "https://api.twitter.com/2/problems/unsupported-authentication"))
        headers = self._limit_headers(now)
        if headers["x-rate-limit-remaining"] == "0":
            return Reply(429, _problem(429, "Too Many Requests", "Too Many Requests"), headers)
        if headers["x-user-limit-24hour-remaining"] == "0":
            return Reply(429, _problem(429, "Too Many Requests", "Too Many Requests"), headers)
        if self.state.post_limit_3h is not None:
            hours = [t for t in self.state.tweets if t.created_at > now - 10800]
            if len(hours) >= self.state.post_limit_3h:
                hidden = {**headers, "x-rate-limit-remaining": "0",
                          "x-rate-limit-reset": str(int(hours[0].created_at + 10800))}
                return Reply(429, _problem(429, "Too Many Requests", "Too Many Requests"), hidden)
        payload = req.json() or {}
        text = str(payload.get("text", ""))
        if not text or not parse_tweet(text).valid:
            return Reply(400, {
                "errors": [{"parameters": {"text": [text]},
                            "message": "The text is too long or empty (max 280 weighted characters)."}],
                "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.",
                "type": "https://api.twitter.com/2/problems/invalid-request"}, headers)
        if self.state.refuse_duplicates and any(t.text == text for t in self.state.tweets):
            detail = "You are not allowed to create a Tweet with duplicate content."
            return Reply(403, _problem(403, "Forbidden", detail), headers)
        reply_to = (payload.get("reply") or {}).get("in_reply_to_tweet_id")
        if reply_to is not None and not any(t.id == str(reply_to) for t in self.state.tweets):
            detail = "You attempted to reply to a Tweet that is deleted or not visible to you."
            return Reply(403, _problem(403, "Forbidden", detail), headers)
        tweet = Tweet(str(next(self._ids)), text, USER_ID, str(reply_to) if reply_to else None, now, kind)
        self.state.tweets.append(tweet)
        return Reply(201, {"data": {"id": tweet.id, "text": text, "edit_history_tweet_ids": [tweet.id]}},
                     self._limit_headers(now))

    def _timeline(self, req: Request, user_id: str) -> Reply:
        try:
            limit = int(req.query.get("max_results", "10"))
        except ValueError:
            limit = -1
        if not 5 <= limit <= 100:
            return Reply(400, {"errors": [{"parameters": {"max_results": [req.query.get("max_results")]},
                                           "message": "The `max_results` query parameter value is not "
                                                      "between 5 and 100"}],
                               "title": "Invalid Request",
                               "detail": "One or more parameters to your request was invalid.",
                               "type": "https://api.twitter.com/2/problems/invalid-request"})
        # X's real paging: newest first, ``start_time`` (ISO 8601, inclusive) bounds the range, and
        # ``meta.next_token`` goes back as ``pagination_token`` until it is absent. A lagging timeline
        # (``timeline_lag`` seconds) lists a post only that long after it was made.
        visible_before = time.time() - self.state.timeline_lag
        mine = [t for t in reversed(self.state.tweets) if t.author_id == user_id and t.created_at <= visible_before]
        if start := req.query.get("start_time"):
            since = datetime.strptime(start, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
            mine = [t for t in mine if t.created_at >= since]
        if token := req.query.get("pagination_token"):  # opaque to clients; here: older than this id
            mine = [t for t in mine if int(t.id) < int(token)]
        page = mine[:limit]
        data = [{"id": t.id, "text": t.text, "edit_history_tweet_ids": [t.id]} for t in page]
        meta: dict[str, Any] = {"result_count": len(data)}
        if data:
            meta.update(newest_id=data[0]["id"], oldest_id=data[-1]["id"])
        if len(mine) > limit:
            meta["next_token"] = page[-1].id
        return Reply(200, {"data": data, "meta": meta} if data else {"meta": meta})


_APP_ONLY = ("Authenticating with OAuth 2.0 Application-Only is forbidden for this endpoint.  Supported "
             "authentication types are [OAuth 1.0a User Context, OAuth 2.0 User Context].")
