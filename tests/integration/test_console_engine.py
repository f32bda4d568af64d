"""The timeline shows the incident engine's decision log: which alerts joined, what was held back."""

from __future__ import annotations

import re

import httpx
import pytest
from pydantic import SecretStr

from notifier.config import StaffSettings, StaffToken
from notifier.services import engine_runner as engine
from tests.console_support import Served, web_app
from tests.integration.engine_app import advance, alert, make_app, push

pytestmark = pytest.mark.integration
TOKEN = "viewer-token-for-the-engine-test"


@pytest.fixture
def app(redis_server, tmp_path):
    application = make_app(redis_server.url, tmp_path, prefix="console-engine:")
    application.settings.staff = StaffSettings(tokens=[StaffToken(name="Noc", token=SecretStr(TOKEN),
                                                                  role="viewer")])
    return application


def test_timeline_lists_the_engines_decisions(app):
    # two storage alerts with the same labels group into one incident once the confirm delay passes
    push(app, [alert(app, "disk-full"), alert(app, "queue-stuck")])
    engine.process_events(app)
    advance(app, 200)
    (incident,) = app.store.list_incidents()
    logged = engine.decisions_for(app, incident.id)
    assert logged, "the engine logged nothing to show"

    with Served(web_app(app)) as server:
        client = httpx.Client(base_url=server.url, follow_redirects=True)
        login = client.get("/console/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', login.text).group(1)
        client.post("/console/login", data={"csrf": csrf, "token": TOKEN})
        page = client.get(f"/console/incidents/{incident.id}").text

    section = page.split('id="decisions-title"')[1].split("</section>")[0]
    assert section.count('class="decision"') == len(logged)
    for decision in logged:
        assert f'data-kind="{decision["kind"]}"' in section
    assert "alert disk-full" in section and "alert queue-stuck" in section
