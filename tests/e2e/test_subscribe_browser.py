"""The subscribe form in headless Chromium: a built status page served from one origin posts (plain HTML,
no JavaScript) to the notifier's API on another; the confirmation mail arrives at a real SMTP server,
and its link, opened in the browser, confirms the subscription."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from notifier.api import create_app
from notifier.statuspage.generator import render_site
from notifier.statuspage.publish import DirectoryTarget
from notifier.statuspage.serve import serve_in_thread
from notifier.statuspage.snapshot import StoreSnapshots
from tests.e2e.test_statuspage_browser import CHROMIUM, browser  # noqa: F401 - the shared browser fixture
from tests.fakes.smtp_sink import SmtpSink
from tests.integration._api_support import ApiServer, make_app, redis_server
from tests.integration.test_subscribers import settings

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing: apt-get install chromium"),
]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    holder: dict[str, Any] = {}

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        await holder["api"](scope, receive, send)

    api = ApiServer(asgi)  # its port first: the page's form and the mails' links name it
    with SmtpSink() as sink, redis_server(tmp_path / "redis") as (_, port):
        app = make_app(settings(sink.port, url=f"{api.url}/subscribe"), port)
        holder["api"] = create_app(app)
        snap = StoreSnapshots(app.store, app.settings.page, app.settings.components, app.clock).read()
        now = app.clock.now()
        DirectoryTarget(tmp_path / "site").publish(render_site(snap, now), now)
        page_server = serve_in_thread(tmp_path / "site", form_action=app.settings.page.subscribe_origin())
        try:
            with api:
                yield {"app": app, "sink": sink, "page": f"http://127.0.0.1:{page_server.server_address[1]}/",
                       "api": api.url}
        finally:
            page_server.shutdown()


def test_subscribe_from_the_page_on_another_origin_then_confirm(browser: Any, world: dict[str, Any]) -> None:  # noqa: F811
    app, sink = world["app"], world["sink"]
    assert world["page"].split("/")[2] != world["api"].split("/")[2]  # two origins
    page = browser.new_page(java_script_enabled=False)  # the form must work without JavaScript
    try:
        page.goto(world["page"] + "index.html")
        page.fill("#sub-email", "visitor@example.org")
        page.check("input[name=scope][value=some]")
        page.check("input[name=components][value=imap]")
        page.select_option("#sub-lang", "de")
        with page.expect_navigation():
            page.click("#subscribe-form button[type=submit]")
        assert page.url == f"{world['api']}/subscribe"
        assert "Postfach" in page.inner_text("h1")
        [mail] = sink.to("visitor@example.org")
        text = mail.get_body(("plain",)).get_content()
        assert "(IMAP)" in text
        confirm = re.search(r"(http://\S+/subscribe/confirm\?token=\S+)", text)
        assert confirm is not None
        assert app.subscribers.get("visitor@example.org") is None
        page.goto(confirm.group(1))
        with page.expect_navigation():
            page.click("button[type=submit]")
        assert "Abonniert" in page.inner_text("#message")
    finally:
        page.close()
    stored = app.subscribers.get("visitor@example.org")
    assert stored is not None and stored.scope == ("imap",) and stored.language == "de"
    # the page's CSP (meta and the preview server's header) lets its form post to the API's origin only
    index = httpx.get(world["page"] + "index.html")
    assert f"form-action {world['api']};" in index.headers["Content-Security-Policy"]
    assert f"form-action {world['api']}\">" in index.text
