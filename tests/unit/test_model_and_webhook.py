from __future__ import annotations

from datetime import UTC, datetime

import pytest

from notifier.channels.webhook import classify_error, signature_header, verify_signature
from notifier.domain.events import AlertEvent
from notifier.domain.model import Impact, Incident, IncidentUpdate, marker_for
from notifier.errors import OutcomeUnknown, Permanent, Transient


@pytest.mark.parametrize(("incident", "number", "marker"), [
    ("inc42", 3, "#INC42·3"), ("brd7", 1, "#BRD7·1"), ("mnt1", 12, "#MNT1·12"),
])
def test_marker(incident: str, number: int, marker: str) -> None:
    assert marker_for(incident, number) == marker


def test_incident_round_trips_through_json() -> None:
    at = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    inc = Incident(id="inc1", name="IMAP", status="investigating", impact=Impact.MAJOR, created_at=at,
                   components=["imap"])
    inc.updates.append(IncidentUpdate(id="inc1.1", incident_id="inc1", number=1, status="investigating",
                                      body={"en": "x", "de": "y"}, created_at=at,
                                      component_statuses={"imap": "major_outage"}))
    again = Incident.from_dict(inc.to_dict())
    assert again == inc and again.updates[0].text("de") == "y" and again.updates[0].text("fr") == "x"


def test_same_alert_transition_has_the_same_event_id() -> None:
    at = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    a = AlertEvent("alertmanager", "abc", "firing", {"a": "b"}, at, received_at=at)
    b = AlertEvent("alertmanager", "abc", "firing", {"a": "b"}, at, received_at=datetime.now(UTC))
    c = AlertEvent("alertmanager", "abc", "resolved", {"a": "b"}, at, received_at=at, ends_at=at)
    assert a.id == b.id != c.id
    assert AlertEvent.from_dict(a.to_dict()) == a


def test_signature_verifies_and_rejects_tampering_and_replays() -> None:
    body = b'{"x": 1}'
    header = signature_header(b"k", body, 1_000)
    assert verify_signature(b"k", body, header, now=1_100)
    assert not verify_signature(b"k", body + b" ", header, now=1_100)
    assert not verify_signature(b"other", body, header, now=1_100)
    assert not verify_signature(b"k", body, header, now=1_000 + 301)  # replay outside the tolerance
    assert not verify_signature(b"k", body, "garbage", now=1_000)


class _Resp:
    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.status_code, self.headers, self.text = status, headers or {}, "body"


@pytest.mark.parametrize(("status", "kind", "retry_after"), [
    (429, Transient, 7.0), (503, Transient, 7.0), (502, OutcomeUnknown, None), (504, OutcomeUnknown, None),
    (401, Permanent, None), (404, Permanent, None), (500, OutcomeUnknown, None), (307, Permanent, None),
])
def test_webhook_status_classification(status: int, kind: type, retry_after: float | None) -> None:
    err = classify_error(None, _Resp(status, {"Retry-After": "7"}))  # type: ignore[arg-type]
    assert type(err) is kind
    if retry_after is not None:
        assert err.retry_after == retry_after  # type: ignore[attr-defined]


def test_webhook_connection_errors() -> None:
    import requests
    from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

    refused = requests.ConnectionError(MaxRetryError(None, "/", NewConnectionError(None, "refused")))
    assert isinstance(classify_error(refused, None), Transient)
    aborted = requests.ConnectionError(ProtocolError("Connection aborted.", ConnectionResetError()))
    assert isinstance(classify_error(aborted, None), OutcomeUnknown)  # the body may have arrived
    assert isinstance(classify_error(requests.ReadTimeout("slow"), None), OutcomeUnknown)
    assert isinstance(classify_error(requests.ConnectTimeout("no route"), None), Transient)


def test_outbox_never_glues_a_record_onto_a_torn_line(tmp_path) -> None:
    from notifier.channels.base import ChannelContext
    from notifier.channels.outbox import OutboxChannel, OutboxSettings
    from notifier.clock import FakeClock
    from notifier.config import PageSettings
    from notifier.domain.model import Notice
    from notifier.templating import TemplateRenderer

    path = tmp_path / "outbox.jsonl"
    path.write_text('{"notice_id": "inc1.1:o", "text": "cut of')  # a crash mid-write
    ctx = ChannelContext(page=PageSettings(), clock=FakeClock(), templates=TemplateRenderer())
    chan = OutboxChannel("o", OutboxSettings(type="outbox", path=str(path)), ctx)
    at = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    inc = Incident(id="inc1", name="IMAP", status="investigating", impact=Impact.MAJOR, created_at=at)
    upd = IncidentUpdate(id="inc1.1", incident_id="inc1", number=1, status="investigating", body={"en": "down"},
                         created_at=at)
    inc.updates.append(upd)
    note = Notice(inc, upd, "o")
    assert chan.reconcile(note) is None  # the torn line is not a post
    chan.send(note, chan.render(note))
    assert chan.reconcile(note) is not None
    assert [r["notice_id"] for r in chan.read_all()] == ["inc1.1:o"]
