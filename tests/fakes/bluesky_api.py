"""A fake Bluesky PDS: createSession, createRecord (with client record keys), getRecord.

Like a real PDS: record keys for posts must be valid TIDs; creating a record whose key exists answers
500 InternalServerError (what PDSes have long done; newer ones say so explicitly, both are handled);
access tokens expire (``expire_sessions``) with 400 ExpiredToken; 429 carries ``ratelimit-*`` headers;
errors are ``{"error": ..., "message": ...}``. Posts over 300 graphemes are refused (InvalidRecord).
"""

from __future__ import annotations

import hashlib
import itertools
import re
import time
from dataclasses import dataclass
from typing import Any

from notifier.channels.bluesky import graphemes
from tests.fakes.http_fake import FakeServer, Reply, Request

DID = "did:plc:ewvi7nxzyoun6zhxrhs64oiz"
HANDLE = "status.example.com"
PASSWORD = "abcd-efgh-ijkl-mnop"
_TID = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")


@dataclass
class Record:
    rkey: str
    cid: str
    value: dict[str, Any]

    @property
    def uri(self) -> str:
        return f"at://{DID}/app.bsky.feed.post/{self.rkey}"


def _err(status: int, error: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {"error": error, "message": message}, headers or {})


class FakeBluesky(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.records: dict[str, Record] = {}
        self.order: list[str] = []
        self.sessions: set[str] = set()
        self.logins = 0
        self._n = itertools.count(1)

    def posts(self) -> list[Record]:
        with self.lock:
            return [self.records[k] for k in self.order]

    def expire_sessions(self) -> None:
        with self.lock:
            self.sessions.clear()

    def rate_limit_next(self, reset_in: float) -> None:
        headers = {"ratelimit-limit": "5000", "ratelimit-remaining": "0",
                   "ratelimit-reset": str(int(time.time() + reset_in)), "ratelimit-policy": "5000;w=3600"}
        self.inject("POST", "/xrpc/com.atproto.repo.createRecord", "reply",
                    reply=_err(429, "RateLimitExceeded", "Rate Limit Exceeded", headers))

    def handle(self, req: Request) -> Reply:
        with self.lock:
            if req.path == "/xrpc/com.atproto.server.createSession" and req.method == "POST":
                body = req.json() or {}
                if body.get("identifier") not in (HANDLE, DID) or body.get("password") != PASSWORD:
                    return _err(401, "AuthenticationRequired", "Invalid identifier or password")
                self.logins += 1
                token = f"access-{next(self._n)}"
                self.sessions.add(token)
                return Reply(200, {"accessJwt": token, "refreshJwt": f"refresh-{token}", "did": DID,
                                   "handle": HANDLE})
            auth = req.headers.get("authorization", "")
            if not auth.startswith("Bearer "):
                return _err(401, "AuthenticationRequired", "Authentication Required")
            if auth[len("Bearer "):] not in self.sessions:
                return _err(400, "ExpiredToken", "Token has expired")
            if req.path == "/xrpc/com.atproto.repo.createRecord" and req.method == "POST":
                return self._create(req.json() or {})
            if req.path == "/xrpc/com.atproto.repo.getRecord" and req.method == "GET":
                record = self.records.get(req.query.get("rkey", ""))
                if record is None or req.query.get("repo") not in (DID, HANDLE):
                    return _err(400, "RecordNotFound", f"Could not locate record: {req.query.get('rkey')}")
                return Reply(200, {"uri": record.uri, "cid": record.cid, "value": record.value})
        return _err(501, "MethodNotImplemented", "Method Not Implemented")

    def _create(self, body: dict[str, Any]) -> Reply:
        if body.get("repo") not in (DID, HANDLE) or body.get("collection") != "app.bsky.feed.post":
            return _err(400, "InvalidRequest", "Invalid repo or collection")
        rkey = str(body.get("rkey") or f"3l{next(self._n):011d}"[:13])
        if not _TID.match(rkey):
            return _err(400, "InvalidRequest", "Invalid record key: must be a TID")
        record = body.get("record") or {}
        if graphemes(str(record.get("text", ""))) > 300:
            return _err(400, "InvalidRecord", "Invalid app.bsky.feed.post record: Record/text must not be "
                                              "longer than 300 graphemes")
        reply = record.get("reply")
        if reply is not None:
            parent = str(reply.get("parent", {}).get("uri", "")).rsplit("/", 1)[-1]
            if parent not in self.records:
                return _err(400, "InvalidRequest", "reply parent does not exist")
        if rkey in self.records:
            return _err(500, "InternalServerError", "Internal Server Error")
        cid = "bafyrei" + hashlib.sha256(repr(record).encode()).hexdigest()[:52]
        self.records[rkey] = Record(rkey, cid, record)
        self.order.append(rkey)
        return Reply(200, {"uri": self.records[rkey].uri, "cid": cid,
                           "commit": {"cid": "bafyreicommit", "rev": rkey}, "validationStatus": "valid"})
