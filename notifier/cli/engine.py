"""CLI commands of the incident engine: maintenance windows and the engine's state and decision log.

    notifier maintenance schedule --name N --component ID [--component ID] --start T (--end T | --duration D)
    notifier maintenance list [--all]
    notifier maintenance cancel ID
    notifier engine status               open groups, flapping components, pending journal
    notifier engine log [ID]             decisions of a group/incident, or of unrouted alerts
    notifier engine run-once             process queued events and tick once (no worker needed)

Registered by ``notifier.cli.build_parser``; ``incident show`` (which prints these decisions) lives with
the other incident commands in ``notifier.cli.incident``.
"""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from notifier.cli.common import add_command, app_for
from notifier.cli.format import ago, table, utc_time
from notifier.errors import UsageError

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


def parse_time(value: str, field: str) -> datetime:
    """ISO 8601 with a zone (``2026-11-24T22:00Z``), or relative to now: ``+30m``, ``+2h``."""
    if value.startswith("+"):
        return datetime.now(UTC) + parse_duration(value[1:], field)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{field}: {value!r} is not a time; use ISO 8601 like 2026-11-24T22:00Z or +30m") from None
    if parsed.tzinfo is None:
        raise UsageError(f"{field}: {value!r} has no time zone; add Z or +01:00")
    return parsed.astimezone(UTC)


def parse_duration(value: str, field: str) -> timedelta:
    match = _DURATION.match(value.strip())
    if not match:
        raise UsageError(f"{field}: {value!r} is not a duration; use e.g. 90m, 2h, 1d")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
    return timedelta(**{unit: float(match.group(1))})


# ---- maintenance ------------------------------------------------------------------------------------


def cmd_maintenance_schedule(args: argparse.Namespace) -> int:
    from notifier.services import maintenance

    start = parse_time(args.start, "--start")
    if bool(args.end) == bool(args.duration):
        raise UsageError("give exactly one of --end and --duration")
    end = parse_time(args.end, "--end") if args.end else start + parse_duration(args.duration, "--duration")
    body = {"en": args.message}
    if args.message_de:
        body["de"] = args.message_de
    announce = [a.strip() for a in args.announce.split(",") if a.strip()] if args.announce is not None else None
    app = app_for(args)
    kwargs = {"announce": announce} if announce is not None else {}
    inc = maintenance.schedule_maintenance(
        app, args.name, args.component, start, end, body, author=args.author, **kwargs
    )
    print(
        f"{inc.id} scheduled: {inc.name}, {start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} UTC "
        f"({', '.join(args.component)})"
    )
    return 0


def cmd_maintenance_list(args: argparse.Namespace) -> int:
    from notifier.services import maintenance

    app = app_for(args)
    windows = maintenance.list_maintenance(app, include_done=args.all)
    if not windows:
        print("no maintenance scheduled" if not args.all else "no maintenance windows yet")
        return 0
    rows = [
        (
            w.id,
            w.name,
            w.state,
            utc_time(w.start),
            utc_time(w.end),
            ",".join(w.components),
            ",".join(w.announce) or "-",
        )
        for w in windows
    ]
    print(table(["id", "name", "state", "start (UTC)", "end (UTC)", "components", "announce"], rows))
    return 0


def cmd_maintenance_cancel(args: argparse.Namespace) -> int:
    from notifier.services import maintenance

    body = {"en": args.message} if args.message else None
    window = maintenance.cancel_maintenance(app_for(args), args.id, body=body, author=args.author)
    print(f"{window.id} cancelled ({', '.join(window.components)} back to their real state)")
    return 0


# ---- engine -----------------------------------------------------------------------------------------


def cmd_engine_status(args: argparse.Namespace) -> int:
    from notifier.services import engine_runner as engine

    app = app_for(args)
    state = engine.load_state(app)
    now = app.clock.timestamp()
    if state.groups:
        rows = []
        for g in state.groups.values():
            phase = "open" if g.opened else "pending"
            if g.quiet_since is not None:
                phase += f", quiet {ago(now - g.quiet_since)}"
            rows.append(
                (
                    g.id,
                    engine.incident_of(app, g.id) or "-",
                    phase,
                    len(g.alerts),
                    g.joined,
                    ",".join(g.components),
                    "yes" if g.flapping else "",
                )
            )
        print(table(["group", "incident", "phase", "active", "joined", "components", "flapping"], rows))
    else:
        print("no open groups")
    flaps = [c for c in state.components.values() if c.score]
    if flaps:
        print()
        print(
            table(
                ["component", "flap score %", "flapping", "changes in window"],
                [(c.id, f"{c.score:g}", "yes" if c.flapping else "", len(c.changes)) for c in flaps],
            )
        )
    journal = app.store.engine_state.journal_length()
    lag = app.store.events.length()
    print(f"\njournal: {journal} action(s) not yet applied · events stream length: {lag}")
    return 0


def cmd_engine_log(args: argparse.Namespace) -> int:
    from notifier.services import engine_runner as engine

    app = app_for(args)
    log = engine.decisions_for(app, args.id or "_global")
    if not log:
        print("no decisions logged" + (f" for {args.id}" if args.id else " outside groups (no unrouted alerts)"))
        return 0
    rows = [(utc_time(d["at"]), d["kind"], d.get("alert") or "", d["message"]) for d in log[-args.limit :]]
    print(table(["at (UTC)", "decision", "alert", "why"], rows, max_width=args.width))
    return 0


def cmd_engine_run_once(args: argparse.Namespace) -> int:
    from notifier.services import engine_runner as engine

    app = app_for(args)
    done = engine.process_events(app)
    engine.tick(app)
    print(f"processed {done} event(s) and ticked once")
    return 0


def register(subparsers: Any) -> None:
    """Add the ``maintenance`` and ``engine`` command groups."""

    mnt = subparsers.add_parser("maintenance", help="schedule, list and cancel maintenance windows")
    msub = mnt.add_subparsers(dest="sub", required=True)
    sc = add_command(msub, "schedule", cmd_maintenance_schedule, "schedule a maintenance window")
    sc.add_argument("--name", required=True, help="public title, e.g. 'Storage upgrade'")
    sc.add_argument("--component", action="append", required=True, metavar="ID", help="affected (repeat)")
    sc.add_argument("--start", required=True, help="ISO 8601 with zone, or +30m / +2h from now")
    sc.add_argument("--end", help="ISO 8601 with zone, or +N from now")
    sc.add_argument("--duration", help="instead of --end: 90m, 2h, 1d")
    sc.add_argument("-m", "--message", required=True, help="what happens and what users notice (English)")
    sc.add_argument("--message-de", help="the German text")
    sc.add_argument(
        "--announce",
        help="comma-separated posts: scheduled,before,start,end (default scheduled,start,end; '' for none)",
    )
    sc.add_argument("--author", default="staff")
    ls = add_command(msub, "list", cmd_maintenance_list, "list scheduled and running maintenance windows")
    ls.add_argument("--all", action="store_true", help="include completed and cancelled windows")
    cn = add_command(msub, "cancel", cmd_maintenance_cancel, "cancel a scheduled or running window")
    cn.add_argument("id")
    cn.add_argument("-m", "--message", help="the cancellation text (default: a standard sentence)")
    cn.add_argument("--author", default="staff")

    eng = subparsers.add_parser("engine", help="the incident engine's state").add_subparsers(dest="sub", required=True)
    add_command(eng, "status", cmd_engine_status, "open groups, flap scores, journal and stream length")
    lg = add_command(eng, "log", cmd_engine_log,
                     "decisions of a group, incident or maintenance; default: unrouted alerts")
    lg.add_argument("id", nargs="?", help="g3, inc12, mnt2 (default: decisions tied to no group)")
    lg.add_argument("--limit", type=int, default=100)
    lg.add_argument("--width", type=int, default=100)
    add_command(eng, "run-once", cmd_engine_run_once, "process queued alert events and advance timers once")
