"""A hand-built status page model for the status page tests (no store, no Redis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from notifier.config import ComponentSettings, PageSettings
from notifier.domain.model import (
    ComponentChange,
    ComponentStatus,
    Impact,
    Incident,
    IncidentUpdate,
)
from notifier.statuspage.snapshot import Snapshot

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
EVIL = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2"><b>bold</b> & "quotes"'


def update(inc_id: str, n: int, status: str, text: str, at: datetime, **kw: object) -> IncidentUpdate:
    return IncidentUpdate(
        id=f"{inc_id}.{n}",
        incident_id=inc_id,
        number=n,
        status=status,
        body={"en": text, "de": f"DE: {text}"},
        created_at=at,
        **kw,
    )  # type: ignore[arg-type]


def sample_snapshot(now: datetime = NOW, evil: bool = False) -> Snapshot:
    page = PageSettings(
        id="pg1",
        name="Example Mail",
        url="https://status.example.com/",
        language="en",
        languages=["en", "de"],
        time_zone="UTC",
        stale_after_minutes=15,
    )
    components = [
        ComponentSettings(id="imap", name="IMAP", group="Mail", description="Reading mail"),
        ComponentSettings(id="smtp", name="SMTP", group="Mail"),
        ComponentSettings(id="webmail", name="Webmail", group="Web"),
        ComponentSettings(id="api", name="API"),
    ]
    statuses = {
        "imap": ComponentStatus.MAJOR_OUTAGE,
        "smtp": ComponentStatus.OPERATIONAL,
        "webmail": ComponentStatus.UNDER_MAINTENANCE,
        "api": ComponentStatus.DEGRADED_PERFORMANCE,
    }
    day = timedelta(days=1)
    history = {
        "imap": [
            ComponentChange("imap", ComponentStatus.PARTIAL_OUTAGE, now - 10 * day, "inc1"),
            ComponentChange("imap", ComponentStatus.OPERATIONAL, now - 10 * day + timedelta(minutes=45)),
            ComponentChange("imap", ComponentStatus.MAJOR_OUTAGE, now - timedelta(hours=1), "inc2"),
        ],
        "smtp": [],
        "webmail": [
            ComponentChange("webmail", ComponentStatus.UNDER_MAINTENANCE, now - timedelta(minutes=30))
        ],
        "api": [ComponentChange("api", ComponentStatus.DEGRADED_PERFORMANCE, now - timedelta(minutes=20))],
    }
    old = Incident(
        id="inc1",
        name="IMAP logins slow",
        status="resolved",
        impact=Impact.MINOR,
        created_at=now - 10 * day,
        components=["imap"],
        resolved_at=now - 10 * day + timedelta(minutes=45),
    )
    old.updates = [
        update(
            "inc1",
            1,
            "investigating",
            "Logins are slow.",
            now - 10 * day,
            component_statuses={"imap": "partial_outage"},
        ),
        update("inc1", 2, "resolved", "Fixed.", now - 10 * day + timedelta(minutes=45)),
    ]
    body = EVIL if evil else "IMAP is down for everyone."
    name = f"IMAP outage {EVIL}" if evil else "IMAP outage"
    cur = Incident(
        id="inc2",
        name=name,
        status="identified",
        impact=Impact.CRITICAL,
        created_at=now - timedelta(hours=1),
        components=["imap"],
    )
    cur.updates = [
        update(
            "inc2",
            1,
            "investigating",
            body,
            now - timedelta(hours=1),
            component_statuses={"imap": "major_outage"},
        ),
        update("inc2", 2, "identified", "A storage node failed.", now - timedelta(minutes=30)),
    ]
    running = Incident(
        id="mnt1",
        name="Webmail upgrade",
        status="in_progress",
        impact=Impact.NONE,
        created_at=now - day,
        kind="maintenance",
        components=["webmail"],
        scheduled_for=now - timedelta(minutes=30),
        scheduled_until=now + timedelta(hours=1),
    )
    running.updates = [
        update("mnt1", 1, "scheduled", "We upgrade webmail.", now - day),
        update("mnt1", 2, "in_progress", "Upgrade started.", now - timedelta(minutes=30)),
    ]
    planned = Incident(
        id="mnt2",
        name="SMTP relay move",
        status="scheduled",
        impact=Impact.NONE,
        created_at=now - timedelta(hours=2),
        kind="maintenance",
        components=["smtp"],
        scheduled_for=now + 2 * day,
        scheduled_until=now + 2 * day + timedelta(hours=2),
    )
    planned.updates = [
        update("mnt2", 1, "scheduled", "Relays move to a new data centre.", now - timedelta(hours=2))
    ]
    return Snapshot(
        page=page,
        components=components,
        statuses=statuses,
        history=history,
        incidents=[cur, old, running, planned],
    )
