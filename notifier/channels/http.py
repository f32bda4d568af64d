"""Shared HTTP error mapping for channels that use requests: did the request possibly take effect?"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.sessions import merge_setting
from requests.utils import get_environ_proxies
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NameResolutionError, NewConnectionError

from notifier.channels import deadline
from notifier.errors import DeliveryError, OutcomeUnknown, Transient

_BEFORE_SENDING = (NewConnectionError, ConnectTimeoutError, NameResolutionError)


def request_error(exc: requests.RequestException) -> DeliveryError:
    """Transient only when the request provably never left (no connection); otherwise unknown.

    ``requests.ConnectionError`` also wraps "connection aborted" after the body was sent, which the
    server may well have processed: that one must be reconciled, not retried blind.
    """
    if isinstance(exc, deadline.WindowClosed):
        return Transient(f"not sent: {exc}")
    if isinstance(exc, deadline.DeadlineExceeded):
        return OutcomeUnknown(f"{exc}; the other side may have it")
    if isinstance(exc, requests.ConnectTimeout):
        return Transient(f"cannot connect: {exc.__class__.__name__}")
    if isinstance(exc, requests.ConnectionError):
        reason = exc.args[0] if exc.args else None
        if isinstance(reason, MaxRetryError):
            reason = reason.reason
        if isinstance(reason, _BEFORE_SENDING):
            return Transient(f"cannot connect: {reason.__class__.__name__}")
        return OutcomeUnknown(f"connection dropped mid-request ({exc.__class__.__name__}); it may have arrived")
    if isinstance(exc, requests.Timeout):
        return OutcomeUnknown("timed out after the request was sent; the other side may have it")
    # Not the exception's text: requests puts the URL in it, and URLs can carry credentials.
    return OutcomeUnknown(f"request failed mid-way: {exc.__class__.__name__}")


class ChannelSession(requests.Session):
    """A ``requests.Session`` that reads the proxy and CA-bundle environment once per scheme://host.

    A plain session with ``trust_env`` scans ``os.environ`` for ``*_PROXY``/``NO_PROXY`` and the CA bundle
    variables on every request (6.5 % of a delivery's CPU in the issue-14 profile). The answer only depends
    on the URL's host and the environment, which does not change under a running worker, so it is kept
    per host. Same behaviour as requests otherwise: explicit ``proxies``/``verify`` still win, and a
    changed environment takes effect when the worker restarts. Thread-safe (a racing first request for a
    host computes the same entry twice, harmlessly).

    Every request also has a hard total deadline (``notifier/channels/deadline.py``): its connect + read
    timeout, never past the send window of the claim it is sent under; a request still running then is
    cut and raises ``DeadlineExceeded``. The adapters mounted here (and any ``DeadlineAdapter`` a channel
    mounts) enrol their sockets with it.
    """

    MAX_HOSTS = 64  # channels talk to a handful of hosts; a cap keeps a misbehaving caller bounded

    def __init__(self, timeout: tuple[float, float] | None = None) -> None:
        super().__init__()
        self.default_timeout = timeout  # for a caller that passes none (tweepy): requests' own default is none
        self.mount("https://", deadline.DeadlineAdapter())
        self.mount("http://", deadline.DeadlineAdapter())
        self._environment: dict[tuple[str, str, str | None], tuple[dict[str, str], str | None]] = {}

    def merge_environment_settings(
        self, url: str, proxies: dict[str, str] | None, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        if not self.trust_env:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        proxies = dict(proxies or {})
        no_proxy = proxies.get("no_proxy")
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc, no_proxy)
        env = self._environment.get(key)
        if env is None:
            env = (dict(get_environ_proxies(url, no_proxy=no_proxy)),
                   os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE"))
            if len(self._environment) >= self.MAX_HOSTS:
                self._environment.clear()
            self._environment[key] = env
        for scheme, proxy in env[0].items():
            proxies.setdefault(scheme, proxy)
        if (verify is True or verify is None) and env[1]:
            verify = env[1]
        return {  # the rest of requests' own merge_environment_settings
            "proxies": merge_setting(proxies, self.proxies),
            "stream": merge_setting(stream, self.stream),
            "verify": merge_setting(verify, self.verify),
            "cert": merge_setting(cert, self.cert),
        }

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        if kwargs.get("timeout") is None and self.default_timeout is not None:
            kwargs["timeout"] = self.default_timeout
        with deadline.guard(deadline.budget_of(kwargs.get("timeout"))) as watch:
            try:
                return super().send(request, **kwargs)
            except Exception as exc:
                if watch is not None and watch.fired:  # whatever urllib3 made of the cut socket
                    raise deadline.DeadlineExceeded(
                        f"cut at its total deadline ({watch.budget:.1f} s) with no complete answer"
                    ) from exc
                raise
