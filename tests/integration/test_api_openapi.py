"""Property test over the published OpenAPI document: whatever schemathesis generates, authenticated
as a publisher and with valid webhook credentials (so parsers and services are reached), never 5xx."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.core import NOT_SET

from notifier.api import create_app
from notifier.api.auth import sign
from tests.integration._api_support import TOKENS, ApiServer, make_app, redis_server, settings_for

pytestmark = pytest.mark.integration

SOURCE_TOKEN = {"alertmanager": "AM_TOKEN", "grafana": "GRAFANA_TOKEN", "uptime-kuma": "KUMA_TOKEN"}


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("openapi")
    with redis_server(tmp / "redis") as (_, port):
        app = make_app(settings_for(tmp), port)
        with ApiServer(create_app(app)) as server, httpx.Client(base_url=server.url, timeout=10) as http:
            yield http


def _document() -> dict:
    """The same document /openapi.json serves (it does not depend on Redis, so no server is needed yet)."""
    stub = SimpleNamespace(
        settings=settings_for(Path("/nonexistent")), store=None, channels={}, extras={}, dispatcher=None
    )
    return create_app(stub).openapi()


# schemathesis.pytest.from_fixture does not work with this pytest; the document is static anyway
schema = schemathesis.openapi.from_dict(_document())


def test_openapi_document_lists_every_route(live):
    doc = live.get("/openapi.json").json()
    assert doc == json.loads(json.dumps(_document()))
    for path in (
        "/webhooks/alertmanager",
        "/webhooks/grafana",
        "/webhooks/uptime-kuma",
        "/webhooks/generic",
        "/api/v1/incidents",
        "/api/v1/deliveries",
        "/healthz",
        "/readyz",
        "/metrics",
    ):
        assert path in doc["paths"]
    body = doc["paths"]["/webhooks/generic"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["alerts"]


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_no_server_errors(case, live):
    path = case.formatted_path
    headers = {"Authorization": f"Bearer {TOKENS['PUBLISHER_TOKEN']}", "Content-Type": "application/json"}
    if case.body is NOT_SET:
        content = b""
    elif isinstance(case.body, bytes):  # schemathesis also sends raw bytes, which is good for a parser
        content = case.body
    else:
        content = json.dumps(case.body).encode()
    source = path.removeprefix("/webhooks/")
    if source in SOURCE_TOKEN:
        headers["Authorization"] = f"Bearer {TOKENS[SOURCE_TOKEN[source]]}"
    elif source == "generic":
        now = int(time.time())
        headers.update(
            {
                "X-Notifier-Timestamp": str(now),
                "X-Notifier-Signature": sign(TOKENS["GENERIC_SECRET"], now, content),
            }
        )
    query = case.query if case.query is not NOT_SET else None
    resp = live.request(case.method, path, content=content or None, params=query, headers=headers)
    assert resp.status_code < 500 or (path == "/readyz" and resp.status_code == 503), (
        f"{case.method} {path} -> {resp.status_code}: {resp.text[:300]}"
    )
