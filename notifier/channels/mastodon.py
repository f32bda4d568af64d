"""mastodon: posts statuses to a Mastodon account (REST API, requests); an incident is one reply thread.

Facts: 500 characters per status by default (``max_characters``, instances differ), a URL counts 23;
a long update becomes a numbered thread; later updates reply (``in_reply_to_id``) to the previous
status, so ``ordered = True``. Every status carries Mastodon's native ``Idempotency-Key`` header (the
notice id plus the part): a resend within the server's key retention (about an hour) returns the
original status instead of posting again. Reconcile reads the account's recent statuses
(``GET /api/v1/accounts/:id/statuses``) and finds the marker in their text (their HTML stripped).
"""

from __future__ import annotations

import html
import logging
import re
from datetime import datetime
from typing import Any, Literal

import requests
from pydantic import SecretStr

from notifier.channels.base import Channel, Rendering
from notifier.channels.http import ChannelSession
from notifier.channels.http_errors import server_error, transport_error
from notifier.channels.progress import thread_progress
from notifier.channels.x_text import compose, part_pattern
from notifier.config import ChannelSettings
from notifier.domain.model import Notice, Receipt
from notifier.errors import DeliveryError, OutcomeUnknown, Permanent, ReconcileIncomplete, Transient

log = logging.getLogger(__name__)
_URL = re.compile(r"https?://\S+")
_TAG = re.compile(r"<[^>]+>")
_MENTION = re.compile(r"(@\w+)@[\w.-]+\w")
DEFAULT_BACKOFF = 60.0


class MastodonSettings(ChannelSettings):
    base_url: str  # the instance, e.g. https://mastodon.social
    access_token: SecretStr  # scope write:statuses (and read:accounts, read:statuses for reconcile)
    visibility: Literal["public", "unlisted", "private"] = "public"
    max_characters: int = 500
    timeout: float | None = None  # seconds; default: delivery.http_timeout
    reconcile_limit: int = 40  # statuses per page (the API's maximum)
    reconcile_max_pages: int = 50  # pages reconcile may read before it says "I don't know"
    reconcile_skew_seconds: float = 300.0  # read back this much before the row's sending_at (clock skew)


def mastodon_length(text: str) -> int:
    """Mastodon's count: a URL is 23, a remote mention counts only its local part, else code points."""
    text = _URL.sub("x" * 23, text)
    return len(_MENTION.sub(r"\1", text))


def plain_text(content: str) -> str:
    """A status's HTML ``content`` as text (paragraph and line breaks become newlines)."""
    content = re.sub(r"<br\s*/?>|</p><p>", "\n", content)
    return html.unescape(_TAG.sub("", content))


class ReplyTargetGone(Permanent):
    """The status to reply to was deleted: the incident's thread starts afresh."""


def classify_error(
    exc: BaseException, *, writing: bool, now: float, channel: str = "<name>"
) -> DeliveryError:
    """The one place where requests' errors and Mastodon's answers become ours."""
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        resp = exc.response
        try:
            message = str(resp.json().get("error", ""))
        except ValueError:
            message = resp.reason or ""
        status = resp.status_code
        if status == 429:
            return Transient(f"Mastodon rate limit reached (429 {message})", retry_after=_reset_in(resp, now),
                             grows="X-RateLimit-Reset" not in resp.headers)  # no reset: back off from the fallback
        if status == 401:
            return Permanent(f"Mastodon rejected the access token (401 {message}); create a new one with "
                             "scope write:statuses and update the variable behind "
                             f"channels.{channel}.access_token")
        if status == 403:
            return Permanent(f"Mastodon refused (403 {message}): the token lacks a scope (write:statuses, "
                             "read:statuses, read:accounts) or the account is suspended")
        if status == 404 and writing:
            return ReplyTargetGone(f"Mastodon: {message or 'Record not found'} (the status to reply to "
                                   "is gone)")
        if status >= 500:
            return server_error("Mastodon", status, writing)
        return Permanent(f"Mastodon refused the status ({status} {message})")
    return transport_error("Mastodon", exc, writing)


def _reset_in(resp: requests.Response, now: float) -> float:
    """Seconds until ``X-RateLimit-Reset`` (an ISO 8601 time), bounded; a fixed backoff without it."""
    raw = resp.headers.get("X-RateLimit-Reset")
    try:
        reset = datetime.fromisoformat(str(raw).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return DEFAULT_BACKOFF
    return min(24 * 3600.0, max(1.0, reset - now + 1))


class MastodonChannel(Channel):
    type_name = "mastodon"
    settings_model = MastodonSettings
    settings: MastodonSettings
    max_length = 500
    ordered = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.session = ChannelSession()  # reads the proxy environment once per host
        self.session.headers["Authorization"] = f"Bearer {self.settings.access_token.get_secret_value()}"
        self.timeout = self.settings.timeout or self.context.http_timeout
        self._account_id: str | None = None

        # the Idempotency-Key only lasts about an hour; this makes a later retry continue, not restart
        self.progress = thread_progress(self.context.progress, self.context.key_prefix, f"mastodon:{self.name}")

    def render(self, notice: Notice) -> Rendering:
        body = self.context.templates.render(
            self.type_name, "update", self.language, incident=notice.incident, update=notice.update,
            text=notice.update.text(self.language, self.context.page.language),
            url=notice.page_url, marker=notice.marker,
        )
        parts = compose(body, notice.page_url, notice.marker, self.settings.max_characters, mastodon_length)
        return Rendering(parts=parts, language=self.language,
                         info={"lengths": [mastodon_length(p) for p in parts]})

    def _request(self, method: str, path: str, writing: bool, **kw: Any) -> Any:
        url = f"{self.settings.base_url.rstrip('/')}{path}"
        try:
            resp = self.session.request(method, url, timeout=(min(5.0, self.timeout), self.timeout), **kw)
            resp.raise_for_status()
            return resp.json()
        except (requests.RequestException, ValueError) as exc:
            if isinstance(exc, ValueError) and not isinstance(exc, requests.RequestException):
                raise OutcomeUnknown("Mastodon answered without JSON") from exc
            raise classify_error(exc, writing=writing, now=self.context.clock.timestamp(),
                                 channel=self.name) from exc

    def send(self, notice: Notice, rendering: Rendering) -> Receipt:
        ids: list[str] = self.progress.done(notice.id)  # parts a previous attempt already posted
        reply_to = ids[-1] if ids else (notice.previous.get("last_id") or None)
        fresh = False
        first_url = ""
        for index, text in enumerate(rendering.parts):
            if index < len(ids):
                continue
            data = {"status": text, "visibility": self.settings.visibility, "language": rendering.language}
            if reply_to:
                data["in_reply_to_id"] = reply_to
            # the same key for the same part: Mastodon answers a repeat with the status it already made
            headers = {"Idempotency-Key": f"{notice.id}#{index + 1}/{len(rendering.parts)}"}
            try:
                status = self._request("POST", "/api/v1/statuses", True, data=data, headers=headers)
            except ReplyTargetGone:
                if index > 0 or fresh or not reply_to:
                    raise
                log.warning("%s: status %s is gone; %s starts a new thread", self.name, reply_to, notice.id)
                fresh, reply_to = True, None
                data.pop("in_reply_to_id")
                status = self._request("POST", "/api/v1/statuses", True, data=data, headers=headers)
            ids = self.progress.remember(notice.id, index, str(status["id"]))
            reply_to = ids[-1]
            url = str(status.get("url") or "")
            if index == 0:
                first_url = url
        root = (None if fresh else notice.previous.get("root_id")) or ids[0]
        return Receipt(remote_id=ids[0], url=first_url,
                       extra={"root_id": root, "last_id": ids[-1], "thread_ids": ",".join(ids)})

    def account_id(self) -> str:
        if self._account_id is None:
            self._account_id = str(self._request("GET", "/api/v1/accounts/verify_credentials", False)["id"])
        return self._account_id

    def _statuses_since(self, since: float | None) -> list[dict[str, Any]]:
        """The account's statuses back to ``since`` (minus the skew), newest first, following ``max_id``.

        Raises ``ReconcileIncomplete`` when the range could not be read to its start.
        """
        limit = max(1, min(40, self.settings.reconcile_limit))
        start = None if since is None else since - self.settings.reconcile_skew_seconds
        out: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": limit}
        for _ in range(max(1, self.settings.reconcile_max_pages)):
            try:
                page = self._request("GET", f"/api/v1/accounts/{self.account_id()}/statuses", False,
                                     params=params)
            except DeliveryError as exc:
                raise ReconcileIncomplete(f"could not read the Mastodon timeline to the end: {exc.reason}") \
                    from exc
            out += page
            if len(page) < limit:
                return out  # the account's whole history was read
            oldest = page[-1]
            if start is not None and _timestamp(str(oldest.get("created_at", ""))) < start:
                return out  # reached back past the send
            params["max_id"] = str(oldest["id"])
        raise ReconcileIncomplete(
            f"the Mastodon timeline since the send holds more than {len(out)} statuses "
            f"(channels.{self.name}.reconcile_max_pages = {self.settings.reconcile_max_pages}); raise it, "
            "or check the account and run `notifier deliveries mark-posted` / `retry --force`")

    def reconcile(self, notice: Notice, since: float | None = None) -> Receipt | None:
        """Find every part of the update among the account's statuses since ``since``, by marker and ``i/n``."""
        statuses = self._statuses_since(since)
        total = len(self.render(notice).parts)
        found = []
        for index in range(1, total + 1):
            pattern = part_pattern(notice.marker, index, total)
            match = next((s for s in statuses
                          if pattern.search(plain_text(str(s.get("content", ""))))), None)
            if match is None:  # the parts found so far are recorded: a resend continues after them
                return None
            found.append(match)
            self.progress.remember(notice.id, index - 1, str(match["id"]))
        ids = [str(s["id"]) for s in found]
        return Receipt(remote_id=ids[0], url=str(found[0].get("url") or ""),
                       extra={"root_id": notice.previous.get("root_id") or ids[0], "last_id": ids[-1],
                              "thread_ids": ",".join(ids)})


def _timestamp(iso: str) -> float:
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return float("inf")  # unreadable: do not take it as proof that we went back far enough
