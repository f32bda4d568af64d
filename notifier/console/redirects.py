"""Where the console sends the browser next: only ever to its own pages (no open redirect)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def safe_next(target: str | None) -> str:
    """Only ever redirect inside the console after sign-in (no open redirect)."""
    if target and target.startswith("/console/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/console/"


def back_to(form: Mapping[str, Sequence[str]], done: str) -> str:
    """The page a form came from (its ``back`` incident id, else the dashboard), with a ``done`` note."""
    incident_id = (form.get("back") or [""])[0]
    if incident_id and incident_id.isalnum():
        return f"/console/incidents/{incident_id}?done={done}"
    return f"/console/?done={done}"
