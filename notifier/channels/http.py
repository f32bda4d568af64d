"""Shared HTTP error mapping for channels that use requests: did the request possibly take effect?"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from requests.cookies import RequestsCookieJar
from requests.sessions import merge_setting
from requests.structures import CaseInsensitiveDict
from requests.utils import check_header_validity, get_environ_proxies, get_netrc_auth
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

    ``request`` prepares a plain call (what the channels and tweepy make: a method, a URL, params, a form,
    bytes or JSON body, headers, an auth callable) without requests' per-call re-merging: the session's
    default headers are validated once (again only when they change), a form or query of strings is
    encoded directly (requests' encoder runs slow ``typing`` protocol checks per value), ``~/.netrc`` is
    looked up once per scheme://host like the environment, and the cookie jar is only consulted when it
    holds a cookie. The request is the same byte for byte (``tests/unit/test_channel_session.py``); the
    auth callable (tweepy's OAuth 1.0a signer) still runs last on the prepared request, as in requests.
    Anything else (files, cookies or hooks passed or set on the session, per-call proxies/verify/cert)
    takes requests' own path unchanged.

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
        self._netrc: dict[tuple[str, str], Any] = {}
        self._defaults: tuple[tuple[tuple[Any, Any], ...], CaseInsensitiveDict[Any]] | None = None

    def request(  # requests' own signature, keyword for keyword
        self, method: str, url: str | bytes, params: Any = None, data: Any = None, headers: Any = None,
        cookies: Any = None, files: Any = None, auth: Any = None, timeout: Any = None,
        allow_redirects: bool = True, proxies: Any = None, hooks: Any = None, stream: Any = None,
        verify: Any = None, cert: Any = None, json: Any = None,
    ) -> requests.Response:
        if (cookies or files or hooks or proxies or stream is not None or verify is not None or cert is not None
                or isinstance(url, bytes) or self.auth or self.params or len(self.cookies)
                or any(self.hooks.values())):
            return super().request(method, url, params=params, data=data, headers=headers, cookies=cookies,
                                   files=files, auth=auth, timeout=timeout, allow_redirects=allow_redirects,
                                   proxies=proxies, hooks=hooks, stream=stream, verify=verify, cert=cert, json=json)
        prep = self._prepare(method, url, params, data, headers, auth, json)
        settings = self.merge_environment_settings(prep.url or url, {}, None, None, None)
        return self.send(prep, timeout=timeout, allow_redirects=allow_redirects, **settings)

    def _prepare(self, method: str, url: str, params: Any, data: Any, headers: Any, auth: Any,
                 json: Any) -> requests.PreparedRequest:
        """``PreparedRequest.prepare`` step by step, as ``Session.prepare_request`` would call it here."""
        prep = requests.PreparedRequest()
        prep.prepare_method(method.upper())
        query = _form(params) if params else ""
        prep.prepare_url(url, params if query is None else query)
        prep.headers = self._merged_headers(headers)
        prep._cookies = RequestsCookieJar()  # empty (checked above): no Cookie header, as requests would send
        form = _form(data) if data else None
        if form is not None:
            prep.prepare_body(form, None)
            if "content-type" not in prep.headers:
                prep.headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            prep.prepare_body(data or {}, None, json)
        if not auth and self.trust_env:
            parts = urlsplit(url)
            key = (parts.scheme, parts.netloc)
            if key not in self._netrc:
                if len(self._netrc) >= self.MAX_HOSTS:
                    self._netrc.clear()
                self._netrc[key] = get_netrc_auth(url)
            auth = self._netrc[key]
        prep.prepare_auth(auth, url)  # last but hooks, as in prepare(): a signer sees the finished request
        return prep

    def _merged_headers(self, headers: Any) -> CaseInsensitiveDict[Any]:
        """``merge_setting(headers, self.headers)``, validated: the session's part once per change."""
        snapshot = tuple(self.headers.items())
        if self._defaults is None or self._defaults[0] != snapshot:
            valid: CaseInsensitiveDict[Any] = CaseInsensitiveDict()
            for name, value in snapshot:
                if value is not None:
                    check_header_validity((name, value))
                    valid[name] = value
            self._defaults = (snapshot, valid)
        merged = self._defaults[1].copy()
        for name, value in (headers or {}).items():
            if value is None:
                merged.pop(name, None)  # requests drops a header a caller sets to None
            else:
                check_header_validity((name, value))
                merged[name] = value
        return merged

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


def _form(value: Any) -> str | None:
    """A dict of strings form-encoded as requests' ``_encode_params`` would (None: leave it to requests)."""
    if type(value) is not dict or not all(type(k) is str and type(v) is str for k, v in value.items()):
        return None
    return urlencode(list(value.items()))
