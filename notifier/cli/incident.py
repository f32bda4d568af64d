"""`notifier incident open|update|resolve|list|merge|approve|show` and `notifier broadcast`: staff write
the public thread (and read it back with the engine's decisions); each command builds the App and calls
a service in ``notifier.services``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from notifier.cli.common import add_command, app_for, dry_app
from notifier.cli.format import ago, table, utc_time


def _components(values: Sequence[str] | None) -> dict[str, str] | None:
    if not values:
        return None
    out = {}
    for value in values:
        comp, _, status = value.partition("=")
        out[comp] = status or "major_outage"
    return out


def _body(args: argparse.Namespace) -> dict[str, str]:
    body = {"en": args.message or ""}
    if getattr(args, "message_de", None):
        body["de"] = args.message_de
    return body


def _print_preview(renderings: dict[str, Any]) -> None:
    for name, rendering in renderings.items():
        print(f"── {name} ({rendering.language}) " + "─" * max(0, 50 - len(name)))
        for i, part in enumerate(rendering.parts, 1):
            if len(rendering.parts) > 1:
                print(f"[{i}/{len(rendering.parts)}]")
            print(part)
        lengths = rendering.info.get("weighted_lengths")
        if lengths:
            print(f"(weighted length: {', '.join(str(n) for n in lengths)} / 280)")
    print("\n(dry run: nothing was stored or posted)")


def cmd_incident_open(args: argparse.Namespace) -> int:
    from notifier.services import incidents

    if args.dry_run:
        app = dry_app(args)
        _print_preview(incidents.draft_preview(app, name=args.name, body=_body(args), status=args.status,
                                               impact=args.impact or "minor", channels=args.channel))
        return 0
    app = app_for(args)
    incident = incidents.open_incident(
        app, name=args.name, components=_components(args.component), impact=args.impact, body=_body(args),
        status=args.status, author=args.author, channels=args.channel, draft=args.draft,
    )
    count = len(incident.updates[0].channels or app.channels)
    what = "saved as a draft" if args.draft else f"queued for {count} channel(s)"
    print(f"{incident.id} opened: {incident.name} — {what}")
    print(f"follow it: notifier deliveries --incident {incident.id}")
    return 0


def cmd_incident_update(args: argparse.Namespace) -> int:
    from notifier.services import incidents

    if args.dry_run:
        app = app_for(args)
        _print_preview(incidents.draft_preview(app, name="", body=_body(args), status=args.status or "identified",
                                               incident_id=args.id, channels=args.channel))
        return 0
    app = app_for(args)
    update = incidents.update_incident(
        app, args.id, status=args.status, body=_body(args), components=_components(args.component),
        impact=args.impact, author=args.author, channels=args.channel, draft=args.draft,
    )
    print(f"{update.id} {'saved as a draft' if update.draft else 'queued'} ({update.status})")
    return 0


def cmd_incident_resolve(args: argparse.Namespace) -> int:
    from notifier.services import incidents

    app = app_for(args)
    update = incidents.resolve_incident(app, args.id, body=_body(args), author=args.author, channels=args.channel)
    print(f"{update.id} queued: {args.id} {update.status}")
    return 0


def cmd_incident_merge(args: argparse.Namespace) -> int:
    from notifier.services.merge import merge_incidents

    target = merge_incidents(app_for(args), args.id, args.into, author=args.author)
    print(f"{args.id} merged into {target.id}: {target.name} (components: {', '.join(target.components) or '-'})")
    print(f"{args.id} is resolved with a note pointing at {target.id}; alerts for either now post into {target.id}")
    return 0


def cmd_incident_list(args: argparse.Namespace) -> int:
    app = app_for(args)
    now = app.clock.now()
    rows = [
        (i.id, i.kind, i.status, i.impact.value, ",".join(i.components) or "-", len(i.updates),
         ago((now - i.updated_at).total_seconds()), i.name)
        for i in app.store.list_incidents(open_only=not args.all, limit=args.limit)
    ]
    if not rows:
        print("no open incidents" if not args.all else "no incidents yet")
        return 0
    print(table(["id", "kind", "status", "impact", "components", "updates", "updated", "name"], rows))
    return 0


def cmd_incident_approve(args: argparse.Namespace) -> int:
    from notifier.services import incidents

    update = incidents.approve_draft(app_for(args), args.update_id, approver=args.author)
    print(f"{update.id} approved and queued")
    return 0


def cmd_broadcast(args: argparse.Namespace) -> int:
    from notifier.services import incidents

    if args.dry_run:
        app = dry_app(args)
        _print_preview(incidents.draft_preview(app, name="Notice", body=_body(args), status="broadcast",
                                               kind="broadcast", channels=args.channel))
        return 0
    app = app_for(args)
    incident = incidents.broadcast(app, body=_body(args), author=args.author, channels=args.channel)
    print(f"{incident.id} queued on {', '.join(incident.updates[0].channels or app.channels)}")
    return 0


def cmd_incident_show(args: argparse.Namespace) -> int:
    from notifier.services import engine_runner as engine

    app = app_for(args)
    inc = app.store.get_incident(args.id)  # NotFound -> exit 66 with a clear message
    now = app.clock.now()
    print(f"{inc.id}  {inc.name}")
    print(
        f"kind {inc.kind} · status {inc.status} · impact {inc.impact.value} · components "
        f"{', '.join(inc.components) or '-'} · opened {ago((now - inc.created_at).total_seconds())} ago"
    )
    print("\nUpdates")
    rows = [
        (
            u.id,
            u.created_at.strftime("%H:%M:%S"),
            u.status,
            "draft" if u.draft else (u.approved_by or u.author),
            ",".join(u.channels) if u.channels is not None else "all",
            u.text("en"),
        )
        for u in inc.updates
    ]
    print(table(["update", "at", "status", "by", "channels", "text"], rows, max_width=70))
    ledger = app.store.ledger.rows(incident_id=inc.id)
    if ledger:
        print("\nDeliveries")
        print(
            table(
                ["notice", "state", "attempt", "url / error"],
                [(r.notice_id, r.state, r.attempt, r.url or r.last_error or "") for r in ledger],
            )
        )
    log = engine.decisions_for(app, inc.id)
    print("\nDecisions" + ("" if log else ": none (not opened by the engine)"))
    if log:
        decisions = [(utc_time(d["at"]), d["kind"], d.get("alert") or "", d["message"]) for d in log[-args.limit :]]
        print(table(["at (UTC)", "decision", "alert", "why"], decisions, max_width=args.width))
        if len(log) > args.limit:
            print(f"({len(log) - args.limit} older decisions not shown; --limit N)")
    return 0


def register(subparsers: Any) -> None:
    inc = subparsers.add_parser("incident", help="open, update, resolve and list incidents").add_subparsers(
        dest="sub", required=True)

    def message_args(p: argparse.ArgumentParser, required: bool = True) -> None:
        p.add_argument("-m", "--message", required=required, help="the update text (English)")
        p.add_argument("--message-de", help="the German text")
        p.add_argument("--channel", action="append", help="only these channels (repeat); default all")
        p.add_argument("--author", default="staff", help="who writes this (shown in the timeline)")

    op = add_command(inc, "open", cmd_incident_open, "open an incident and publish its first update")
    op.add_argument("--name", required=True, help="short public title, e.g. 'Mail delivery delayed'")
    op.add_argument("--component", action="append", metavar="ID[=STATUS]",
                    help="affected component, status defaults to major_outage (repeat)")
    op.add_argument("--impact", choices=["none", "minor", "major", "critical"],
                    help="default: from the worst component status (major_outage: critical, ...)")
    op.add_argument("--status", default="investigating")
    op.add_argument("--draft", action="store_true", help="save for a publisher to approve")
    op.add_argument("--dry-run", action="store_true", help="print each channel's text, post nothing")
    message_args(op)
    up = add_command(inc, "update", cmd_incident_update, "post an update to an open incident")
    up.add_argument("id")
    up.add_argument("--status", help="investigating, identified, monitoring (resolved: use resolve)")
    up.add_argument("--component", action="append", metavar="ID[=STATUS]")
    up.add_argument("--impact", choices=["none", "minor", "major", "critical"])
    up.add_argument("--draft", action="store_true")
    up.add_argument("--dry-run", action="store_true")
    message_args(up)
    rs = add_command(inc, "resolve", cmd_incident_resolve, "resolve an incident; its components become operational")
    rs.add_argument("id")
    message_args(rs)
    ls = add_command(inc, "list", cmd_incident_list, "list open incidents (--all for every one)")
    ls.add_argument("--all", action="store_true")
    ls.add_argument("--limit", type=int, default=50)
    mg = add_command(inc, "merge", cmd_incident_merge, "merge an incident into another: one story, one thread")
    mg.add_argument("id", help="the incident that ends (it is resolved with a note pointing at --into)")
    mg.add_argument("--into", required=True, help="the incident that continues")
    mg.add_argument("--author", default="staff")
    ap = add_command(inc, "approve", cmd_incident_approve, "publish a draft update (publisher)")
    ap.add_argument("update_id")
    ap.add_argument("--author", default="staff")
    sh = add_command(inc, "show", cmd_incident_show,
                     "show an incident: updates, deliveries and the engine's decisions")
    sh.add_argument("id")
    sh.add_argument("--limit", type=int, default=200, help="decisions to show (newest)")
    sh.add_argument("--width", type=int, default=100, help="cut decision texts at this width")

    bc = add_command(subparsers, "broadcast", cmd_broadcast, "send a one-off notice to every channel")
    bc.add_argument("--dry-run", action="store_true")
    message_args(bc)
