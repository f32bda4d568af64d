"""api/v2/*.json checked field by field against Statuspage's public v2 shapes."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from notifier.domain.model import ComponentStatus
from notifier.statuspage.json_api import JsonApi
from notifier.statuspage.snapshot import Snapshot
from tests.fakes.statuspage_model import NOW, sample_snapshot

PAGE = {"id", "name", "url", "time_zone", "updated_at"}
COMPONENT = {
    "id",
    "name",
    "status",
    "created_at",
    "updated_at",
    "position",
    "description",
    "showcase",
    "start_date",
    "group_id",
    "page_id",
    "group",
    "only_show_if_degraded",
}
INCIDENT = {
    "id",
    "name",
    "status",
    "created_at",
    "updated_at",
    "monitoring_at",
    "resolved_at",
    "impact",
    "shortlink",
    "started_at",
    "page_id",
    "incident_updates",
    "components",
}
UPDATE = {
    "id",
    "status",
    "body",
    "incident_id",
    "created_at",
    "updated_at",
    "display_at",
    "affected_components",
    "deliver_notifications",
    "custom_tweet",
    "tweet_id",
}
MAINTENANCE = INCIDENT | {
    "scheduled_for",
    "scheduled_until",
    "scheduled_remind_prior",
    "scheduled_reminded_at",
    "impact_override",
    "scheduled_auto_in_progress",
    "scheduled_auto_completed",
}
COMPONENT_STATUSES = {s.value for s in ComponentStatus}


@pytest.fixture(scope="module")
def docs() -> dict[str, Any]:
    files = JsonApi(sample_snapshot(), NOW).files()
    return {path.removeprefix("api/v2/"): json.loads(data) for path, data in files.items()}


def ts(value: str | None) -> datetime | None:
    if value is None:
        return None
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def check_page(page: dict[str, Any]) -> None:
    assert set(page) == PAGE
    assert page == {
        "id": "pg1",
        "name": "Example Mail",
        "url": "https://status.example.com",
        "time_zone": "UTC",
        "updated_at": "2026-11-24T12:00:00Z",
    }


def check_component(c: dict[str, Any]) -> None:
    assert set(c) == COMPONENT | ({"components"} if c["group"] else set()), c["id"]
    assert c["status"] in COMPONENT_STATUSES
    assert isinstance(c["position"], int) and isinstance(c["showcase"], bool)
    assert c["page_id"] == "pg1" and c["only_show_if_degraded"] is False
    ts(c["created_at"]), ts(c["updated_at"])


def check_incident(inc: dict[str, Any], keys: set[str]) -> None:
    assert set(inc) == keys, set(inc) ^ keys
    assert inc["shortlink"] == f"https://status.example.com/incidents/{inc['id']}.html"
    for key in ("created_at", "updated_at", "started_at", "monitoring_at", "resolved_at"):
        ts(inc[key])
    times = []
    for upd in inc["incident_updates"]:
        assert set(upd) == UPDATE
        assert upd["incident_id"] == inc["id"] and isinstance(upd["body"], str) and upd["body"]
        times.append(ts(upd["display_at"]))
    assert times == sorted(times, reverse=True)  # newest first, as Statuspage does
    for comp in inc["components"]:
        check_component(comp)


def test_every_file_is_there_with_a_page_object(docs: dict[str, Any]) -> None:
    assert set(docs) == {
        "summary.json",
        "status.json",
        "components.json",
        "incidents.json",
        "incidents/unresolved.json",
        "scheduled-maintenances.json",
        "scheduled-maintenances/upcoming.json",
        "scheduled-maintenances/active.json",
    }
    for doc in docs.values():
        check_page(doc["page"])


def test_status(docs: dict[str, Any]) -> None:
    assert docs["status.json"] == {
        "page": docs["status.json"]["page"],
        "status": {"indicator": "critical", "description": "Major System Outage"},
    }
    assert docs["summary.json"]["status"] == docs["status.json"]["status"]


def test_components_and_groups(docs: dict[str, Any]) -> None:
    comps = docs["components.json"]["components"]
    assert set(docs["components.json"]) == {"page", "components"}
    for c in comps:
        check_component(c)
    by_name = {c["name"]: c for c in comps}
    mail, web = by_name["Mail"], by_name["Web"]
    assert mail["group"] is True and mail["components"] == ["imap", "smtp"]
    assert mail["status"] == "major_outage"  # a group shows its worst member
    assert web["status"] == "under_maintenance"
    assert by_name["IMAP"]["group_id"] == mail["id"] and by_name["API"]["group_id"] is None
    assert by_name["IMAP"]["description"] == "Reading mail" and by_name["SMTP"]["description"] is None
    assert [c["position"] for c in comps] == sorted(c["position"] for c in comps)
    assert by_name["API"]["status"] == "degraded_performance"
    assert by_name["IMAP"]["updated_at"] == "2026-11-24T11:00:00Z"  # its last change
    assert docs["summary.json"]["components"] == comps


def test_incidents(docs: dict[str, Any]) -> None:
    incidents = docs["incidents.json"]["incidents"]
    assert [i["id"] for i in incidents] == ["inc2", "inc1"]  # incidents only, newest first
    for inc in incidents:
        check_incident(inc, INCIDENT)
    cur, old = incidents
    assert cur["status"] == "identified" and cur["impact"] == "critical" and cur["resolved_at"] is None
    assert [u["status"] for u in cur["incident_updates"]] == ["identified", "investigating"]
    assert cur["incident_updates"][1]["body"] == "IMAP is down for everyone."
    assert cur["incident_updates"][1]["affected_components"] == [
        {"code": "imap", "name": "IMAP", "old_status": None, "new_status": "major_outage"}
    ]
    assert cur["incident_updates"][0]["affected_components"] is None
    assert [c["id"] for c in cur["components"]] == ["imap"]
    assert (
        old["status"] == "resolved"
        and old["resolved_at"] == "2026-11-14T12:45:00Z"
        and old["impact"] == "minor"
    )
    unresolved = docs["incidents/unresolved.json"]["incidents"]
    assert [i["id"] for i in unresolved] == ["inc2"]
    assert docs["summary.json"]["incidents"] == unresolved


def test_scheduled_maintenances(docs: dict[str, Any]) -> None:
    all_m = docs["scheduled-maintenances.json"]["scheduled_maintenances"]
    assert {m["id"] for m in all_m} == {"mnt1", "mnt2"}
    for m in all_m:
        check_incident(m, MAINTENANCE)
        assert m["impact"] == "maintenance"
    upcoming = docs["scheduled-maintenances/upcoming.json"]["scheduled_maintenances"]
    active = docs["scheduled-maintenances/active.json"]["scheduled_maintenances"]
    assert [m["id"] for m in upcoming] == ["mnt2"] and upcoming[0]["status"] == "scheduled"
    assert upcoming[0]["scheduled_for"] == "2026-11-26T12:00:00Z"
    assert upcoming[0]["scheduled_until"] == "2026-11-26T14:00:00Z"
    assert [m["id"] for m in active] == ["mnt1"] and active[0]["status"] == "in_progress"
    assert {m["id"] for m in docs["summary.json"]["scheduled_maintenances"]} == {"mnt1", "mnt2"}
    assert set(docs["summary.json"]) == {
        "page",
        "components",
        "incidents",
        "scheduled_maintenances",
        "status",
    }


@pytest.mark.parametrize(
    ("statuses", "open_impact", "indicator", "description"),
    [
        ({}, None, "none", "All Systems Operational"),
        ({"api": "degraded_performance"}, None, "minor", "Minor Service Outage"),
        ({"api": "partial_outage"}, None, "major", "Partial System Outage"),
        ({"api": "major_outage"}, None, "critical", "Major System Outage"),
        ({"api": "under_maintenance"}, None, "none", "Service Under Maintenance"),
        ({}, "major", "major", "Partial System Outage"),  # an open incident's impact counts too
    ],
)
def test_indicator_table(
    statuses: dict[str, str], open_impact: str | None, indicator: str, description: str
) -> None:
    base = sample_snapshot()
    incidents = [i for i in base.incidents if i.id == "inc2"] if open_impact else []
    for inc in incidents:
        inc.impact = type(inc.impact)(open_impact)
    snap = Snapshot(
        page=base.page,
        components=base.components,
        statuses={k: ComponentStatus(v) for k, v in statuses.items()},
        history={},
        incidents=incidents,
    )
    assert JsonApi(snap, NOW).status() == {"indicator": indicator, "description": description}
