"""``/console/probes``: each probe's agreed state, each location's last result, and its latency history.

Any signed-in member may look (viewer and up), like the dashboard. Only reads: the runner's state and
recent runs, and the day counters of ``notifier.probes.history``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from markupsafe import Markup

from notifier.console.guards import ConsoleDep, SignedIn
from notifier.probes.history import ProbeHistory, RecentRun, day_of
from notifier.probes.runner import snapshot
from notifier.statuspage.snapshot import ProbeDay
from notifier.statuspage.sparkline import sparkline

router = APIRouter()
DAYS_SHOWN = 14


@dataclass
class ProbeView:
    probe: Any  # ProbeSettings
    component: str  # its name
    state: Any  # verdict.ProbeState: the agreed state across locations
    locations: list[tuple[str, Any]]  # (location, verdict.LocationState or None: never ran there)
    recent: list[RecentRun]
    spark: Markup | None
    summary: str  # the recent runs in words (also the sparkline's title)
    days: list[ProbeDay]  # newest first


def _summary(runs: list[RecentRun]) -> str:
    if not runs:
        return "no runs yet"
    answered = sorted(r.latency_ms for r in runs if r.latency_ms is not None)
    failed = len(runs) - len(answered)
    if not answered:
        return f"last {len(runs)} runs: all failed"
    mean = sum(answered) / len(answered)
    p95 = answered[min(len(answered) - 1, int(len(answered) * 0.95))]
    return (f"last {len(runs)} runs: mean {mean:.0f} ms, p95 {p95:.0f} ms, max {answered[-1]:.0f} ms, "
            f"{failed} failed")


def overview(app: Any) -> list[ProbeView]:
    """One view per configured probe, in configuration order."""
    settings = app.settings
    probes = settings.probes.checks
    if not probes:
        return []
    names = {c.id: c.name for c in settings.components}
    history = ProbeHistory(app.require_redis(), settings)
    today = day_of(app.clock.now(), settings)
    days = history.days([p.name for p in probes], today - timedelta(days=DAYS_SHOWN - 1), today)
    recent = history.recent([p.name for p in probes])
    out = []
    for entry in snapshot(app):
        probe = entry["probe"]
        runs = recent.get(probe.name, [])
        summary = _summary(runs)
        out.append(ProbeView(
            probe=probe, component=names.get(probe.component, probe.component), state=entry["state"],
            locations=[(loc, entry["locations"].get(loc)) for loc in settings.probes.locations],
            recent=runs, spark=sparkline([r.latency_ms for r in runs], f"{probe.name}: {summary}") if runs else None,
            summary=summary, days=list(reversed(days[probe.name])),
        ))
    return out


@router.get("/probes")
def probes_page(ui: ConsoleDep, session: SignedIn) -> Response:
    return ui.page("probes.html", session=session, refresh=ui.options.refresh_seconds, probes=overview(ui.app),
                   quorum=ui.app.settings.probes.quorum, days_shown=DAYS_SHOWN)
