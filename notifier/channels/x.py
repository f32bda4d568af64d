"""x: posts to X (Twitter) with tweepy.Client.create_tweet; one incident reads as one thread.

Facts: 280 weighted characters per post (counted by twitter-text, see ``x_text``); a long update becomes a
numbered thread; every later update replies to the incident's previous post, so ``ordered = True``.
``Receipt.extra`` carries ``root_id``/``last_id`` and comes back as ``notice.previous`` next time.

Credentials: OAuth 1.0a user context (consumer key/secret + access token/secret) or an OAuth 2.0
user-context token (``user_token``; then every call passes ``user_auth=False``). An app-only bearer
token cannot post; ``config_warnings`` says so for ``notifier config check``.

tweepy hard-codes ``https://api.twitter.com`` and sets no timeouts. A transport adapter mounted on the
client's ``session`` rewrites that prefix to ``api_base_url`` (a proxy, or a fake in tests) and adds a
timeout. OAuth 1.0a signs the original api.twitter.com URL, which is what a forwarding proxy needs.

Errors become ours in ``classify_error`` only. Posts take a slot of a ``PostingBudget`` in Redis first.
A thread in progress is remembered per notice (Redis), so a retry continues where it stopped instead of
re-posting the parts already out.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import requests
import tweepy
from pydantic import Field, SecretStr, model_validator

from notifier.channels.base import Channel, Rendering
from notifier.channels.deadline import DeadlineAdapter
from notifier.channels.http import ChannelSession
from notifier.channels.http_errors import server_error, transport_error
from notifier.channels.progress import thread_progress
from notifier.channels.x_budget import BUSY, LocalBudget, PostingBudget, Window
from notifier.channels.x_text import MAX_WEIGHTED, compose, part_pattern, weighted_length
from notifier.config import ChannelSettings
from notifier.domain.model import Notice, Receipt
from notifier.errors import DeliveryError, DuplicateRefused, Permanent, ReconcileIncomplete, Transient

if TYPE_CHECKING:
    from notifier.config import Settings

log = logging.getLogger(__name__)

TWITTER_HOST = "https://api.twitter.com"
RATE_LIMIT_FALLBACK = 60.0  # a 429 without x-rate-limit-reset: wait this long, never loop tightly
MAX_WAIT = 24 * 3600.0
GATE_WAIT = 10.0  # seconds a write waits for a free in-flight lease of the account before it is rescheduled


class XSettings(ChannelSettings):
    api_base_url: str = TWITTER_HOST
    web_url: str = "https://x.com"
    consumer_key: SecretStr | None = None
    consumer_secret: SecretStr | None = None
    access_token: SecretStr | None = None
    access_token_secret: SecretStr | None = None
    user_token: SecretStr | None = None  # OAuth 2.0 user context (scopes tweet.write, tweet.read, users.read)
    bearer_token: SecretStr | None = None  # app-only: accepted so `config check` can explain it, never used
    user_id: str | None = None  # the account's numeric id; looked up with GET /2/users/me when unset
    timeout: float | None = None  # seconds; default: delivery.http_timeout
    budget_per_15min: int = 100  # X's per-user limit for POST /2/tweets; 0 disables the window
    budget_per_24h: int = 1000  # set to your plan's daily cap
    # writes to this account in flight at once, over all workers (1: strictly one at a time, so nothing
    # but that write reaches X behind a 429; N: at most N - 1 others were already on their way)
    max_in_flight: int = Field(default=8, ge=1, le=64)
    reconcile_max_results: int = 100  # posts per timeline page reconcile reads (5..100)
    reconcile_max_pages: int = 32  # pages reconcile may read; X lists at most the latest 3,200 posts
    reconcile_skew_seconds: float = 300.0  # start_time this much before the row's sending_at (clock skew)
    reconcile_settle_seconds: float = 5.0  # how long X's timeline may lag behind a new post

    @model_validator(mode="after")
    def _credentials(self) -> XSettings:
        oauth1 = [self.consumer_key, self.consumer_secret, self.access_token, self.access_token_secret]
        if self.user_token is None and not all(oauth1):
            missing = [n for n, v in zip(("consumer_key", "consumer_secret", "access_token",
                                          "access_token_secret"), oauth1, strict=True) if not v]
            hint = " (an app-only bearer_token cannot post)" if self.bearer_token else ""
            raise ValueError(
                "X needs user-context credentials to post: set user_token (OAuth 2.0 user context) or all "
                f"four OAuth 1.0a keys; missing {', '.join(missing)}{hint}"
            )
        if not self.api_base_url.startswith(("http://", "https://")):
            raise ValueError("api_base_url must start with http:// or https://")
        return self


class _Redirect(DeadlineAdapter):
    """Sends tweepy's hard-coded api.twitter.com requests to ``base`` and gives them a timeout (and,
    as a ``DeadlineAdapter``, a hard total deadline: tweepy's requests go through ``ChannelSession``)."""

    def __init__(self, base: str, timeout: float) -> None:
        super().__init__()
        self.base = base.rstrip("/")
        self.timeout = timeout

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        if request.url and request.url.startswith(TWITTER_HOST):
            request.url = self.base + request.url[len(TWITTER_HOST):]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = (min(5.0, self.timeout), self.timeout)
        return super().send(request, *args, **kwargs)


class DuplicateContent(DuplicateRefused):
    """X refused a post as a duplicate: the same text may be out already, so look before anything else."""


class ParentGone(Permanent):
    """The post to reply to was deleted (or is hidden): the incident's thread must start afresh."""


def classify_error(
    exc: BaseException, *, writing: bool, now: float, channel: str = "<name>"
) -> DeliveryError:
    """The one place where tweepy's and requests' errors become ours."""
    if isinstance(exc, tweepy.TooManyRequests):
        if exc.reset_time is not None:
            wait = min(MAX_WAIT, max(1.0, exc.reset_time - now + 1))
            return Transient(f"X rate limit reached (429); it resets in {wait:.0f}s", retry_after=wait)
        return Transient("X rate limit reached (429) without a reset time", retry_after=RATE_LIMIT_FALLBACK)
    if isinstance(exc, tweepy.HTTPException):
        detail = _detail(exc)
        status = exc.response.status_code
        if status == 403 and "duplicate content" in detail.lower():
            return DuplicateContent(f"X refused a duplicate post: {detail}")
        if status == 401:
            return Permanent(
                f"X rejected the credentials (401 {detail}): the access token or user_token is expired, "
                "revoked or wrong; regenerate it and update the ${ENV} variable behind "
                f"channels.{channel}.access_token/access_token_secret (or user_token)"
            )
        if status == 403 and "reply to a tweet that is deleted" in detail.lower():
            return ParentGone(f"X refused the reply (403 {detail}): the incident's previous post is gone")
        if status == 403:
            return Permanent(
                f"X refused (403 {detail}): the app needs 'Read and Write' permission and a user-context "
                "token (OAuth 1.0a access token regenerated after the permission change, or an OAuth 2.0 "
                "token with tweet.write); an app-only bearer token cannot post"
            )
        if status >= 500:
            return server_error("X", status, writing)
        return Permanent(f"X refused the request ({status} {detail})")
    return transport_error("X", exc, writing)


def _detail(exc: tweepy.HTTPException) -> str:
    try:
        body = exc.response.json()
    except ValueError:
        return exc.response.reason or ""
    if isinstance(body, dict):
        parts = [str(body.get(k)) for k in ("title", "detail") if body.get(k)]
        parts += [str(e.get("message")) for e in body.get("errors", []) if isinstance(e, dict)]
        return ": ".join(dict.fromkeys(parts))
    return ""


class XChannel(Channel):
    type_name = "x"
    settings_model = XSettings
    settings: XSettings
    max_length = MAX_WEIGHTED
    ordered = True
    exact_reconcile = True  # a complete, paginated search of the account since the fence

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        s = self.settings
        self.user_auth = s.user_token is None
        if s.user_token is not None:
            self.client = tweepy.Client(bearer_token=s.user_token.get_secret_value(),
                                        return_type=requests.Response, wait_on_rate_limit=False)
        else:
            self.client = tweepy.Client(
                consumer_key=_plain(s.consumer_key), consumer_secret=_plain(s.consumer_secret),
                access_token=_plain(s.access_token), access_token_secret=_plain(s.access_token_secret),
                return_type=requests.Response, wait_on_rate_limit=False,
            )
        timeout = s.timeout or self.context.http_timeout
        # tweepy's own is a plain Session: proxy env read per request, no timeout, no total deadline
        self.client.session = ChannelSession(timeout=(min(5.0, timeout), timeout))
        self.client.session.mount(TWITTER_HOST, _Redirect(s.api_base_url, timeout))
        windows = [Window(900, s.budget_per_15min), Window(86400, s.budget_per_24h)]
        budgets = self.context.budgets  # keyed under redis.key_prefix, shared by every worker
        gate = min(5.0, timeout) + timeout + 5.0  # a write's longest life; a dead worker's lease lapses after it
        self.budget: PostingBudget = (budgets.budget(self.name, windows, gate, s.max_in_flight)
                                      if budgets is not None else LocalBudget(windows, gate, s.max_in_flight))
        self._user_id = s.user_id
        # this process's writes in flight (see _take_slot): never more than the account's shared limit
        self._local_write = threading.BoundedSemaphore(s.max_in_flight)
        self.progress = thread_progress(self.context.progress, self.context.key_prefix, f"x:{self.name}")

    # -- rendering --------------------------------------------------------------------------------

    def render(self, notice: Notice) -> Rendering:
        body = self.context.templates.render(
            self.type_name, "update", self.language,
            incident=notice.incident, update=notice.update,
            text=notice.update.text(self.language, self.context.page.language),
            url=notice.page_url, marker=notice.marker,
        )
        parts = compose(body, notice.page_url, notice.marker)
        return Rendering(parts=parts, language=self.language,
                         info={"weighted_lengths": [weighted_length(p) for p in parts]})

    # -- sending ----------------------------------------------------------------------------------

    def send(self, notice: Notice, rendering: Rendering) -> Receipt:
        return self._send_parts(notice, rendering, fresh=False)

    def _send_parts(self, notice: Notice, rendering: Rendering, *, fresh: bool) -> Receipt:
        total = len(rendering.parts)
        # Progress matters only inside a thread: a single post is covered by the ledger alone
        done = self._progress(notice) if total > 1 else []
        reply_to = None if fresh else notice.previous.get("last_id") or None
        for index, text in enumerate(rendering.parts):
            if index < len(done):
                reply_to = done[index]
                continue
            slot = self._take_slot()
            now = self.context.clock.timestamp()
            try:
                response = self.client.create_tweet(text=text, in_reply_to_tweet_id=reply_to,
                                                    user_auth=self.user_auth)
            except (tweepy.TweepyException, requests.RequestException) as exc:
                try:
                    error = classify_error(exc, writing=True, now=self.context.clock.timestamp(),
                                           channel=self.name)
                    if isinstance(error, Transient | DuplicateContent):
                        self.budget.release(slot)  # provably not posted by this request: the slot was not spent
                    if isinstance(exc, tweepy.TooManyRequests):
                        if exc.reset_time is None:
                            # no reset given: back off exponentially, shared by all workers; the same
                            # script closes the account for that long (review M2: no second write)
                            error = Transient(error.reason, retry_after=self.budget.backoff_429(now))
                        elif isinstance(error, Transient) and error.retry_after:
                            # closed for every process before this write's lease is free again
                            self.budget.block_until(now + error.retry_after)
                finally:
                    self._end_write(slot)
                if isinstance(error, ParentGone) and reply_to is not None and index == 0 and not fresh:
                    # someone deleted the incident's last post: carry on as a new thread, don't fail
                    log.warning("%s: previous post %s is gone; %s starts a new thread", self.name, reply_to,
                                notice.id)
                    self.budget.release(slot)
                    return self._send_parts(notice, rendering, fresh=True)
                if isinstance(error, DuplicateContent):
                    try:
                        found = self._find(notice, index + 1, total)
                    except ReconcileIncomplete as lookup:  # still evidence: posted, unverified
                        raise DuplicateContent(f"{error.reason}; looking it up failed: {lookup.reason}") from exc

                    if found is not None:
                        done = self._remember(notice, index, found) if total > 1 else [found]
                        reply_to = found
                        continue
                raise error from exc
            except BaseException:
                self._end_write(slot)
                raise
            try:  # X's block if its headers say so, the 429 streak ended, the lease ended: one write
                self.budget.posted(slot, response.headers, self.context.clock.timestamp())
            finally:
                self._local_write.release()
            tweet_id = str(response.json()["data"]["id"])
            done = self._remember(notice, index, tweet_id) if total > 1 else [tweet_id]
            reply_to = tweet_id
        return self._receipt(notice, done, fresh=fresh)

    def _take_slot(self) -> str:
        """A budget slot, holding one of the account's ``max_in_flight`` leases; waits (up to GATE_WAIT)
        while that many writes are in flight, raises Transient when the budget is spent or closed by a 429.

        Threads of this process queue on a local semaphore of ``max_in_flight`` first: more threads than
        that could never all write, and 32 sending threads polling the shared gate in Redis every 20 ms
        would cost Redis round trips and CPU for nothing. Every slot taken here is given back by
        ``_end_write``."""
        give_up = time.monotonic() + GATE_WAIT
        if not self._local_write.acquire(timeout=GATE_WAIT):
            raise Transient("max_in_flight writes to this X account are still in flight in this worker; trying "
                            "again shortly", retry_after=2.0)
        try:
            return self._shared_slot(give_up)
        except BaseException:
            self._local_write.release()
            raise

    def _end_write(self, slot: str) -> None:
        """The write that took ``slot`` has its answer: end its shared lease, then its local one."""
        try:
            self.budget.end_write(slot)
        finally:
            self._local_write.release()

    def _shared_slot(self, give_up: float) -> str:
        while True:
            slot, wait = self.budget.acquire(self.context.clock.timestamp())
            if slot is not None:
                return slot
            if wait != BUSY:
                raise Transient(f"the shared X posting budget is spent; next slot in {wait:.0f}s", retry_after=wait)
            if time.monotonic() >= give_up:
                raise Transient("max_in_flight writes to this X account are still in flight; trying again "
                                "shortly", retry_after=2.0)
            time.sleep(0.02)  # a holder's answer takes a round trip to X

    def _receipt(self, notice: Notice, ids: list[str], fresh: bool = False) -> Receipt:
        root = (None if fresh else notice.previous.get("root_id")) or ids[0]
        return Receipt(remote_id=ids[0], url=self.status_url(ids[0]),
                       extra={"root_id": root, "last_id": ids[-1], "thread_ids": ",".join(ids)})

    def status_url(self, tweet_id: str) -> str:
        return f"{self.settings.web_url.rstrip('/')}/i/web/status/{tweet_id}"

    # -- progress of a thread (so a retry never re-posts a part that is out) ------------------------

    def _progress(self, notice: Notice) -> list[str]:
        return self.progress.done(notice.id)

    def _remember(self, notice: Notice, index: int, tweet_id: str) -> list[str]:
        return self.progress.remember(notice.id, index, tweet_id)

    # -- reconcile --------------------------------------------------------------------------------

    def user_id(self) -> str:
        if self._user_id is None:
            try:
                response = self.client.get_me(user_auth=self.user_auth)
            except (tweepy.TweepyException, requests.RequestException) as exc:
                raise classify_error(exc, writing=False, now=self.context.clock.timestamp(),
                                       channel=self.name) from exc
            self._user_id = str(response.json()["data"]["id"])
        return self._user_id

    def recent_posts(self, since: float | None = None) -> list[dict[str, Any]]:
        """The account's posts since ``since`` (GET /2/users/:id/tweets), newest first, every page of them.

        Raises ``ReconcileIncomplete`` when the range could not be read to its end (more pages than
        ``reconcile_max_pages``, or no ``since`` and the history goes on), so "not found" is never guessed.
        """
        params: dict[str, Any] = {"max_results": max(5, min(100, self.settings.reconcile_max_results))}
        if since is not None:
            start = since - self.settings.reconcile_skew_seconds
            params["start_time"] = datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        posts: list[dict[str, Any]] = []
        token: str | None = None
        for _ in range(max(1, self.settings.reconcile_max_pages)):
            try:
                response = self.client.get_users_tweets(self.user_id(), pagination_token=token,
                                                        user_auth=self.user_auth, **params)
            except (tweepy.TweepyException, requests.RequestException) as exc:
                error = classify_error(exc, writing=False, now=self.context.clock.timestamp(), channel=self.name)
                raise ReconcileIncomplete(f"could not read the X timeline to the end: {error.reason}") from exc
            body = response.json()
            posts += list(body.get("data") or [])
            token = (body.get("meta") or {}).get("next_token")
            if not token:
                return posts
        raise ReconcileIncomplete(
            f"the X timeline since the send holds more than {len(posts)} posts "
            f"(channels.{self.name}.reconcile_max_pages = {self.settings.reconcile_max_pages}); "
            "raise it, or check the account and run `notifier deliveries mark-posted` / `retry --force`")

    def _settled(self, since: float | None) -> None:
        """A timeline lags: a post made moments ago may not be listed yet, so "absent" needs time."""
        if since is None:
            return
        timeout = self.settings.timeout or self.context.http_timeout
        ready = since + timeout + self.settings.reconcile_settle_seconds
        now = self.context.clock.timestamp()
        if now < ready:
            raise ReconcileIncomplete(f"the X timeline may lag behind a post made {now - since:.0f}s ago; "
                                      f"looking again in {ready - now:.0f}s", retry_after=ready - now)

    def _find(self, notice: Notice, index: int, total: int, since: float | None = None) -> str | None:
        pattern = part_pattern(notice.marker, index, total)
        for post in self.recent_posts(since):
            if pattern.search(str(post.get("text", ""))):
                return str(post["id"])
        return None

    def reconcile(self, notice: Notice, since: float | None = None) -> Receipt | None:
        """Find each part of the thread by marker and ``i/n`` among every post since ``since``.

        None only after a complete search of that range; otherwise ``ReconcileIncomplete``.
        """
        posts = self.recent_posts(since)
        # The thread's length as posted (templates may have changed since), else as rendered now
        total = thread_length(notice.marker, posts) or len(self.render(notice).parts)
        done = self._progress(notice)
        for index in range(len(done), total):
            pattern = part_pattern(notice.marker, index + 1, total)
            match = next((p for p in posts if pattern.search(str(p.get("text", "")))), None)
            if match is None:
                break
            done = self._remember(notice, index, str(match["id"]))
        if len(done) >= total:
            return self._receipt(notice, done[:total])
        self._settled(since)  # absent, but maybe only not listed yet
        return None  # not (completely) out: a resend continues after the parts found


def thread_length(marker: str, posts: list[dict[str, Any]]) -> int | None:
    """``n`` from a posted ``<marker> i/n`` among ``posts``; None when no part of a thread is there."""
    pattern = re.compile(re.escape(marker) + r" [0-9]+/([0-9]+)(?![0-9])")
    for post in posts:
        found = pattern.search(str(post.get("text", "")))
        if found:
            return int(found.group(1))
    return None


def _plain(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def config_warnings(conf: XSettings | Settings) -> list[str]:
    """What `notifier config check` should warn about (the config itself is valid).

    Given one channel's settings (what the CLI passes), the warnings are relative to that channel;
    given the whole Settings, each is prefixed with its ``channels.<name>`` path.
    """
    channels = getattr(conf, "channels", None)
    if channels is not None:
        return [f"channels.{name}.{w}" for name, c in channels.items() if isinstance(c, XSettings)
                for w in config_warnings(c)]
    if not isinstance(conf, XSettings):
        return []
    out = []
    if conf.bearer_token is not None:
        using = "user_token (OAuth 2.0 user context)" if conf.user_token else "the OAuth 1.0a keys"
        out.append("bearer_token: an app-only bearer token cannot post to X and is not used; posting uses "
                   + using)
    if conf.budget_per_15min > 100:
        out.append(f"budget_per_15min: {conf.budget_per_15min} exceeds X's per-user limit of 100 posts per "
                   "15 minutes; X will answer 429 first")
    if conf.api_base_url.startswith("http://"):
        out.append(f"api_base_url: {conf.api_base_url} is plain HTTP; credentials travel unencrypted unless "
                   "it is a local proxy")
    return out
