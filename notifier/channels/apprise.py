"""apprise: one chat destination for operators (Slack, Discord, Microsoft Teams, Telegram, Matrix, ntfy
or a JSON endpoint) through Apprise's plugin for it; one target URL per channel.

Facts:
- ``url`` is an Apprise URL (``slack://``, ``discord://``, ``workflow://``, ``tgram://``, ``matrix(s)://``,
  ``ntfy(s)://``, ``json(s)://``). It carries the service's credentials, so it must be a ``${ENV}``
  reference; reprs, logs and errors show only its scheme.
- One notify() is one attempt. Apprise's own retries (``?retry=``), its per-plugin throttle and
  Matrix's 429 loop are switched off, and long text is cut by ``render`` (never split into several
  messages by Apprise): the ledger decides whether and when to try again.
- The outcome is judged from the HTTP exchanges the plugin made, recorded at
  ``requests.adapters.HTTPAdapter.send`` in the sending thread while notify() runs (notify() itself
  only says True or False). ``classify`` is the one place where they become our error tree:
  2xx → posted; 429 and 5xx → ``Transient``; other 4xx, a redirect, or a 2xx that Apprise still calls a
  failure (Slack's ``ok: false``) → ``Permanent`` with the service's answer; no connection →
  ``Transient``; a timeout or a dropped connection after the request left → ``OutcomeUnknown``.
- No reconcile: these services cannot be asked whether a message exists. An unknown outcome waits for
  a person (``notifier deliveries retry --force`` or ``mark-posted``), like a webhook without
  ``status_url``.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

import requests
from pydantic import SecretStr, field_validator
from requests.adapters import HTTPAdapter

from notifier import logsafe
from notifier.channels.base import Channel, Rendering
from notifier.channels.http import request_error
from notifier.config import ChannelSettings
from notifier.domain.model import Notice, Receipt
from notifier.errors import CannotReconcile, DeliveryError, OutcomeUnknown, Permanent, Transient

if TYPE_CHECKING:
    from apprise.plugins.base import NotifyBase


@dataclass(frozen=True)
class Service:
    name: str
    max_length: int  # per message: the service's limit, never above Apprise's body_maxlen
    in_bytes: bool = False  # max_length counts UTF-8 bytes, not characters


# scheme -> service. The limits are what one readable message holds on each (Telegram and Discord:
# the API's hard limit; Slack: its 4,000-character guidance for text; ntfy: 4,096 bytes before the
# server turns a message into an attachment; Teams workflows: Apprise's own 1,000).
SERVICES: dict[str, Service] = {
    "slack": Service("Slack", 4000),
    "discord": Service("Discord", 2000),
    "workflow": Service("Microsoft Teams", 1000),
    "workflows": Service("Microsoft Teams", 1000),
    "tgram": Service("Telegram", 4096),
    "matrix": Service("Matrix", 8000),
    "matrixs": Service("Matrix", 8000),
    "ntfy": Service("ntfy", 4096, in_bytes=True),
    "ntfys": Service("ntfy", 4096, in_bytes=True),
    "json": Service("JSON endpoint", 32768),
    "jsons": Service("JSON endpoint", 32768),
}


def scheme_of(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def secret_parts(url: str, plugin: NotifyBase) -> set[str]:
    """The pieces of ``url`` that Apprise itself hides when it describes the plugin (tokens, passwords):
    its plugins log API URLs built from them (Telegram's ``/bot<token>/``), which the whole URL as a
    secret would not match."""
    shown = plugin.url(privacy=True)
    parts = urlsplit(url)
    pieces = re.split(r"[/:@,]+", parts.netloc + parts.path) + [value for _, value in parse_qsl(parts.query)]
    return {p for p in pieces if len(p) >= 6 and p not in shown}


def instantiate(url: str, timeout: float | None = None) -> NotifyBase:
    """The Apprise plugin for ``url`` with retries and throttling off. ValueError names what is wrong
    without repeating the URL (it holds credentials)."""
    import apprise  # heavy; only the worker and `config check` need it

    asset = apprise.AppriseAsset(storage_mode="memory")  # no cache files written by plugins
    plugin = apprise.Apprise.instantiate(url, asset=asset, suppress_exceptions=True)
    if plugin is None:
        raise ValueError(f"Apprise cannot use this {scheme_of(url)}:// URL (a token or target is missing "
                         "or malformed; see the Apprise wiki page for the service)")
    plugin.retry = 0  # even if the URL says ?retry=N: the ledger retries
    plugin.wait = 0.0
    plugin.request_rate_per_sec = 0  # no sleeping between requests
    if hasattr(plugin, "default_retries"):
        plugin.default_retries = 1  # Matrix: one attempt, its own 429 loop off
    if timeout is not None:
        plugin.socket_connect_timeout = timeout
        plugin.socket_read_timeout = timeout
    return plugin


class AppriseSettings(ChannelSettings):
    url: SecretStr  # an Apprise URL; a ${ENV_VAR} reference (the config loader refuses literals)
    timeout: float | None = None  # seconds per request (connect and read); default: delivery.http_timeout

    @field_validator("url")
    @classmethod
    def _supported(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value()
        scheme = scheme_of(url)
        if scheme not in SERVICES:
            known = ", ".join(f"{s}://" for s in SERVICES)
            raise ValueError(f"unsupported Apprise scheme {scheme + '://' if scheme else '(none)'}; use one of: "
                             f"{known}")
        targets = len(instantiate(url))
        if targets != 1:
            raise ValueError(f"names {targets} targets; one target per channel (add a channel for each), "
                             "so that one message's outcome is one ledger row's")
        return value


# -- what the plugin did on the wire -------------------------------------------------------------


@dataclass(frozen=True)
class Exchange:
    """One HTTP request a plugin made: its answer, or the exception that stood in for one."""

    method: str
    status: int | None = None
    error: BaseException | None = None
    retry_after: float | None = None
    body: str = ""  # the start of the answer, for a failure's reason (never the request URL)

    @classmethod
    def of(cls, method: str, outcome: requests.Response | BaseException) -> Exchange:
        if isinstance(outcome, BaseException):
            return cls(method, error=outcome)
        return cls(method, outcome.status_code, None, _retry_after(outcome.headers.get("Retry-After")),
                   outcome.content[:2000].decode("utf-8", "replace"))


def _retry_after(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


_recording = threading.local()
_install_lock = threading.Lock()


def _install_recorder() -> None:
    """Wrap ``HTTPAdapter.send`` once per process. Outside ``recording()`` it only passes through."""
    with _install_lock:
        if getattr(HTTPAdapter.send, "_notifier_records", False):
            return
        original = HTTPAdapter.send

        def send(self: HTTPAdapter, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
            log = getattr(_recording, "log", None)
            if log is None:
                return original(self, request, *args, **kwargs)
            try:
                response = original(self, request, *args, **kwargs)
            except BaseException as exc:
                log.append((str(request.method), exc))
                raise
            log.append((str(request.method), response))
            return response

        send._notifier_records = True  # type: ignore[attr-defined]
        HTTPAdapter.send = send  # type: ignore[method-assign]


@contextmanager
def recording() -> Iterator[list[tuple[str, requests.Response | BaseException]]]:
    """Every HTTP exchange this thread makes inside the block, in order."""
    _install_recorder()
    log: list[tuple[str, requests.Response | BaseException]] = []
    previous = getattr(_recording, "log", None)
    _recording.log = log
    try:
        yield log
    finally:
        _recording.log = previous


def classify(exchanges: Sequence[Exchange], delivered: bool, service: str, where: str) -> DeliveryError | None:
    """The one boundary: None when the service took the message, else our error for what it said.

    The last exchange decides: a plugin stops at its first failed request, and with one target per
    channel nothing before it was the message (a Matrix login, a Telegram chat lookup).
    """
    if delivered:
        return None
    if not exchanges:
        return Permanent(f"Apprise sent nothing to {service} (it refused the message before any request); "
                         f"check {where}")
    last = exchanges[-1]
    if last.error is not None:
        if isinstance(last.error, requests.RequestException):
            error = request_error(last.error)
            return type(error)(f"{service}: {error.reason}")
        return OutcomeUnknown(f"{service}: the request failed mid-way ({type(last.error).__name__})")
    status = last.status or 0
    answer = " ".join(last.body.split())[:200]
    if 200 <= status < 300:
        return Permanent(f"{service} answered HTTP {status} but refused the message: {answer}")
    if status == 429:
        return Transient(f"{service} is rate-limiting us (HTTP 429)", retry_after=last.retry_after)
    if status >= 500:
        return Transient(f"{service} answered HTTP {status}", retry_after=last.retry_after)
    if 300 <= status < 400:
        return Permanent(f"HTTP {status}: {service} redirects; fix the host in {where}")
    if status in (401, 403):
        return Permanent(f"HTTP {status}: {service} refused the credentials in {where}: {answer}")
    return Permanent(f"{service} answered HTTP {status}: {answer}")


def receipt_from(exchanges: Sequence[Exchange], fallback: str) -> Receipt:
    """The service's message id when its answer names one (ntfy, Discord, Telegram, Matrix, Slack's bot)."""
    for exchange in reversed(exchanges):
        if exchange.status is None or not 200 <= exchange.status < 300:
            continue
        try:
            data = json.loads(exchange.body) if exchange.body else None
        except ValueError:
            data = None
        if isinstance(data, dict):
            result = data.get("result")
            found = (data.get("id") or data.get("event_id") or data.get("ts")
                     or (result.get("message_id") if isinstance(result, dict) else None))
            if found:
                return Receipt(remote_id=str(found))
        break
    return Receipt(remote_id=fallback)


# -- the channel ---------------------------------------------------------------------------------


def notify_type(notice: Notice) -> str:
    """Apprise's colour/icon hint: green when it is over, red for a major outage, else a warning."""
    if notice.update.status in ("resolved", "completed"):
        return "success"
    if notice.incident.kind != "incident":
        return "info"
    return "failure" if notice.incident.impact.value in ("major", "critical") else "warning"


class AppriseChannel(Channel):
    type_name = "apprise"
    settings_model = AppriseSettings
    settings: AppriseSettings
    ordered: ClassVar[bool] = False
    idempotent: ClassVar[bool] = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.scheme = scheme_of(self.settings.url.get_secret_value())
        self.service = SERVICES[self.scheme]
        self._plugin: NotifyBase | None = None
        self._lock = threading.Lock()  # a plugin keeps state between sends (Discord's rate-limit window)

    def __repr__(self) -> str:
        return f"<AppriseChannel {self.name!r} {self.scheme}://…>"

    def render(self, notice: Notice) -> Rendering:
        body = notice.update.text(self.language, self.context.page.language)
        text = self._render(notice, body)
        if self._length(text) <= self.service.max_length:
            return Rendering(parts=(text,), language=self.language)
        # too long: keep the link and the marker, cut the update's own text (the longest cut that fits)
        low, high = 0, len(body)
        while low < high:
            keep = (low + high + 1) // 2
            if self._length(self._shortened(notice, body, keep)) <= self.service.max_length:
                low = keep
            else:
                high = keep - 1
        text = self._shortened(notice, body, low)
        return Rendering(parts=(text,), language=self.language)

    def _shortened(self, notice: Notice, body: str, keep: int) -> str:
        return self._render(notice, body[:keep].rstrip() + "…")

    def _length(self, text: str) -> int:
        return len(text.encode()) if self.service.in_bytes else len(text)

    def _render(self, notice: Notice, body: str) -> str:
        return self.context.templates.render(
            self.type_name, "update", self.language,
            incident=notice.incident, update=notice.update, text=body,
            url=notice.page_url, marker=notice.marker,
        )

    def plugin(self) -> NotifyBase:
        if self._plugin is None:
            timeout = self.settings.timeout or self.context.http_timeout
            url = self.settings.url.get_secret_value()
            self._plugin = instantiate(url, timeout)
            logsafe.add_secrets(secret_parts(url, self._plugin))
        return self._plugin

    def send(self, notice: Notice, rendering: Rendering) -> Receipt:
        where = f"channels.{self.name}.url"
        with self._lock:
            plugin = self.plugin()
            self._refuse_to_wait(plugin)
            raised: BaseException | None = None
            delivered = False
            with recording() as log:
                try:
                    delivered = bool(plugin.notify(body=rendering.text, title="", notify_type=notify_type(notice),
                                                   body_format="text", overflow="truncate"))
                except Exception as exc:  # a plugin bug; what reached the wire decides below
                    raised = exc
        exchanges = [Exchange.of(method, outcome) for method, outcome in log]
        if raised is not None and not delivered:
            if exchanges and exchanges[-1].error is None and exchanges[-1].status and exchanges[-1].status < 300:
                raise OutcomeUnknown(f"Apprise's {self.service.name} plugin raised "
                                     f"{type(raised).__name__} after the service accepted a request")
            if not exchanges:
                raise Permanent(f"Apprise's {self.service.name} plugin raised {type(raised).__name__} "
                                f"before sending; check {where}") from raised
        error = classify(exchanges, delivered, self.service.name, where)
        if error is not None:
            raise error
        return receipt_from(exchanges, notice.id)

    def _refuse_to_wait(self, plugin: NotifyBase) -> None:
        """Discord's plugin sleeps out a rate-limit window it saw; hand the wait to the ledger instead."""
        remaining = getattr(plugin, "ratelimit_remaining", None)
        reset = getattr(plugin, "ratelimit_reset", None)
        if isinstance(remaining, int | float) and remaining <= 0 and isinstance(reset, datetime):
            wait = (reset - datetime.now(UTC).replace(tzinfo=None)).total_seconds()
            if wait > 0:
                raise Transient(f"{self.service.name} rate limit: the window resets in {wait:.0f} s",
                                retry_after=wait + 1)

    def reconcile(self, notice: Notice, since: float | None = None) -> Receipt | None:
        raise CannotReconcile(
            f"{self.service.name} may or may not have this message, and Apprise cannot ask it; check the "
            f"{self.service.name} destination, then run `notifier deliveries retry --force {notice.id}` or "
            f"`notifier deliveries mark-posted {notice.id}`"
        )

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "service": self.service.name}
