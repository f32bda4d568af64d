"""`notifier deliveries [retry|mark-posted]`: the delivery ledger, one row per update and channel."""

from __future__ import annotations

import argparse
import json
from typing import Any

from notifier.cli.common import add_command, app_for
from notifier.cli.format import ago, table
from notifier.domain.model import DeliveryState


def cmd_deliveries(args: argparse.Namespace) -> int:
    app = app_for(args)
    rows = app.store.ledger.rows(channel=args.channel, state=args.state, incident_id=args.incident,
                                 limit=args.limit)
    now = app.clock.timestamp()
    if args.json:
        print(json.dumps([{**r.__dict__, "state": r.state.value, "shown_state": r.shown_state}
                          for r in rows], indent=2, default=str))
    elif not rows:
        print("no deliveries match")
    else:
        data = [
            (r.notice_id, r.channel, r.shown_state, r.attempt, ago(now - r.updated_at),
             r.url or r.remote_id or "-", r.last_error or r.unverified or "")
            for r in rows
        ]
        print(table(["notice", "channel", "state", "tries", "age", "remote", "last error"], data))
        counts: dict[str, int] = {}
        for r in rows:
            counts[r.shown_state] = counts.get(r.shown_state, 0) + 1
        print("\n" + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
        bad = counts.get("failed", 0) + counts.get("unknown", 0) + counts.get("posted-unverified", 0)
        if bad:
            print(f"{bad} need attention: fix the cause shown under LAST ERROR, then "
                  "`notifier deliveries retry NOTICE`")
    return 3 if any(r.state in (DeliveryState.FAILED, DeliveryState.UNKNOWN) or r.unverified for r in rows) else 0


def cmd_deliveries_retry(args: argparse.Namespace) -> int:
    from notifier.services import delivery

    app = app_for(args)
    for nid in args.notice_ids:
        was = delivery.retry_delivery(app, nid, force=args.force)
        how = "re-sent without reconcile" if args.force else ("reconciling" if was == "unknown" else "queued")
        print(f"{nid}: was {was}, {how}")
    return 0


def cmd_deliveries_mark_posted(args: argparse.Namespace) -> int:
    from notifier.services import delivery

    delivery.mark_posted(app_for(args), args.notice_id, args.url or "")
    print(f"{args.notice_id}: marked posted")
    return 0


def register(subparsers: Any) -> None:
    dl = add_command(subparsers, "deliveries", cmd_deliveries, "the delivery ledger: one row per update and channel")
    dl.add_argument("--channel")
    dl.add_argument("--state", choices=[s.value for s in DeliveryState])
    dl.add_argument("--incident")
    dl.add_argument("--limit", type=int, default=100)
    dl.add_argument("--json", action="store_true")
    dsub = dl.add_subparsers(dest="sub")
    rt = add_command(dsub, "retry", cmd_deliveries_retry, "try failed or unknown notices again")
    rt.add_argument("notice_ids", nargs="+", metavar="NOTICE")
    rt.add_argument("--force", action="store_true", help="send an unknown notice without reconciling first")
    mp = add_command(dsub, "mark-posted", cmd_deliveries_mark_posted, "record that a person found the post")
    mp.add_argument("notice_id")
    mp.add_argument("--url")
