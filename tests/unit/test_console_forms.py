"""The composer form: what a person typed becomes a Composition or errors named by field."""

from datetime import UTC, datetime

import pytest

from notifier.console.forms import Composition, parse, prefill, preview_objects, statuses_for
from notifier.domain.model import Impact, Incident, IncidentUpdate

COMPONENTS = ["imap", "smtp"]
CHANNELS = ["outbox", "x"]
NOW = datetime(2026, 11, 24, 21, 0, tzinfo=UTC)


def form(**fields):
    base = {"kind": "incident", "name": "Mail down", "status": "investigating", "impact": "major",
            "body.en": "We look into it", "channels": ["outbox"], "action": "publish"}
    base.update(fields)
    return {k: v if isinstance(v, list) else [v] for k, v in base.items() if v is not None}


@pytest.mark.parametrize(
    ("fields", "error_field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"status": "resolved"}, "status"),  # a new incident does not start resolved
        ({"status": "completed"}, "status"),
        ({"impact": "apocalyptic"}, "impact"),
        ({"component.imap": "on_fire"}, "component.imap"),
        ({"body.en": "", "body.de": ""}, "body.en"),
        ({"body.de": "x" * 5001}, "body.de"),
        ({"channels": ["outbox", "myspace"]}, "channels"),
        ({"channels": []}, "channels"),
        ({"kind": "update", "incident_id": ""}, "incident_id"),
        ({"kind": "sermon"}, "kind"),
        ({"action": "delete"}, "action"),
        ({"kind": "maintenance", "status": "scheduled"}, "scheduled_for"),
        ({"kind": "maintenance", "status": "scheduled", "scheduled_for": "2026-11-25T22:00",
          "scheduled_until": "2026-11-25T21:00"}, "scheduled_until"),
        ({"kind": "maintenance", "status": "scheduled", "scheduled_for": "tomorrow",
          "scheduled_until": "2026-11-25T21:00"}, "scheduled_for"),
    ],
)
def test_bad_input_names_the_field(fields, error_field):
    _, errors = parse(form(**fields), COMPONENTS, CHANNELS)
    assert error_field in errors, errors


def test_good_incident_parses_components_languages_and_channels():
    comp, errors = parse(
        form(**{"component.imap": "major_outage", "component.smtp": "", "body.de": "Wir schauen",
                "channels": ["outbox", "x"]}),
        COMPONENTS, CHANNELS,
    )
    assert errors == {}
    assert comp.components == {"imap": "major_outage"}
    assert comp.body == {"en": "We look into it", "de": "Wir schauen"}
    assert comp.channels == ["outbox", "x"]
    assert comp.impact == "major"


def test_preview_needs_no_channel_but_publishing_does():
    _, errors = parse(form(channels=[], action="preview"), COMPONENTS, CHANNELS)
    assert "channels" not in errors


def test_maintenance_window_is_read_as_utc():
    comp, errors = parse(form(kind="maintenance", status="scheduled", scheduled_for="2026-11-25T21:00",
                              scheduled_until="2026-11-25T23:30"), COMPONENTS, CHANNELS)
    assert errors == {}
    assert comp.scheduled_for == datetime(2026, 11, 25, 21, 0, tzinfo=UTC)
    assert comp.scheduled_until == datetime(2026, 11, 25, 23, 30, tzinfo=UTC)


def test_statuses_follow_the_kind_of_thread():
    assert statuses_for("incident") == ["investigating", "identified", "monitoring"]
    assert statuses_for("resolve") == ["resolved"]
    assert statuses_for("resolve", "maintenance") == ["completed"]
    assert statuses_for("update", "maintenance")[-1] == "completed"
    assert statuses_for("broadcast") == []


def test_update_of_a_maintenance_accepts_maintenance_statuses():
    comp, errors = parse(form(kind="update", incident_id="mnt1", status="in_progress"), COMPONENTS, CHANNELS,
                         incident_kind="maintenance")
    assert errors == {}
    assert comp.status == "in_progress"


def test_prefill_names_the_components_in_both_languages():
    texts = prefill("incident", ["IMAP", "SMTP"])
    assert "IMAP, SMTP" in texts["en"] and "IMAP, SMTP" in texts["de"]
    assert "{components}" not in texts["en"] + texts["de"]


def test_preview_of_a_new_incident_is_numbered_zero():
    comp = Composition(kind="incident", name="Mail", status="investigating", impact="major",
                       components={"imap": "major_outage"}, body={"en": "hi"}, channels=["outbox"])
    incident, update = preview_objects(comp, None, NOW)
    assert incident.id == "inc0" and update.id == "inc0.1" and update.number == 1
    assert incident.components == ["imap"] and incident.impact is Impact.MAJOR
    assert update.component_statuses == {"imap": "major_outage"}


def test_preview_of_an_update_continues_the_thread_without_touching_the_original():
    first = IncidentUpdate("inc7.1", "inc7", 1, "investigating", {"en": "a"}, NOW)
    existing = Incident("inc7", "Mail", "investigating", Impact.MINOR, NOW, components=["imap"],
                        updates=[first])
    comp = Composition(kind="update", incident_id="inc7", status="identified", impact="critical",
                       components={"smtp": "partial_outage"}, body={"en": "b"})
    incident, update = preview_objects(comp, existing, NOW)
    assert update.id == "inc7.2" and update.marker == "#INC7\u00b72"
    assert incident.components == ["imap", "smtp"] and incident.impact is Impact.CRITICAL
    assert len(existing.updates) == 1 and existing.status == "investigating"


def test_preview_of_a_broadcast_uses_the_broadcast_status():
    incident, update = preview_objects(Composition(kind="broadcast", body={"en": "hello"}), None, NOW)
    assert incident.kind == "broadcast" and update.status == "broadcast"
