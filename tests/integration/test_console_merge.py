"""Issue 13: a publisher merges two incidents from the console's incident page (real HTTP, real Redis)."""

from __future__ import annotations

import re

import httpx
import pytest

from notifier.services import incidents
from notifier.store.local_redis import LocalRedis
from tests.console_support import TOKENS, Served, make_app, make_settings, web_app

pytestmark = pytest.mark.integration


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, "no CSRF field on the page"
    return match.group(1)


def _sign_in(base: str, role: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=base, follow_redirects=True, timeout=10)
    page = client.get("/console/login")
    response = client.post("/console/login", data={"csrf": _csrf(page.text), "token": TOKENS[f"CONSOLE_{role}"]})
    assert response.url.path == "/console/", response.text
    return client, _csrf(response.text)


def test_publisher_merges_from_the_incident_page(tmp_path):
    server = LocalRedis(tmp_path / "redis", appendfsync="no").start()
    try:
        app = make_app(make_settings(tmp_path / "outbox.jsonl"), server.url)
        a = incidents.open_incident(app, name="IMAP slow", components=["imap"], body="Looking into it.")
        b = incidents.open_incident(app, name="SMTP slow", components=["smtp"], body="Looking into it.")
        with Served(web_app(app)) as served:
            editor, ecsrf = _sign_in(served.url, "EDITOR")
            assert "Merge into" not in editor.get(f"/console/incidents/{a.id}").text
            refused = editor.post("/console/incidents/merge", data={"csrf": ecsrf, "source": a.id, "into": b.id})
            assert refused.status_code == 403
            client, csrf = _sign_in(served.url, "PUBLISHER")
            page = client.get(f"/console/incidents/{a.id}").text
            assert 'action="/console/incidents/merge"' in page
            bad = client.post("/console/incidents/merge", data={"csrf": csrf, "source": a.id, "into": ""})
            assert bad.status_code == 400 and "into:" in bad.text
            done = client.post("/console/incidents/merge", data={"csrf": csrf, "source": a.id, "into": b.id})
            assert done.status_code == 200 and done.url.path == f"/console/incidents/{b.id}"
            assert "Merged" in done.text
        assert app.store.get_incident(a.id).status == "resolved"
        assert set(app.store.get_incident(b.id).components) == {"imap", "smtp"}
    finally:
        server.stop()
