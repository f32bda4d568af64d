"""Issue 12's findings, one regression test each: hostile input gets a clear 4xx (never a 500), local
data is closed to other users, and the status page server answers odd requests cleanly."""

from __future__ import annotations

import json
import re
import socket
import stat
from pathlib import Path

import httpx
import pytest

from notifier.api import create_app
from notifier.config_loader import parse_settings
from notifier.errors import ConfigError, UsageError
from notifier.services import incidents
from notifier.statuspage.generator import render_site
from notifier.statuspage.publish import DirectoryTarget
from notifier.statuspage.serve import serve_in_thread
from notifier.store import local_redis
from tests.fakes.statuspage_model import NOW, sample_snapshot
from tests.integration._api_support import TOKENS, ApiServer, make_app, redis_server, settings_for

pytestmark = pytest.mark.integration
JSON = {"Content-Type": "application/json"}


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role.upper() + '_TOKEN']}"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    with redis_server(tmp / "redis") as (_, port):
        app = make_app(settings_for(tmp), port)
        with ApiServer(create_app(app)) as server, httpx.Client(base_url=server.url, timeout=30) as http:
            yield app, http


def console_session(http: httpx.Client) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=str(http.base_url), timeout=30, follow_redirects=True)
    page = client.get("/console/login")
    signed = client.post("/console/login", data={"csrf": _csrf(page.text), "token": TOKENS["PUBLISHER_TOKEN"]})
    assert signed.url.path == "/console/", signed.text
    return client, _csrf(signed.text)


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field"
    return match.group(1)


def test_a_lone_surrogate_in_an_alert_is_refused_naming_the_field(stack):
    app, http = stack
    body = ('{"version": "4", "status": "firing", "alerts": [{"status": "firing", "labels": {"alertname": "A"},'
            ' "annotations": {"summary": "x \\udc80"}, "startsAt": "2030-01-01T00:00:00Z"}]}')
    resp = http.post("/webhooks/alertmanager", content=body.encode(),
                     headers={**JSON, "Authorization": f"Bearer {TOKENS['AM_TOKEN']}"})
    assert resp.status_code == 422, resp.text
    assert resp.json()["field"] == "alerts.0.annotations.summary"


@pytest.mark.parametrize("raw, field", [
    ('{"name": NaN, "body": "x"}', "body.name"),
    ('{"name": "n", "body": "x", "draft": Infinity}', "body.draft"),
    ('{"name": "\\udfff", "body": "x"}', "body.name"),
    ('{"name": "n", "body": {"en": "\\ud800"}}', "body.body"),
])
def test_staff_api_answers_422_for_nan_infinity_and_surrogates(stack, raw, field):
    app, http = stack
    resp = http.post("/api/v1/incidents", content=raw.encode(), headers={**JSON, **auth("editor")})
    assert resp.status_code == 422, resp.text
    assert resp.json()["field"].startswith(field)


def test_invalid_utf8_with_another_content_type_is_a_422(stack):
    app, http = stack
    resp = http.post("/api/v1/incidents", content=b'{"name": "\xff\xfe"}',
                     headers={"Content-Type": "text/plain", **auth("editor")})
    assert resp.status_code == 422, resp.text


def test_texts_are_limited_as_in_the_console(stack):
    app, http = stack
    resp = http.post("/api/v1/broadcasts", json={"body": "x" * 1_000_000}, headers=auth("publisher"))
    assert resp.status_code == 422 and resp.json()["field"].startswith("body.body")
    many = {f"c{i}": "major_outage" for i in range(500)}
    resp = http.post("/api/v1/incidents", json={"name": "n", "body": "x", "components": many}, headers=auth("editor"))
    assert resp.status_code == 422 and resp.json()["field"] == "body.components"


@pytest.mark.parametrize("update_id", [".1", "..", "%2e%2e", "inc.1"])
def test_approving_an_odd_update_id_is_a_4xx(stack, update_id):
    app, http = stack
    resp = http.post(f"/api/v1/drafts/{update_id}/approve", headers=auth("publisher"))
    assert 400 <= resp.status_code < 500, resp.text


def test_the_service_refuses_odd_update_ids_and_invalid_text_for_every_entry_point(stack):
    app, _ = stack
    with pytest.raises(UsageError, match="update id looks like"):
        incidents.approve_draft(app, ".1", approver="cli")
    with pytest.raises(UsageError) as caught:  # what the CLI passes on from argv with surrogateescape
        incidents.open_incident(app, name="IMAP \udc80", body="down", author="cli")
    assert caught.value.field == "name"  # type: ignore[attr-defined]
    with pytest.raises(UsageError) as caught:
        incidents.broadcast(app, body={"en": "x" * 6000}, author="cli")
    assert caught.value.field == "body.en"  # type: ignore[attr-defined]


def test_console_forms_answer_parse_errors_as_form_errors(stack):
    app, http = stack
    console, csrf = console_session(http)
    inc = http.post("/api/v1/incidents", json={"name": "Mail", "body": "down", "draft": True},
                    headers=auth("publisher")).json()
    approve = console.post("/console/drafts/approve", data={"csrf": csrf, "update_id": ""})
    assert approve.status_code == 400, approve.text
    preview = console.post("/console/preview", data={
        "csrf": csrf, "kind": "update", "incident_id": inc["id"], "impact": "bogus", "body.en": "x"})
    assert preview.status_code == 200 and "data-channel=\"outbox\"" in preview.text  # was a 500
    assert 'class="flash flash-error preview-errors"' in preview.text  # and it says what is wrong
    assert "impact</span>: choose one of: none, minor, major, critical" in preview.text
    window = console.post("/console/compose", data={
        "csrf": csrf, "kind": "maintenance", "name": "M", "body.en": "x", "channels": "outbox",
        "component.imap": "under_maintenance", "action": "publish",
        "scheduled_for": "0001-01-01T00:00+05:00", "scheduled_until": "0001-01-01T02:00+05:00"})
    assert window.status_code == 400 and "year from 2000" in window.text
    surrogate = console.post("/console/compose", content=f"csrf={csrf}&name=%ED%B2%80&body.en=x".encode(),
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert surrogate.status_code < 500
    page = console.get(f"/console/incidents/{inc['id']}")
    assert page.status_code == 200
    console.close()


def test_maintenance_at_the_edge_of_datetime_is_a_422(stack):
    app, http = stack
    window = {"name": "M", "body": "x", "components": ["imap"], "scheduled_for": "0001-01-01T00:00+05:00",
              "scheduled_until": "0001-01-01T02:00+05:00"}
    resp = http.post("/api/v1/maintenances", json=window, headers=auth("publisher"))
    assert resp.status_code == 422, resp.text


def test_malformed_json_without_a_token_gets_401_not_the_schema(stack):
    app, http = stack
    resp = http.post("/api/v1/incidents", content=b"{not json", headers=JSON)
    assert resp.status_code == 401 and "schema" not in resp.text and resp.headers["www-authenticate"]


def test_a_chunked_body_over_the_limit_to_an_endpoint_that_reads_none_is_refused(stack):
    app, http = stack
    inc = http.post("/api/v1/incidents", json={"name": "Big", "body": "down", "draft": True},
                    headers=auth("publisher")).json()

    def chunks():
        for _ in range(17):
            yield b"x" * 65536

    resp = http.post(f"/api/v1/drafts/{inc['id']}.1/approve", content=chunks(), headers=auth("publisher"))
    assert resp.status_code == 413
    assert app.store.get_incident(inc["id"]).updates[0].draft  # it did not act


def test_too_many_headers_get_431(stack):
    app, http = stack
    resp = http.get("/healthz", headers={f"x-h{i}": "v" for i in range(150)})
    assert resp.status_code == 431


def test_openapi_marks_every_staff_operation_as_needing_a_token(stack):
    app, http = stack
    doc = http.get("/openapi.json").json()
    assert set(doc["components"]["securitySchemes"]) == {"bearer", "hmac"}
    staff_ops = [(p, m, op) for p, ops in doc["paths"].items() if p.startswith("/api/v1/") for m, op in ops.items()]
    assert staff_ops and all(op.get("security") == [{"bearer": []}] for _, _, op in staff_ops)


def test_config_check_never_prints_the_password_of_a_malformed_redis_url():
    with pytest.raises(ConfigError) as caught:
        parse_settings("redis:\n  url: ${REDIS_URL}\n", "test", env={"REDIS_URL": ":pw-s3cret@127.0.0.1:6390/0"})
    assert "redis.url" in str(caught.value) and "s3cret" not in str(caught.value)


def test_a_webhook_channel_needs_an_http_url():
    with pytest.raises(ConfigError) as caught:
        parse_settings("channels:\n  hook: {type: webhook, url: 'ftp://example.invalid/x'}\n", "test", env={})
    assert "channels.hook.url" in str(caught.value) and "http" in str(caught.value)


def test_the_private_redis_has_a_password_and_its_files_are_private(tmp_path):
    settings = parse_settings(f"redis:\n  data_dir: {tmp_path / 'redis'}\n", "test", env={})
    server = local_redis.ensure_private(settings)
    assert server is not None
    try:
        password_file = tmp_path / "redis" / "password"
        assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / "redis").stat().st_mode) == 0o700
        url = local_redis.private_url(settings)
        assert password_file.read_text() in url
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(b"GET anything\r\n")
            assert sock.recv(64).startswith(b"-NOAUTH")
        import redis

        client = redis.Redis.from_url(url)
        client.set("k", "v")
        assert client.get("k") == b"v"
        client.close()
        for created in (tmp_path / "redis" / "redis.log", *(tmp_path / "redis").glob("appendonlydir/*")):
            assert stat.S_IMODE(created.stat().st_mode) & 0o077 == 0, created
        # never on the command line, where ps shows it to every local user
        assert server.proc is not None
        argv = Path(f"/proc/{server.proc.pid}/cmdline").read_bytes()
        assert password_file.read_text().encode() not in argv
        assert password_file.read_text().encode() not in b" ".join(s.encode() for s in server.command())
        assert stat.S_IMODE((tmp_path / "redis" / "auth.conf").stat().st_mode) == 0o600
    finally:
        server.stop()


def _raw_get(port: int, path: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET " + path + b" HTTP/1.0\r\n\r\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_status_page_has_a_csp_no_inline_script_no_listings_and_400_for_odd_paths(tmp_path: Path):
    files = render_site(sample_snapshot(), NOW)
    assert b"<script>" not in files["index.html"] and b"static/stale.js" in files["index.html"]
    site = tmp_path / "site"
    DirectoryTarget(site).publish(files, NOW)
    server = serve_in_thread(site)
    port = server.server_address[1]
    try:
        index = _raw_get(port, b"/index.html")
        assert index.startswith(b"HTTP/1.0 200") and b"Content-Security-Policy: default-src 'self'" in index
        assert _raw_get(port, b"/static/").startswith(b"HTTP/1.0 404")
        assert _raw_get(port, b"/index.html%00.txt").startswith(b"HTTP/1.0 400")
        assert _raw_get(port, b"/%ff%fe").startswith(b"HTTP/1.0 400")
    finally:
        server.shutdown()
        server.server_close()


def test_validation_errors_never_echo_the_input(stack):
    app, http = stack
    resp = http.post("/api/v1/incidents", content=b'{"name": 1e999, "body": "x"}', headers={**JSON, **auth("editor")})
    assert resp.status_code == 422
    assert all("input" not in err for err in json.loads(resp.text)["detail"])


def test_text_stored_before_the_check_breaks_no_page_and_no_api_answer(stack):
    """An installation that took the lone-surrogate webhook before this fix still holds it in Redis:
    the console (dashboard, incident page) and the API answer 200 showing it as ?, not 500 or a reset."""
    app, http = stack
    inc = incidents.open_incident(app, name="x", components={"imap": "major_outage"}, impact="major",
                                  body={"en": "body"}, status="investigating", author="t", channels=None,
                                  draft=False)
    key = app.store.key("incident", inc.id)
    doc = json.loads(app.store.redis.get(key))
    doc["name"] = "x \udc80"
    doc["updates"][0]["body"]["en"] = "b \udc80"
    app.store.redis.set(key, json.dumps(doc))  # the escape \udc80, as the old webhook path stored it
    client, _ = console_session(http)
    for path in ("/console/", f"/console/incidents/{inc.id}"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert "x ?" in page.text, path
    api = http.get(f"/api/v1/incidents/{inc.id}", headers=auth("viewer"))
    assert api.status_code == 200
    assert api.json()["name"] == "x ?"
    listed = http.get("/api/v1/incidents", headers=auth("viewer"))
    assert listed.status_code == 200
