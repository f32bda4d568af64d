"""facebook: posts to a Facebook Page through the Graph API with requests.

The first update of an incident is a Page post (``POST /{ver}/{page_id}/feed`` with ``message`` and
``link``); later updates are comments on it (``POST /{ver}/{post_id}/comments``), or new posts when
``follow_ups: posts``. With ``edit_on_resolve`` the resolution also rewrites the first post
(``POST /{ver}/{post_id}``), which is idempotent and therefore done before the comment.

Authentication is a Page access token; with ``app_secret`` set every call also carries
``appsecret_proof`` = HMAC-SHA256(key=app secret, message=token), as apps with "Require App Secret" need.
The token travels in the POST body or the query string of GETs, never in logs.

Graph errors are classified by ``error.code`` (not by HTTP status) in ``classify_error`` only:
transient 1, 2, 4, 17, 32, 341, 613, 80001 (waiting ``estimated_time_to_regain_access`` from
``X-Business-Use-Case-Usage`` when given); permanent 190 (token), 102, 10, 200-299, 100, 368; 506
(duplicate post) means it may be out already, so we look for the marker.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from dataclasses import replace
from typing import Any, Literal

import requests
from pydantic import SecretStr

from notifier.channels.base import Channel, Rendering
from notifier.channels.http import ChannelSession
from notifier.channels.http_errors import server_error, transport_error
from notifier.config import ChannelSettings
from notifier.domain.model import Notice, Receipt
from notifier.errors import DeliveryError, DuplicateRefused, OutcomeUnknown, Permanent, ReconcileIncomplete, Transient

log = logging.getLogger(__name__)

TRANSIENT_CODES = {1, 2, 4, 17, 32, 341, 613, 80001}
PERMANENT_CODES = {190, 102, 10, 100, 368} | set(range(200, 300))
DEFAULT_BACKOFF = 60.0


class FacebookSettings(ChannelSettings):
    page_id: str
    page_token: SecretStr
    app_secret: SecretStr | None = None
    graph_url: str = "https://graph.facebook.com"
    api_version: str = "v21.0"
    web_url: str = "https://www.facebook.com"
    follow_ups: Literal["comments", "posts"] = "comments"
    edit_on_resolve: bool = False
    timeout: float | None = None  # seconds; default: delivery.http_timeout
    reconcile_limit: int = 100  # posts/comments per page reconcile reads (Graph allows up to 100)
    reconcile_max_pages: int = 50  # pages reconcile may read before it says "I don't know"
    reconcile_skew_seconds: float = 300.0  # ``since`` this much before the row's sending_at (clock skew)


class DuplicatePost(DuplicateRefused):
    """Graph error 506: the same message is already on the Page; look for it before anything else."""


class TargetGone(Permanent):
    """Graph 100/33: the object (the incident's post, when commenting) does not exist any more."""


class GraphError(Exception):
    """A Graph API error response, as parsed from its ``error`` object."""

    def __init__(self, response: requests.Response) -> None:
        self.response = response
        try:
            body = response.json()
        except ValueError:
            body = {}
        err = body.get("error", {}) if isinstance(body, dict) else {}
        self.code = int(err.get("code", 0) or 0)
        self.subcode = err.get("error_subcode")
        self.message = str(err.get("message") or response.reason or "")
        self.fbtrace_id = err.get("fbtrace_id")
        super().__init__(f"HTTP {response.status_code} code {self.code}: {self.message}")


def regain_after(headers: Any) -> float | None:
    """Seconds until access returns, from X-Business-Use-Case-Usage (minutes, per business and type)."""
    raw = headers.get("X-Business-Use-Case-Usage")
    if not raw:
        return None
    try:
        usage = json.loads(raw)
    except ValueError:
        return None
    minutes = [
        float(entry.get("estimated_time_to_regain_access") or 0)
        for entries in (usage.values() if isinstance(usage, dict) else [])
        for entry in (entries if isinstance(entries, list) else [])
        if isinstance(entry, dict)
    ]
    longest = max(minutes, default=0.0)
    return longest * 60 if longest > 0 else None


def classify_error(exc: BaseException, *, writing: bool, channel: str = "<name>") -> DeliveryError:
    """The one place where requests' errors and Graph error codes become ours."""
    if isinstance(exc, GraphError):
        code, sub = exc.code, f"/{exc.subcode}" if exc.subcode else ""
        where = f"(code {code}{sub}, fbtrace_id {exc.fbtrace_id})"
        if code == 506:
            return DuplicatePost(f"Facebook says this is a duplicate post {where}")
        if code in TRANSIENT_CODES:
            regain = regain_after(exc.response.headers)
            return Transient(f"Facebook is throttling or briefly unavailable: {exc.message} {where}",
                             retry_after=regain or DEFAULT_BACKOFF, grows=regain is None)
        if code == 190:
            return Permanent(
                f"the Facebook Page access token has expired or is invalid: {exc.message} {where}; "
                "generate a new long-lived Page token and update the ${ENV} variable behind "
                f"channels.{channel}.page_token"
            )
        if code in (10, 200) or 200 <= code < 300:
            return Permanent(
                f"the Page token lacks a permission: {exc.message} {where}; grant pages_manage_posts and "
                "pages_read_engagement (and pages_manage_engagement for comments) and issue a new token"
            )
        if code == 102:
            return Permanent(f"the Facebook session is invalid: {exc.message} {where}; log in again and "
                             "issue a new Page token")
        if code == 368:
            return Permanent(f"Facebook blocked the post as against its policies: {exc.message} {where}")
        if code == 100 and exc.subcode == 33:
            return TargetGone(f"Facebook says the object does not exist (any more): {exc.message} {where}; "
                              "check page_id, or whether the incident's post was deleted")
        if code in PERMANENT_CODES:
            return Permanent(f"Facebook refused the request: {exc.message} {where}; check page_id and "
                             "api_version")
        if exc.response.status_code >= 500:
            return server_error("Facebook", exc.response.status_code, writing, f" {where}")
        return Permanent(f"Facebook refused the request: {exc.message} {where}")
    return transport_error("Facebook", exc, writing)


class FacebookChannel(Channel):
    type_name = "facebook"
    settings_model = FacebookSettings
    settings: FacebookSettings
    max_length = 63206
    ordered = True
    exact_reconcile = True  # a complete, paginated search of the account since the fence

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.session = ChannelSession()  # reads the proxy environment once per host
        self.timeout = self.settings.timeout or self.context.http_timeout
        self._auth_params = self._make_auth()  # the token and its proof do not change: one HMAC, not one per call

    # -- rendering --------------------------------------------------------------------------------

    def render(self, notice: Notice) -> Rendering:
        text = self._template("update", notice)
        return Rendering(parts=(text,), language=self.language, info={"link": notice.page_url})

    def _template(self, name: str, notice: Notice, **extra: Any) -> str:
        return self.context.templates.render(
            self.type_name, name, self.language,
            incident=notice.incident, update=notice.update,
            text=notice.update.text(self.language, self.context.page.language),
            url=notice.page_url, marker=notice.marker, **extra,
        )

    # -- HTTP -------------------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return f"{self.settings.graph_url.rstrip('/')}/{self.settings.api_version}/{path}"

    def _auth(self) -> dict[str, str]:
        return self._auth_params

    def _make_auth(self) -> dict[str, str]:
        token = self.settings.page_token.get_secret_value()
        params = {"access_token": token}
        if self.settings.app_secret is not None:
            key = self.settings.app_secret.get_secret_value().encode()
            params["appsecret_proof"] = hmac.new(key, token.encode(), hashlib.sha256).hexdigest()
        return params

    def _call(self, method: str, path: str, data: dict[str, str] | None = None,
              params: dict[str, str] | None = None) -> dict[str, Any]:
        writing = method == "POST"
        try:
            if writing:
                response = self.session.post(self._url(path), data={**(data or {}), **self._auth()},
                                             timeout=(min(5.0, self.timeout), self.timeout))
            else:
                response = self.session.get(self._url(path), params={**(params or {}), **self._auth()},
                                            timeout=(min(5.0, self.timeout), self.timeout))
        except requests.RequestException as exc:
            raise classify_error(exc, writing=writing, channel=self.name) from exc
        if not response.ok:
            error = GraphError(response)
            raise classify_error(error, writing=writing, channel=self.name) from error
        try:
            body = response.json()
        except ValueError as exc:
            raise OutcomeUnknown(f"Facebook answered {response.status_code} without JSON") from exc
        return body if isinstance(body, dict) else {}

    # -- sending ----------------------------------------------------------------------------------

    def _post_id(self, notice: Notice) -> str | None:
        return notice.previous.get("post_id") or None

    def _as_comment(self, notice: Notice) -> bool:
        return self.settings.follow_ups == "comments" and self._post_id(notice) is not None

    def send(self, notice: Notice, rendering: Rendering) -> Receipt:
        post_id = self._post_id(notice)
        if (post_id and self.settings.edit_on_resolve and notice.update.status == "resolved"
                and notice.previous.get("root_message")):
            edited = self._template("resolved_edit", notice, original=notice.previous["root_message"])
            try:
                self._call("POST", post_id, data={"message": edited})  # idempotent, so it goes first
            except TargetGone:
                log.warning("%s: post %s is gone; nothing to edit for %s", self.name, post_id, notice.id)
        try:
            if self._as_comment(notice):
                assert post_id is not None
                try:
                    body = self._call("POST", f"{post_id}/comments", data={"message": rendering.text})
                    return self._receipt(notice, str(body["id"]), comment=True)
                except TargetGone:
                    # someone deleted the incident's post: publish this update as a new post instead
                    log.warning("%s: post %s is gone; %s becomes a new post", self.name, post_id, notice.id)
                    notice = replace(notice, previous={})
            data = {"message": rendering.text}
            if notice.page_url:
                data["link"] = notice.page_url
            body = self._call("POST", f"{self.settings.page_id}/feed", data=data)
            return self._receipt(notice, str(body["id"]), comment=False, message=rendering.text)
        except DuplicatePost as refused:
            try:
                found = self.reconcile(notice)
            except ReconcileIncomplete as lookup:  # still evidence: posted, unverified
                raise DuplicatePost(f"{refused.reason}; looking it up failed: {lookup.reason}") from refused
            if found is None:
                raise
            return found

    def _receipt(self, notice: Notice, remote_id: str, *, comment: bool, message: str = "") -> Receipt:
        web = self.settings.web_url.rstrip("/")
        if comment:
            post_id = self._post_id(notice) or remote_id
            extra = {"post_id": post_id, "root_message": notice.previous.get("root_message", "")}
            return Receipt(remote_id=remote_id, url=f"{web}/{post_id}?comment_id={remote_id}", extra=extra)
        # A new post: it becomes the thread's root unless follow-ups are posts and one exists already
        earlier = self._post_id(notice) if self.settings.follow_ups == "posts" else None
        root = earlier or remote_id
        root_message = notice.previous.get("root_message", "") if earlier else message
        return Receipt(remote_id=remote_id, url=f"{web}/{remote_id}",
                       extra={"post_id": root, "root_message": root_message})

    # -- reconcile --------------------------------------------------------------------------------

    def reconcile(self, notice: Notice, since: float | None = None) -> Receipt | None:
        """Look for the marker among every Page post (or thread comment) since ``since``, page by page.

        None only after the listing ran out (no ``paging.next``); ``ReconcileIncomplete`` otherwise.
        """
        pattern = re.compile(re.escape(notice.marker) + r"(?![0-9])")
        comment = self._as_comment(notice)
        params = {"fields": "id,message", "limit": str(max(1, min(100, self.settings.reconcile_limit)))}
        if since is not None:
            params["since"] = str(int(since - self.settings.reconcile_skew_seconds))
        if comment:
            path = f"{self._post_id(notice)}/comments"
            params["order"] = "reverse_chronological"
        else:
            path = f"{self.settings.page_id}/posts"
        for _ in range(max(1, self.settings.reconcile_max_pages)):
            try:
                body = self._call("GET", path, params=params)
            except TargetGone:  # the post was deleted; send() then made this update a new post
                if comment:
                    return self.reconcile(replace(notice, previous={}), since)
                raise
            except DeliveryError as exc:
                raise ReconcileIncomplete(f"could not read the Page's posts to the end: {exc.reason}") from exc
            for item in body.get("data") or []:
                if pattern.search(str(item.get("message", ""))):
                    return self._receipt(notice, str(item["id"]), comment=comment,
                                         message=str(item.get("message", "")))
            paging = body.get("paging") or {}
            after = (paging.get("cursors") or {}).get("after")
            if not paging.get("next") or not after:
                return None  # the whole range was read: provably not there
            params["after"] = str(after)
        raise ReconcileIncomplete(
            f"the Page holds more posts since the send than channels.{self.name}.reconcile_max_pages "
            f"({self.settings.reconcile_max_pages}) pages; raise it, or check the Page and run "
            "`notifier deliveries mark-posted` / `retry --force`")
