"""Hostile input never makes a 500 (issue 12): Hypothesis draws requests to every endpoint and every
console form (staff API as editor and publisher, webhooks with valid credentials, console forms with a
session and its CSRF token) whose values mix valid ones with the cases a security run found: lone
surrogates, NaN/Infinity, invalid UTF-8 under any content type, odd ids (``.1``, ``..``), datetime's
edges, huge texts and numbers, deep nesting. Every answer must be below 500.

Bounded for ``make test`` (``FUZZ_EXAMPLES``, default 150 requests); the long run is::

    FUZZ_EXAMPLES=10000 .venv/bin/python -m pytest tests/integration/test_fuzz.py -p no:cacheprovider -q -s

which prints the answers counted by status.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notifier.api import create_app
from notifier.api.auth import sign
from tests.integration._api_support import TOKENS, ApiServer, make_app, redis_server, settings_for
from tests.support import future_window

pytestmark = pytest.mark.integration
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
COUNTS: Counter[int] = Counter()
STAFF = {"editor": TOKENS["EDITOR_TOKEN"], "publisher": TOKENS["PUBLISHER_TOKEN"], "none": ""}
SOURCE_TOKEN = {"alertmanager": "AM_TOKEN", "grafana": "GRAFANA_TOKEN", "uptime-kuma": "KUMA_TOKEN"}


class Raw(str):
    """A value written into the JSON text as is (NaN, Infinity, 1e999, a deep nest)."""


HOSTILE = [
    "x \udc80", "\udfff", "\ud800", "", " ", ".1", "..", "../../etc/passwd", "%00", "\x00", "inc1",
    "inc1.1", "inc1.1:outbox", "0001-01-01T00:00+05:00", "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00Z",
    "bogus", "x" * 6000, "<script>alert(1)</script>", "{{ 7*7 }}", "é" * 300, "\u202e", "\ufeff",
    Raw("NaN"), Raw("Infinity"), Raw("-Infinity"), Raw("1e999"), Raw("1" * 5000), Raw("[" * 50 + "]" * 50),
    Raw("true"), Raw("null"), Raw("{}"), Raw("[]"), Raw("-1"), Raw("0"),
]
values = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=40), st.integers(), st.booleans(), st.none(),
                   st.lists(st.sampled_from(HOSTILE), max_size=3))


def _json(value: object) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_json(v) for v in value) + "]"
    return json.dumps(value)  # ensure_ascii: a lone surrogate becomes its \\u escape, as an attacker writes it


def field(valid: object) -> st.SearchStrategy[object]:
    return st.one_of(st.just(valid), values)


# Times are computed, never literals: a maintenance window must lie ahead of the clock (also in the
# date-shifted pass), and an alert starts now.
STARTS, ENDS = future_window(start_hour=0, minutes=120, days_ahead=30)
NOW_ISO = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
NOW_KUMA = time.strftime("%Y-%m-%d %H:%M:%S.000", time.gmtime())

NAME, BODY = "Mail down", {"en": "We are looking into it."}
STAFF_BODIES = {
    "incidents": {"name": NAME, "body": BODY, "components": {"imap": "major_outage"}, "impact": "major",
                  "status": "investigating", "draft": True, "channels": ["outbox"]},
    "updates": {"body": BODY, "status": "identified", "impact": "minor", "components": {"smtp": "partial_outage"}},
    "resolve": {"body": BODY},
    "broadcasts": {"name": NAME, "body": "Planned downtime tonight."},
    "maintenances": {"name": NAME, "body": BODY, "components": ["imap"],
                     "scheduled_for": f"{STARTS:%Y-%m-%dT%H:%M:%SZ}", "scheduled_until": f"{ENDS:%Y-%m-%dT%H:%M:%SZ}",
                     "announce": ["start"]},
    "retry": {"force": False},
    "merge": {"into": "inc1"},
}
ALERT = {"status": "firing", "labels": {"alertname": "ImapDown", "component": "imap"},
         "annotations": {"summary": "IMAP down"}, "startsAt": NOW_ISO}
WEBHOOK_BODIES = {
    "alertmanager": {"version": "4", "status": "firing", "alerts": [ALERT]},
    "grafana": {"status": "firing", "alerts": [ALERT]},
    "uptime-kuma": {"heartbeat": {"status": 0, "time": NOW_KUMA, "msg": "down"},
                    "monitor": {"id": 1, "name": "imap"}, "msg": "down"},
    "generic": {"alerts": [{"component": "imap", "status": "firing", "summary": "x"}]},
}
CONSOLE_FORMS = {
    "preview": {"kind": "update", "incident_id": "inc1", "impact": "major", "status": "identified",
                "body.en": "text", "channels": "outbox", "action": "preview"},
    "compose": {"kind": "maintenance", "name": NAME, "body.en": "text", "channels": "outbox", "action": "draft",
                "scheduled_for": f"{STARTS:%Y-%m-%dT%H:%M}", "scheduled_until": f"{ENDS:%Y-%m-%dT%H:%M}",
                "component.imap": "under_maintenance"},
    "drafts/approve": {"update_id": "inc1.1", "back": "inc1"},
    "deliveries/retry": {"notice_id": "inc1.1:outbox", "force": "yes"},
    "deliveries/mark-posted": {"notice_id": "inc1.1:outbox"},
}


@st.composite
def mutated(draw: st.DrawFn, valid: dict[str, object]) -> dict[str, object]:
    out = {k: draw(field(v)) for k, v in valid.items() if draw(st.integers(0, 9))}  # sometimes a key is missing
    if draw(st.booleans()):
        out[draw(st.sampled_from(["extra", "\udc80", "body", "name"]))] = draw(values)
    return out


@st.composite
def request_cases(draw: st.DrawFn) -> dict[str, object]:
    area = draw(st.sampled_from(["staff", "staff", "staff", "webhook", "console", "console", "read"]))
    ident = draw(st.one_of(st.sampled_from(["inc1", "inc1.1", "inc1.1:outbox", "brd2"]),
                           st.sampled_from([v for v in HOSTILE if not isinstance(v, Raw)]), st.text(max_size=12)))
    path_id = quote(str(ident), safe="", errors="surrogatepass")
    headers: dict[str, str] = {}
    if area == "staff":
        kind = draw(st.sampled_from(sorted(STAFF_BODIES) + ["approve"]))
        path = {"incidents": "/api/v1/incidents", "updates": f"/api/v1/incidents/{path_id}/updates",
                "resolve": f"/api/v1/incidents/{path_id}/resolve", "broadcasts": "/api/v1/broadcasts",
                "maintenances": "/api/v1/maintenances", "merge": f"/api/v1/incidents/{path_id}/merge",
                "retry": f"/api/v1/deliveries/{path_id}/retry",
                "approve": f"/api/v1/drafts/{path_id}/approve"}[kind]
        token = STAFF[draw(st.sampled_from(["editor", "publisher", "publisher", "none"]))]
        if token:
            headers["Authorization"] = f"Bearer {token}"
        content = _json(draw(mutated(STAFF_BODIES.get(kind, {})))).encode("utf-8", "surrogatepass")
        return {"method": "POST", "path": path, "headers": headers, "content": draw(_encoded(content)), "kind": "api"}
    if area == "webhook":
        source = draw(st.sampled_from(sorted(WEBHOOK_BODIES)))
        body = draw(mutated(WEBHOOK_BODIES[source]))
        if draw(st.booleans()) and "alerts" in WEBHOOK_BODIES[source]:
            body["alerts"] = [draw(mutated(ALERT)) | {"annotations": {"summary": draw(values)}}]
        content = draw(_encoded(_json(body).encode("utf-8", "surrogatepass")))
        return {"method": "POST", "path": f"/webhooks/{source}", "headers": headers, "content": content,
                "source": source, "kind": "webhook"}
    if area == "console":
        form = draw(st.sampled_from(sorted(CONSOLE_FORMS)))
        data = {k: v if isinstance(v, str) else _json(v) for k, v in draw(mutated(CONSOLE_FORMS[form])).items()}
        return {"method": "POST", "path": f"/console/{form}", "headers": headers, "form": data, "kind": "console"}
    path = draw(st.sampled_from([f"/api/v1/incidents/{path_id}", "/api/v1/incidents?limit=" + path_id,
                                 "/api/v1/deliveries?state=" + path_id, "/api/v1/drafts",
                                 f"/console/incidents/{path_id}", f"/console/compose?kind=update&incident={path_id}",
                                 "/healthz", "/metrics", "/openapi.json"]))
    headers["Authorization"] = f"Bearer {STAFF['publisher']}"
    return {"method": "GET", "path": path, "headers": headers, "kind": "read"}


@st.composite
def _encoded(draw: st.DrawFn, content: bytes) -> bytes:
    """The JSON as it is, or broken: invalid UTF-8, truncated, or not JSON at all."""
    how = draw(st.sampled_from(["json"] * 6 + ["invalid-utf8", "truncated", "empty"]))
    if how == "invalid-utf8":
        return content[:20] + b"\xff\xfe\xc3(" + content[20:]
    if how == "truncated":
        return content[: len(content) // 2]
    return b"" if how == "empty" else content


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    with redis_server(tmp / "redis") as (_, port):
        app = make_app(settings_for(tmp), port)
        with ApiServer(create_app(app)) as server, httpx.Client(base_url=server.url, timeout=30) as http:
            publisher = {"Authorization": f"Bearer {TOKENS['PUBLISHER_TOKEN']}"}
            # something real to aim at: inc1 with a draft inc1.1, and a published broadcast
            inc = http.post("/api/v1/incidents", headers=publisher,
                            json={"name": NAME, "body": BODY, "components": {"imap": "major_outage"}, "draft": True})
            assert inc.status_code == 201, inc.text
            assert http.post("/api/v1/broadcasts", headers=publisher, json={"body": "hello"}).status_code == 201
            console = httpx.Client(base_url=server.url, timeout=30)
            page = console.get("/console/login")
            signed = console.post("/console/login", follow_redirects=True,
                                  data={"csrf": _csrf(page.text), "token": TOKENS["PUBLISHER_TOKEN"]})
            assert signed.url.path == "/console/", signed.text
            yield http, console, _csrf(signed.text)
            console.close()
    print(f"\nfuzz: {sum(COUNTS.values())} requests, by status: {dict(sorted(COUNTS.items()))}")


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def send(live: tuple[httpx.Client, httpx.Client, str], case: dict[str, object]) -> httpx.Response:
    http, console, csrf = live
    headers = dict(case["headers"])  # type: ignore[arg-type]
    if case["kind"] == "console":
        form = {"csrf": csrf, **case["form"]}  # type: ignore[dict-item]
        body = "&".join(f"{quote(k, errors='surrogatepass')}={quote(v, errors='surrogatepass')}"
                        for k, v in form.items()).encode()
        return console.post(str(case["path"]), content=body,
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
    if case["kind"] == "read":
        client = console if str(case["path"]).startswith("/console/") else http
        return client.get(str(case["path"]), headers=headers)
    content = case["content"]
    assert isinstance(content, bytes)
    headers["Content-Type"] = "application/json" if content[:1] in (b"{", b"") else "text/plain"
    source = case.get("source")
    if source in SOURCE_TOKEN:
        headers["Authorization"] = f"Bearer {TOKENS[SOURCE_TOKEN[str(source)]]}"
    elif source == "generic":
        now = int(time.time())
        headers.update({"X-Notifier-Timestamp": str(now),
                        "X-Notifier-Signature": sign(TOKENS["GENERIC_SECRET"], now, content)})
    return http.post(str(case["path"]), content=content, headers=headers)


@given(case=request_cases())
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_hostile_requests_never_get_a_server_error(live, case):
    response = send(live, case)
    COUNTS[response.status_code] += 1
    assert response.status_code < 500, (
        f"{case['method']} {case['path']} -> {response.status_code}: {response.text[:300]}")
