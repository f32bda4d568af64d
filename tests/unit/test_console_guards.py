"""The console's guard dependencies, in process: the order of the checks and what each refusal says.

The App is a real one from the composition root, on the in-memory store, with a dict standing in for the
Redis the session store uses; the routes run in
process through httpx's ASGI transport. The integration tests drive the same routes over a real server and Redis.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from notifier.app import App
from notifier.bootstrap import build
from notifier.clock import SystemClock
from notifier.console import mount
from notifier.console.auth import SESSION_COOKIE, SessionStore, token_fingerprint
from notifier.console.guards import needs_role
from notifier.staff import StaffMember
from notifier.store.memory import MemoryStore
from tests.console_support import TOKENS, make_settings


class DictRedis:
    """The three calls the session store makes, on a dict (expiry is not modelled)."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def set(self, key: str, value: str, ex: int | None = None) -> None:
        self.data[key] = value

    def get(self, key: str) -> str | None:
        return self.data.get(key)

    def delete(self, key: str) -> None:
        self.data.pop(key, None)


def console_app(settings: Any) -> App:
    """A real App on the in-memory store; the console's sessions go to a dict standing in for Redis."""
    clock = SystemClock()  # the session TTLs are checked against time.time()
    return build(settings, store=MemoryStore(clock), redis_client=DictRedis(), clock=clock)


class Browser:
    """Requests to the console app in process, with a cookie jar; redirects are not followed."""

    def __init__(self, web: FastAPI) -> None:
        self.web = web
        self.cookies = httpx.Cookies()

    def get(self, url: str) -> httpx.Response:
        return asyncio.run(self._send("GET", url))

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return asyncio.run(self._send("POST", url, **kwargs))

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        transport = httpx.ASGITransport(app=self.web)
        async with httpx.AsyncClient(transport=transport, base_url="http://console.test",
                                     cookies=self.cookies) as client:
            return await client.request(method, url, **kwargs)


@pytest.fixture
def app(tmp_path: Path) -> App:
    return console_app(make_settings(tmp_path / "outbox.jsonl"))


@pytest.fixture
def client(app: App) -> Browser:
    web = FastAPI()
    web.state.notifier = app
    mount(web)
    return Browser(web)


def signed_in(client: Browser, app: App, name: str, role: str, token: str) -> str:
    """Open a session for the member as the sign-in form would; return its CSRF token."""
    session = SessionStore(app.redis, app.settings.redis.key_prefix).create(StaffMember(name, role), time.time(),
                                                            token_fingerprint(token))
    client.cookies.set(SESSION_COOKIE, session.id, domain="console.test")
    return session.csrf


def test_a_page_without_a_session_redirects_to_sign_in_and_back(client):
    response = client.get("/console/compose?kind=update")
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login?next=/console/compose%3Fkind%3Dupdate"


def test_an_invalid_unicode_field_is_refused_before_the_session_is_asked_for(client):
    # a multipart body that names its own codec is the one way a lone surrogate reaches a form
    body = b'--X\r\nContent-Disposition: form-data; name="name"\r\n\r\n\\ud800\r\n--X--\r\n'
    response = client.post("/console/preview", content=body,
                           headers={"Content-Type": "multipart/form-data; boundary=X; charset=unicode_escape"})
    assert response.status_code == 400
    assert "is not valid Unicode" in response.text
    assert response.headers["X-Frame-Options"] == "DENY"


def test_a_form_without_a_session_is_a_401(client):
    response = client.post("/console/preview", data={"csrf": "anything"})
    assert response.status_code == 401
    assert "Your session has ended. Sign in again." in response.text


def test_a_wrong_csrf_token_is_a_403_even_for_a_publisher(client, app):
    signed_in(client, app, "Pia Publisher", "publisher", TOKENS["CONSOLE_PUBLISHER"])
    response = client.post("/console/drafts/approve", data={"csrf": "forged", "update_id": "inc1.2"})
    assert response.status_code == 403
    assert "missing or wrong CSRF token" in response.text


def test_the_role_is_checked_after_the_csrf_token(client, app):
    csrf = signed_in(client, app, "Vi Viewer", "viewer", TOKENS["CONSOLE_VIEWER"])
    response = client.post("/console/preview", data={"csrf": csrf})
    assert response.status_code == 403
    assert "You need the editor role for this; you are signed in as viewer." in response.text


def test_a_revoked_token_ends_the_session_it_opened(client, app):
    csrf = signed_in(client, app, "Vi Viewer", "viewer", "a-token-no-longer-configured")
    response = client.post("/console/logout", data={"csrf": csrf})
    assert response.status_code == 401
    assert app.redis.data == {}  # the guard deleted the session, not only refused it


def test_a_member_passing_every_guard_reaches_the_route(client, app):
    csrf = signed_in(client, app, "Vi Viewer", "viewer", TOKENS["CONSOLE_VIEWER"])
    response = client.post("/console/logout", data={"csrf": csrf})
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login?done=signed_out"
    assert app.redis.data == {}


def test_an_unknown_role_fails_when_the_route_is_declared():
    with pytest.raises(ValueError, match="unknown role 'root'"):
        needs_role("root")
