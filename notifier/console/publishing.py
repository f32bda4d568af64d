"""Where the console meets the services: previews through the channels' own render, and submission.

The preview goes through ``notifier.services.incidents.preview``, the same path a worker takes to
render a notice, so what the console shows is what the channel will publish.
"""

from __future__ import annotations

from typing import Any

from notifier.console.forms import Composition, preview_objects
from notifier.domain.model import Incident

X_LIMIT = 280


def preview_channels(app: Any, comp: Composition, existing: Incident | None) -> list[dict[str, Any]]:
    """One entry per chosen channel (every channel when none is chosen): its posts and their lengths."""
    from notifier.services import incidents

    incident, update = preview_objects(comp, existing, app.clock.now())
    names = [n for n in (comp.channels or list(app.channels)) if n in app.channels]
    out = []
    for name in names:
        channel = app.channels[name]
        entry: dict[str, Any] = {"name": name, "type": channel.type_name, "parts": [], "error": "",
                                 "link": "", "language": ""}
        try:
            rendering = incidents.preview(app, incident, update, [name])[name]
        except Exception as exc:  # one broken template must not hide the other channels' previews
            entry["error"] = f"{type(exc).__name__}: {exc}"
            out.append(entry)
            continue
        weighted = rendering.info.get("weighted_lengths")
        limit = X_LIMIT if weighted else channel.max_length
        for i, text in enumerate(rendering.parts):
            length = int(weighted[i]) if weighted and i < len(weighted) else len(text)
            entry["parts"].append({
                "text": text, "length": length, "limit": limit, "weighted": bool(weighted),
                "over": bool(limit and length > limit),
            })
        entry["language"] = rendering.language
        entry["link"] = str(rendering.info.get("url") or rendering.info.get("link") or "")
        out.append(entry)
    return out


def submit(app: Any, comp: Composition, *, author: str, draft: bool) -> str:
    """Publish (or save as a draft) what the composer holds; return the incident id to show next."""
    from notifier.services import incidents

    channels = comp.channels or None
    if comp.kind == "maintenance":
        # the same path as the API and CLI: an engine window (suppression, start/end announcements),
        # published at once; a window cannot wait as a draft
        from notifier.errors import UsageError
        from notifier.services import maintenance

        if draft:
            raise UsageError("maintenance is scheduled directly and cannot be a draft; a publisher schedules it")
        if comp.scheduled_for is None or comp.scheduled_until is None:
            raise UsageError("scheduled_for and scheduled_until: a maintenance needs its start and end")
        scheduled = maintenance.schedule_maintenance(
            app, comp.name, list(comp.components), comp.scheduled_for, comp.scheduled_until, comp.body,
            author=author,
        )
        return str(scheduled.id)
    if comp.kind == "incident":
        incident = incidents.open_incident(
            app, name=comp.name, components=comp.components, impact=comp.impact, body=comp.body,
            status=comp.status, author=author, channels=channels, draft=draft, kind=comp.kind,
            scheduled_for=comp.scheduled_for, scheduled_until=comp.scheduled_until,
        )
        return str(incident.id)
    if comp.kind == "update":
        incidents.update_incident(
            app, comp.incident_id, status=comp.status, body=comp.body, components=comp.components or None,
            impact=comp.impact, author=author, channels=channels, draft=draft,
        )
        return comp.incident_id
    if comp.kind == "resolve":
        incidents.resolve_incident(app, comp.incident_id, body=comp.body, author=author, channels=channels,
                                   draft=draft)
        return comp.incident_id
    incident = incidents.broadcast(app, body=comp.body, author=author, channels=channels, draft=draft)
    return str(incident.id)
