"""bluesky: posts to Bluesky (AT Protocol XRPC over requests) with deterministic record keys.

Facts: 300 graphemes per post; a long update becomes a numbered thread; later updates reply to the
incident's previous post (``reply.root`` stays the incident's first post), so ``ordered = True``.

Exactly once without guessing: every part gets a record key derived from the notice (a valid TID built
from the update's creation time and a hash of the notice id), so a retry writes the *same* record,
which the PDS refuses instead of posting twice. After any doubtful answer the channel asks
``com.atproto.repo.getRecord`` for that key: the post either exists or provably does not. That makes
the channel ``idempotent``: the ledger may simply send again.

Authentication: an app password (``com.atproto.server.createSession``); the session is refreshed
when the PDS says the access token expired.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from datetime import UTC, datetime
from typing import Any

import regex
import requests
from pydantic import SecretStr

from notifier.channels.base import Channel, Rendering
from notifier.channels.http import ChannelSession
from notifier.channels.http_errors import server_error, transport_error
from notifier.channels.x_text import compose
from notifier.config import ChannelSettings
from notifier.domain.model import Notice, Receipt
from notifier.errors import DeliveryError, OutcomeUnknown, Permanent, Transient

log = logging.getLogger(__name__)
COLLECTION = "app.bsky.feed.post"
_B32 = "234567abcdefghijklmnopqrstuvwxyz"
_URL = re.compile(r"https?://[^\s]+[^\s.,;:!?)\]]")


class BlueskySettings(ChannelSettings):
    service_url: str = "https://bsky.social"  # the account's PDS (or the entryway)
    identifier: str  # handle or DID
    app_password: SecretStr
    web_url: str = "https://bsky.app"
    max_graphemes: int = 300
    timeout: float | None = None  # seconds; default: delivery.http_timeout


def graphemes(text: str) -> int:
    """User-perceived characters (an emoji family is one), as Bluesky counts them."""
    return len(regex.findall(r"\X", text))


def record_key(notice_id: str, created_at: datetime, part: int) -> str:
    """A valid TID that is the same every time for this notice and part (so a retry cannot post twice)."""
    micros = int(created_at.timestamp() * 1_000_000) + part
    clock = int.from_bytes(hashlib.sha256(notice_id.encode()).digest()[:2], "big") % 1024
    value = (micros << 10) | clock
    return "".join(_B32[(value >> (5 * i)) & 31] for i in range(12, -1, -1))


def link_facets(text: str) -> list[dict[str, Any]]:
    """Rich-text link facets (UTF-8 byte offsets), so URLs in the text are clickable."""
    facets = []
    for match in _URL.finditer(text):
        start = len(text[: match.start()].encode())
        end = start + len(match.group().encode())
        facets.append({"index": {"byteStart": start, "byteEnd": end},
                       "features": [{"$type": "app.bsky.richtext.facet#link", "uri": match.group()}]})
    return facets


class XrpcError(Exception):
    def __init__(self, response: requests.Response) -> None:
        self.response = response
        try:
            body = response.json()
        except ValueError:
            body = {}
        self.error = str(body.get("error", "")) if isinstance(body, dict) else ""
        self.message = str(body.get("message", "")) if isinstance(body, dict) else ""
        super().__init__(f"{response.status_code} {self.error}: {self.message}")


def classify_error(exc: BaseException, *, writing: bool, now: float, channel: str = "<name>") -> DeliveryError:
    """The one place where requests' errors and XRPC errors become ours."""
    if isinstance(exc, XrpcError):
        status, what = exc.response.status_code, f"{exc.error}: {exc.message}".strip(": ")
        if status == 429:
            reset = exc.response.headers.get("ratelimit-reset")
            wait = max(1.0, float(reset) - now + 1) if reset and reset.isdigit() else 60.0
            return Transient(f"Bluesky rate limit reached (429 {what})", retry_after=min(wait, 86400.0),
                             grows=not (reset and reset.isdigit()))  # no reset: back off from 60 s
        if status == 401 or exc.error in ("AuthFactorTokenRequired", "AccountTakedown", "InvalidToken"):
            return Permanent(f"Bluesky refused the login ({status} {what}): check channels.{channel}.identifier "
                             f"and the app password behind channels.{channel}.app_password")
        if status >= 500:
            return server_error("Bluesky", status, writing, f" {what}")
        return Permanent(f"Bluesky refused the request ({status} {what})")
    return transport_error("Bluesky", exc, writing)


class BlueskyChannel(Channel):
    type_name = "bluesky"
    settings_model = BlueskySettings
    settings: BlueskySettings
    max_length = 300
    ordered = True
    idempotent = True  # deterministic record keys: a resend cannot make a second post

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.session = ChannelSession()  # reads the proxy environment once per host
        self.timeout = self.settings.timeout or self.context.http_timeout
        self._auth: dict[str, str] | None = None
        self._lock = threading.Lock()

    def render(self, notice: Notice) -> Rendering:
        body = self.context.templates.render(
            self.type_name, "update", self.language, incident=notice.incident, update=notice.update,
            text=notice.update.text(self.language, self.context.page.language),
            url=notice.page_url, marker=notice.marker,
        )
        parts = compose(body, notice.page_url, notice.marker, self.settings.max_graphemes, graphemes)
        return Rendering(parts=parts, language=self.language, info={"graphemes": [graphemes(p) for p in parts]})

    # -- XRPC -------------------------------------------------------------------------------------

    def _xrpc(self, method: str, nsid: str, *, writing: bool, auth: bool = True, retry_auth: bool = True,
              **kw: Any) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self._session()['accessJwt']}"} if auth else {}
        url = f"{self.settings.service_url.rstrip('/')}/xrpc/{nsid}"
        try:
            resp = self.session.request(method, url, headers=headers,
                                        timeout=(min(5.0, self.timeout), self.timeout), **kw)
        except requests.RequestException as exc:
            raise classify_error(exc, writing=writing, now=self.context.clock.timestamp(),
                                 channel=self.name) from exc
        if resp.status_code in (400, 401) and auth and retry_auth:
            err = XrpcError(resp)
            if err.error in ("ExpiredToken", "InvalidToken"):
                with self._lock:
                    self._auth = None  # log in again, once
                return self._xrpc(method, nsid, writing=writing, auth=auth, retry_auth=False, **kw)
        if not resp.ok:
            error = XrpcError(resp)
            raise classify_error(error, writing=writing, now=self.context.clock.timestamp(),
                                 channel=self.name) from error
        body = resp.json()
        return body if isinstance(body, dict) else {}

    def _session(self) -> dict[str, str]:
        with self._lock:
            if self._auth is None:
                self._auth = {k: str(v) for k, v in self._xrpc(
                    "POST", "com.atproto.server.createSession", writing=False, auth=False,
                    json={"identifier": self.settings.identifier,
                          "password": self.settings.app_password.get_secret_value()},
                ).items() if k in ("accessJwt", "refreshJwt", "did", "handle")}
            return self._auth

    def _get(self, rkey: str) -> dict[str, Any] | None:
        try:
            return self._xrpc("GET", "com.atproto.repo.getRecord", writing=False,
                              params={"repo": self._session()["did"], "collection": COLLECTION, "rkey": rkey})
        except Permanent as exc:
            if "RecordNotFound" in exc.reason:
                return None
            raise

    # -- sending ----------------------------------------------------------------------------------

    def _keys(self, notice: Notice, total: int) -> list[str]:
        return [record_key(notice.id, notice.update.created_at, i) for i in range(total)]

    def send(self, notice: Notice, rendering: Rendering) -> Receipt:
        prev = notice.previous
        root = {"uri": prev["root_uri"], "cid": prev["root_cid"]} if prev.get("root_uri") else None
        parent = {"uri": prev["last_uri"], "cid": prev["last_cid"]} if prev.get("last_uri") else None
        refs: list[dict[str, str]] = []
        for text, rkey in zip(rendering.parts, self._keys(notice, len(rendering.parts)), strict=True):
            record: dict[str, Any] = {
                "$type": COLLECTION, "text": text, "langs": [rendering.language],
                "createdAt": self.context.clock.now().astimezone(UTC).isoformat(timespec="milliseconds")
                .replace("+00:00", "Z"),
            }
            if facets := link_facets(text):
                record["facets"] = facets
            if parent is not None:
                record["reply"] = {"root": root or parent, "parent": parent}
            try:
                ref = self._xrpc("POST", "com.atproto.repo.createRecord", writing=True,
                                 json={"repo": self._session()["did"], "collection": COLLECTION, "rkey": rkey,
                                       "record": record})
            except OutcomeUnknown:
                existing = self._get(rkey)  # the same key: it is there (an earlier try), or it is not
                if existing is None:
                    raise
                ref = existing
            ref = {"uri": str(ref["uri"]), "cid": str(ref["cid"])}
            refs.append(ref)
            root = root or ref
            parent = ref
        assert root is not None
        return Receipt(remote_id=refs[0]["uri"], url=self.post_url(refs[0]["uri"]), extra={
            "root_uri": root["uri"], "root_cid": root["cid"], "last_uri": refs[-1]["uri"],
            "last_cid": refs[-1]["cid"], "thread_uris": ",".join(r["uri"] for r in refs)})

    def post_url(self, uri: str) -> str:
        did, rkey = uri.removeprefix("at://").split("/")[0], uri.rsplit("/", 1)[-1]
        return f"{self.settings.web_url.rstrip('/')}/profile/{did}/post/{rkey}"

    def reconcile(self, notice: Notice, since: float | None = None) -> Receipt | None:
        """Ask for each part's record by its key; all there: posted; else None (a resend is safe)."""
        refs = []
        for rkey in self._keys(notice, len(self.render(notice).parts)):
            record = self._get(rkey)
            if record is None:
                return None
            refs.append({"uri": str(record["uri"]), "cid": str(record["cid"])})
        prev = notice.previous
        root = {"uri": prev["root_uri"], "cid": prev["root_cid"]} if prev.get("root_uri") else refs[0]
        return Receipt(remote_id=refs[0]["uri"], url=self.post_url(refs[0]["uri"]), extra={
            "root_uri": root["uri"], "root_cid": root["cid"], "last_uri": refs[-1]["uri"],
            "last_cid": refs[-1]["cid"], "thread_uris": ",".join(r["uri"] for r in refs)})
