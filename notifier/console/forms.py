"""The composer form: parsing and checking what a person typed, and the preview objects built from it.

Pure: no I/O. The views hand in the submitted fields and the configured components and channels; out
comes a ``Composition`` (or field-named errors to show next to the inputs), and, for the live preview,
the ``Incident``/``IncidentUpdate`` pair the channels would render.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from notifier import limits
from notifier.domain.model import (
    ComponentStatus,
    Impact,
    Incident,
    IncidentStatus,
    IncidentUpdate,
    MaintenanceStatus,
)

KINDS = ("incident", "update", "resolve", "broadcast", "maintenance")
KIND_LABELS = {
    "incident": "New incident",
    "update": "Update",
    "resolve": "Resolution",
    "broadcast": "Broadcast",
    "maintenance": "Maintenance",
}
LANGUAGES = ("en", "de")
MAX_BODY = limits.MAX_TEXT
MAX_NAME = limits.MAX_NAME

# Starting points for the message, so nobody faces a blank box during an outage.
PREFILL: dict[str, dict[str, str]] = {
    "incident": {
        "en": "We are investigating problems with {components}. We will post an update within 30 minutes.",
        "de": "Wir untersuchen Probleme mit {components}. Wir melden uns innerhalb von 30 Minuten.",
    },
    "update": {
        "en": "We have identified the cause and are working on a fix.",
        "de": "Wir haben die Ursache gefunden und arbeiten an einer Lösung.",
    },
    "resolve": {
        "en": "The problem has been fixed and all services are working normally again. We apologise for "
        "the inconvenience.",
        "de": "Das Problem ist behoben, alle Dienste arbeiten wieder normal. Wir bitten die Störung zu "
        "entschuldigen.",
    },
    "broadcast": {"en": "", "de": ""},
    "maintenance": {
        "en": "We will carry out planned maintenance on {components}. Short interruptions are possible.",
        "de": "Wir führen eine geplante Wartung an {components} durch. Kurze Unterbrechungen sind möglich.",
    },
}


@dataclass
class Composition:
    kind: str = "incident"
    incident_id: str = ""
    name: str = ""
    status: str = ""
    impact: str = Impact.MINOR.value
    components: dict[str, str] = field(default_factory=dict)  # component id -> status
    body: dict[str, str] = field(default_factory=dict)  # language -> text
    channels: list[str] = field(default_factory=list)
    scheduled_for: datetime | None = None
    scheduled_until: datetime | None = None
    action: str = "preview"


def statuses_for(kind: str, incident_kind: str = "incident") -> list[str]:
    """The thread statuses a person may pick for this kind of message."""
    if kind == "broadcast":
        return []
    if kind == "maintenance" or incident_kind == "maintenance":
        values = [s.value for s in MaintenanceStatus]
    else:
        values = [s.value for s in IncidentStatus]
    if kind == "resolve":
        return values[-1:]
    if kind in ("incident", "maintenance"):
        return values[:-1]  # a new thread does not start resolved
    return values


def prefill(kind: str, component_names: Sequence[str]) -> dict[str, str]:
    names = ", ".join(component_names) or "some of our services"
    names_de = ", ".join(component_names) or "einigen unserer Dienste"
    texts = PREFILL.get(kind, {})
    return {
        "en": texts.get("en", "").replace("{components}", names),
        "de": texts.get("de", "").replace("{components}", names_de),
    }


def _first(form: Mapping[str, Sequence[str]], key: str) -> str:
    values = form.get(key) or [""]
    return str(values[0]).strip()


def _when(raw: str) -> datetime | None:
    """``<input type=datetime-local>`` gives ``2026-11-24T22:00``; the console works in UTC."""
    parsed = datetime.fromisoformat(raw)
    if not 2000 <= parsed.year <= 9000:  # also keeps UTC conversion away from datetime's edges
        raise ValueError("year out of range")
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse(
    form: Mapping[str, Sequence[str]],
    component_ids: Iterable[str],
    channel_names: Iterable[str],
    incident_kind: str = "incident",
) -> tuple[Composition, dict[str, str]]:
    """Read the submitted fields; return the composition and errors keyed by form field name."""
    errors: dict[str, str] = {}
    for key, values in form.items():
        if not (limits.valid_unicode(key) and all(limits.valid_unicode(str(v)) for v in values)):
            errors[limits.printable(key)] = "not valid Unicode; type the text again"
    comp = Composition()
    comp.kind = _first(form, "kind") or "incident"
    if comp.kind not in KINDS:
        errors["kind"] = f"unknown kind {comp.kind!r}; choose one of: {', '.join(KINDS)}"
        comp.kind = "incident"
    comp.action = _first(form, "action") or "preview"
    if comp.action not in ("preview", "publish", "draft"):
        errors["action"] = f"unknown action {comp.action!r}"
    comp.incident_id = _first(form, "incident_id")
    comp.name = _first(form, "name")
    if comp.kind in ("incident", "maintenance"):
        if not comp.name:
            errors["name"] = "give the incident a short title"
        elif len(comp.name) > MAX_NAME:
            errors["name"] = f"at most {MAX_NAME} characters"
    elif comp.kind in ("update", "resolve") and not comp.incident_id:
        errors["incident_id"] = "pick the incident this message belongs to"

    allowed = statuses_for(comp.kind, incident_kind)
    comp.status = _first(form, "status") or (allowed[0] if allowed else "")
    if allowed and comp.status not in allowed:
        errors["status"] = f"choose one of: {', '.join(allowed)}"

    comp.impact = _first(form, "impact") or Impact.MINOR.value
    if comp.impact not in {i.value for i in Impact}:
        errors["impact"] = f"choose one of: {', '.join(i.value for i in Impact)}"

    valid_status = {s.value for s in ComponentStatus}
    for cid in component_ids:
        value = _first(form, f"component.{cid}")
        if not value:
            continue
        if value not in valid_status:
            errors[f"component.{cid}"] = f"choose one of: {', '.join(sorted(valid_status))}"
        elif comp.kind != "broadcast":
            comp.components[cid] = value

    for lang in LANGUAGES:
        text = _first(form, f"body.{lang}")
        if len(text) > MAX_BODY:
            errors[f"body.{lang}"] = f"at most {MAX_BODY} characters"
        if text:
            comp.body[lang] = text
    if not comp.body:
        errors["body.en"] = "write the message in at least one language"

    known = list(channel_names)
    comp.channels = [c for c in form.get("channels", []) if c]
    unknown = [c for c in comp.channels if c not in known]
    if unknown:
        errors["channels"] = f"unknown channel(s): {', '.join(unknown)}"
    elif not comp.channels and comp.action != "preview":
        errors["channels"] = "pick at least one channel"

    if comp.kind == "maintenance":
        for key in ("scheduled_for", "scheduled_until"):
            raw = _first(form, key)
            if not raw:
                errors[key] = "give the start and end of the window (UTC)"
                continue
            try:
                setattr(comp, key, _when(raw))
            except (ValueError, OverflowError):
                errors[key] = "use the form YYYY-MM-DDTHH:MM (UTC), a year from 2000 to 9000"
        if comp.scheduled_for and comp.scheduled_until and comp.scheduled_until <= comp.scheduled_for:
            errors["scheduled_until"] = "must be after the start"
    return comp, errors


def preview_objects(
    comp: Composition, existing: Incident | None, now: datetime
) -> tuple[Incident, IncidentUpdate]:
    """The incident and its next update as they would be after publishing ``comp`` (nothing saved).

    A new incident has no id yet; it previews as ``inc0`` (``mnt0``, ``brd0``), so its marker and
    status page link have the real shape but not the final number.
    """
    if existing is not None and comp.kind in ("update", "resolve"):
        incident = replace(existing, updates=list(existing.updates))
        status = comp.status
        incident.status = status
        if comp.impact in {i.value for i in Impact} and comp.kind == "update":
            incident.impact = Impact(comp.impact)
        incident.components = sorted(set(incident.components) | set(comp.components))
    else:
        prefix = {"maintenance": "mnt", "broadcast": "brd"}.get(comp.kind, "inc")
        kind = comp.kind if comp.kind in ("maintenance", "broadcast") else "incident"
        status = comp.status or ("broadcast" if kind == "broadcast" else "")
        incident = Incident(
            id=f"{prefix}0",
            name=comp.name or "(untitled)",
            status=status,
            impact=Impact(comp.impact) if comp.impact in {i.value for i in Impact} else Impact.MINOR,
            created_at=now,
            kind=kind,
            components=sorted(comp.components),
            scheduled_for=comp.scheduled_for,
            scheduled_until=comp.scheduled_until,
        )
    number = len(incident.updates) + 1
    update = IncidentUpdate(
        id=f"{incident.id}.{number}",
        incident_id=incident.id,
        number=number,
        status=status,
        body=dict(comp.body) or {"en": ""},
        created_at=now,
        author="preview",
        component_statuses=dict(comp.components),
        channels=list(comp.channels) or None,
    )
    incident.updates.append(update)
    return incident, update
