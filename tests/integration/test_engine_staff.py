"""Issue 13 against a real redis-server: staff and the engine tell one story.

An alert joins the staff's open incident; once staff have posted, the engine leaves the resolution to
them; a resolved incident takes a closing note; two incidents merge (service, CLI, API).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from notifier import cli
from notifier.api import create_app
from notifier.services import engine_runner as engine
from notifier.services import incidents
from notifier.services.merge import merge_incidents
from tests.integration._api_support import TOKENS, ApiServer, redis_server, settings_for
from tests.integration._api_support import make_app as make_api_app
from tests.integration.engine_app import advance, alert, push
from tests.integration.engine_fixtures import app_fixture, redis_url_fixture  # noqa: F401 (fixtures)

pytestmark = pytest.mark.integration


def _staff_incident(app, comp: str = "imap"):
    return incidents.open_incident(app, name="Mail logins fail", components={comp: "major_outage"},
                                   body={"en": "We are looking into it.", "de": "Wir sehen uns das an."},
                                   author="alice")


def test_alert_joins_the_open_staff_incident_and_staff_words_close_it(app):
    staff = _staff_incident(app)
    advance(app, 60)
    push(app, [alert(app, "imap-probe", component="imap", group_key="probe")])
    engine.process_events(app)
    advance(app, 400)
    assert [i.id for i in app.store.list_incidents()] == [staff.id]  # one story, not two incidents
    log = engine.decisions_for(app, staff.id)
    assert any(f"joined the open staff incident {staff.id}" in d["message"] for d in log)
    push(app, [alert(app, "imap-probe", status="resolved", component="imap", group_key="probe")])
    engine.process_events(app)
    advance(app, 1200, step=10)  # past the resolve delay and the budget
    incident = app.store.get_incident(staff.id)
    assert incident.is_open and incident.status == "monitoring"  # the engine never resolves it itself
    assert incident.updates[-1].author == "engine" and "recovering" in incident.updates[-1].body["en"]
    assert any(d["kind"] == "held" and "staff have posted" in d["message"] for d in engine.decisions_for(app, staff.id))
    final = incidents.resolve_incident(app, staff.id, body="All systems checked. We apologise.", author="alice")
    advance(app, 10)
    incident = app.store.get_incident(staff.id)
    assert incident.status == "resolved" and incident.updates[-1].id == final.id
    assert app.store.component_status("imap").value == "operational"


def test_a_resolved_incident_takes_a_closing_note_without_reopening(app):
    push(app, [alert(app, "a")])  # team=storage: imap and smtp
    engine.process_events(app)
    advance(app, 200)
    push(app, [alert(app, "a", status="resolved")])
    engine.process_events(app)
    advance(app, 400, step=10)
    (incident,) = app.store.list_incidents()
    assert incident.status == "resolved" and incident.updates[-1].author == "engine"
    resolved_at = incident.resolved_at
    note = incidents.resolve_incident(app, incident.id, body="Postmortem: a disk controller failed.", author="bob")
    again = app.store.get_incident(incident.id)
    assert (again.status, again.resolved_at, again.updates[-1].id) == ("resolved", resolved_at, note.id)
    assert note.component_statuses == {}
    with pytest.raises(Exception, match="closing note"):
        incidents.update_incident(app, incident.id, status="investigating", body="again?")


def test_merge_moves_the_engine_group_into_the_staff_incident(app):
    staff = _staff_incident(app, comp="dns")
    push(app, [alert(app, "a")])  # imap + smtp: a separate engine incident
    engine.process_events(app)
    advance(app, 200)
    engine_inc = next(i for i in app.store.list_incidents() if i.id != staff.id)
    target = merge_incidents(app, engine_inc.id, staff.id, author="alice")
    assert set(target.components) == {"dns", "imap", "smtp"}
    closed = app.store.get_incident(engine_inc.id)
    assert closed.status == "resolved" and staff.id in closed.updates[-1].body["en"]
    assert app.store.component_status("imap").value == "major_outage"  # the alerts still fire
    # the alert's recovery now posts into the staff incident, which waits for a person
    push(app, [alert(app, "a", status="resolved")])
    engine.process_events(app)
    advance(app, 1200, step=10)
    after = app.store.get_incident(staff.id)
    assert after.is_open and after.updates[-1].author == "engine" and after.updates[-1].status == "monitoring"
    assert any(d["kind"] == "merged" for d in engine.decisions_for(app, staff.id))
    with pytest.raises(Exception, match="already resolved"):
        merge_incidents(app, engine_inc.id, staff.id)


def test_merge_from_the_cli_and_the_api(tmp_path: Path):
    with redis_server(tmp_path / "redis") as (_, port):
        settings = settings_for(tmp_path)
        app = make_api_app(settings, port)
        a = incidents.open_incident(app, name="IMAP slow", components=["imap"], body="Looking into it.")
        b = incidents.open_incident(app, name="SMTP slow", components=["smtp"], body="Looking into it.")
        with ApiServer(create_app(app)) as server, httpx.Client(base_url=server.url, timeout=10) as http:
            editor = {"Authorization": f"Bearer {TOKENS['EDITOR_TOKEN']}"}
            publisher = {"Authorization": f"Bearer {TOKENS['PUBLISHER_TOKEN']}"}
            assert http.post(f"/api/v1/incidents/{a.id}/merge", json={"into": b.id}, headers=editor).status_code == 403
            bad = http.post(f"/api/v1/incidents/{a.id}/merge", json={"into": a.id}, headers=publisher)
            assert bad.status_code == 422 and "into" in bad.text
            resp = http.post(f"/api/v1/incidents/{a.id}/merge", json={"into": b.id}, headers=publisher)
            assert resp.status_code == 200, resp.text
            assert set(resp.json()["components"]) == {"imap", "smtp"}
        assert app.store.get_incident(a.id).status == "resolved"


CLI_CONFIG = """
redis: {{url: "{url}", key_prefix: "merge:"}}
components:
  - {{id: imap, name: IMAP, group: Mail}}
  - {{id: smtp, name: SMTP, group: Mail}}
channels:
  outbox: {{type: outbox, path: "{dir}/outbox.jsonl"}}
"""


def test_merge_from_the_cli(redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    config = tmp_path / "notifier.yaml"
    config.write_text(CLI_CONFIG.format(url=redis_url, dir=tmp_path))

    def run(*argv: str) -> int:
        return cli.main(["--config", str(config), *argv])

    assert run("incident", "open", "--name", "IMAP slow", "--component", "imap", "-m", "Looking into it.") == 0
    assert run("incident", "open", "--name", "Mail slow", "--component", "smtp", "-m", "Looking into it.") == 0
    first, second = (line.split()[0] for line in capsys.readouterr().out.splitlines() if " opened: " in line)
    assert run("incident", "merge", first, "--into", second, "--author", "carl") == 0
    out = capsys.readouterr().out
    assert f"{first} merged into {second}" in out and "imap" in out
    assert run("incident", "merge", first, "--into", second) != 0  # already resolved: a clear refusal
    assert "already resolved" in capsys.readouterr().err
