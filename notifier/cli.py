"""`notifier`: the staff command line. Every command builds the App and calls a service function.

Exit codes (also in the README):
    0   done
    1   unexpected error (a bug: please report it with the output)
    2   the command line itself is wrong (argparse)
    3   `config check`/`deliveries` found problems (failed or unknown deliveries)
    64  bad input: unknown component or channel, empty message, wrong status
    66  no such incident, update or notice
    69  Redis (or another service we need) cannot be reached
    78  the configuration is invalid (every problem is listed with its key path)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from notifier.bootstrap import App, build
from notifier.cli_format import ago, table
from notifier.config import Settings
from notifier.config.loader import load_settings
from notifier.domain.model import DeliveryState
from notifier.errors import ConfigError, NotifierError

# Other parts of the project add their commands here: each module has register(subparsers).
COMMAND_MODULES: list[str] = ["notifier.cli_preview", "notifier.cli_statuspage", "notifier.cli_engine",
                              "notifier.cli_api"]


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


def _app(args: argparse.Namespace, settings: Settings | None = None) -> App:
    from workers.dispatch import CeleryDispatcher  # entry points compose; notifier/ core never imports Celery

    settings = settings or _settings(args)
    return build(settings, dispatcher=CeleryDispatcher(settings))


def _dry_app(args: argparse.Namespace) -> App:
    """An App that never talks to Redis: rendering needs none."""
    import redis

    return build(_settings(args), redis_client=redis.Redis(host="unused.invalid"))


# ---- config -----------------------------------------------------------------------------------------
def cmd_config_check(args: argparse.Namespace) -> int:
    settings = _settings(args)  # raises ConfigError -> exit 78 with every problem listed
    warnings: list[str] = []
    for name, channel in settings.channels.items():
        from notifier.channels.registry import CHANNEL_TYPES

        check = getattr(sys.modules[CHANNEL_TYPES[channel.type].__module__], "config_warnings", None)
        if check is not None:
            warnings.extend(f"channels.{name}: {w}" for w in check(channel))
    print(f"{settings.source_path}: OK — {len(settings.components)} components, "
          f"{len(settings.channels)} channels ({', '.join(settings.channels) or 'none'})")
    for w in warnings:
        print(f"warning: {w}")
    return 3 if warnings and args.strict else 0


def cmd_config_show(args: argparse.Namespace) -> int:
    print(json.dumps(_settings(args).redacted(), indent=2))
    return 0


# ---- incidents ----------------------------------------------------------------------------------------
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
        app = _dry_app(args)
        _print_preview(incidents.draft_preview(app, name=args.name, body=_body(args), status=args.status,
                                               impact=args.impact or "minor", channels=args.channel))
        return 0
    app = _app(args)
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
        app = _app(args)
        _print_preview(incidents.draft_preview(app, name="", body=_body(args), status=args.status or "identified",
                                               incident_id=args.id, channels=args.channel))
        return 0
    app = _app(args)
    update = incidents.update_incident(
        app, args.id, status=args.status, body=_body(args), components=_components(args.component),
        impact=args.impact, author=args.author, channels=args.channel, draft=args.draft,
    )
    print(f"{update.id} {'saved as a draft' if update.draft else 'queued'} ({update.status})")
    return 0


def cmd_incident_resolve(args: argparse.Namespace) -> int:
    from notifier.services import incidents

    app = _app(args)
    update = incidents.resolve_incident(app, args.id, body=_body(args), author=args.author, channels=args.channel)
    print(f"{update.id} queued: {args.id} {update.status}")
    return 0


def cmd_incident_merge(args: argparse.Namespace) -> int:
    from notifier.services.merge import merge_incidents

    target = merge_incidents(_app(args), args.id, args.into, author=args.author)
    print(f"{args.id} merged into {target.id}: {target.name} (components: {', '.join(target.components) or '-'})")
    print(f"{args.id} is resolved with a note pointing at {target.id}; alerts for either now post into {target.id}")
    return 0


def cmd_incident_list(args: argparse.Namespace) -> int:
    app = _app(args)
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

    update = incidents.approve_draft(_app(args), args.update_id, approver=args.author)
    print(f"{update.id} approved and queued")
    return 0


def cmd_broadcast(args: argparse.Namespace) -> int:
    from notifier.services import incidents

    if args.dry_run:
        app = _dry_app(args)
        _print_preview(incidents.draft_preview(app, name="Notice", body=_body(args), status="broadcast",
                                               kind="broadcast", channels=args.channel))
        return 0
    app = _app(args)
    incident = incidents.broadcast(app, body=_body(args), author=args.author, channels=args.channel)
    print(f"{incident.id} queued on {', '.join(incident.updates[0].channels or app.channels)}")
    return 0


# ---- deliveries -------------------------------------------------------------------------------------
def cmd_deliveries(args: argparse.Namespace) -> int:
    app = _app(args)
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

    app = _app(args)
    for nid in args.notice_ids:
        was = delivery.retry_delivery(app, nid, force=args.force)
        how = "re-sent without reconcile" if args.force else ("reconciling" if was == "unknown" else "queued")
        print(f"{nid}: was {was}, {how}")
    return 0


def cmd_deliveries_mark_posted(args: argparse.Namespace) -> int:
    from notifier.services import delivery

    delivery.mark_posted(_app(args), args.notice_id, args.url or "")
    print(f"{args.notice_id}: marked posted")
    return 0


# ---- processes ----------------------------------------------------------------------------------------
def cmd_worker(args: argparse.Namespace) -> int:
    from notifier import runner

    # prefork only: Celery's hard task_time_limit (which the lease relies on) cannot stop a thread
    return runner.exec_worker(_settings(args), args.queues, args.concurrency, args.loglevel, "prefork")


def cmd_beat(args: argparse.Namespace) -> int:
    from notifier import runner

    return runner.exec_beat(_settings(args), args.loglevel)


def cmd_run(args: argparse.Namespace) -> int:
    from notifier import runner

    return runner.run_all(_settings(args), args)


# ---- parser ---------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="notifier", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n", 2)[2])
    parser.add_argument("--config", help="config file (default: $NOTIFIER_CONFIG, config/notifier.yaml, "
                                         "else the embedded defaults)")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(p: Any, name: str, fn: Callable[[argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        cmd = p.add_parser(name, help=help_, description=help_)
        cmd.set_defaults(func=fn)
        return cmd

    cfg = sub.add_parser("config", help="check or show the configuration").add_subparsers(dest="sub", required=True)
    check = add(cfg, "check", cmd_config_check, "validate the config; list every problem with its key path")
    check.add_argument("--strict", action="store_true", help="exit 3 on warnings too")
    add(cfg, "show", cmd_config_show, "print the effective config, secrets redacted")

    inc = sub.add_parser("incident", help="open, update, resolve and list incidents").add_subparsers(
        dest="sub", required=True)

    def message_args(p: argparse.ArgumentParser, required: bool = True) -> None:
        p.add_argument("-m", "--message", required=required, help="the update text (English)")
        p.add_argument("--message-de", help="the German text")
        p.add_argument("--channel", action="append", help="only these channels (repeat); default all")
        p.add_argument("--author", default="staff", help="who writes this (shown in the timeline)")

    op = add(inc, "open", cmd_incident_open, "open an incident and publish its first update")
    op.add_argument("--name", required=True, help="short public title, e.g. 'Mail delivery delayed'")
    op.add_argument("--component", action="append", metavar="ID[=STATUS]",
                    help="affected component, status defaults to major_outage (repeat)")
    op.add_argument("--impact", choices=["none", "minor", "major", "critical"],
                    help="default: from the worst component status (major_outage: critical, ...)")
    op.add_argument("--status", default="investigating")
    op.add_argument("--draft", action="store_true", help="save for a publisher to approve")
    op.add_argument("--dry-run", action="store_true", help="print each channel's text, post nothing")
    message_args(op)
    up = add(inc, "update", cmd_incident_update, "post an update to an open incident")
    up.add_argument("id")
    up.add_argument("--status", help="investigating, identified, monitoring (resolved: use resolve)")
    up.add_argument("--component", action="append", metavar="ID[=STATUS]")
    up.add_argument("--impact", choices=["none", "minor", "major", "critical"])
    up.add_argument("--draft", action="store_true")
    up.add_argument("--dry-run", action="store_true")
    message_args(up)
    rs = add(inc, "resolve", cmd_incident_resolve, "resolve an incident; its components become operational")
    rs.add_argument("id")
    message_args(rs)
    ls = add(inc, "list", cmd_incident_list, "list open incidents (--all for every one)")
    ls.add_argument("--all", action="store_true")
    ls.add_argument("--limit", type=int, default=50)
    mg = add(inc, "merge", cmd_incident_merge, "merge an incident into another: one story, one thread")
    mg.add_argument("id", help="the incident that ends (it is resolved with a note pointing at --into)")
    mg.add_argument("--into", required=True, help="the incident that continues")
    mg.add_argument("--author", default="staff")
    ap = add(inc, "approve", cmd_incident_approve, "publish a draft update (publisher)")
    ap.add_argument("update_id")
    ap.add_argument("--author", default="staff")

    bc = add(sub, "broadcast", cmd_broadcast, "send a one-off notice to every channel")
    bc.add_argument("--dry-run", action="store_true")
    message_args(bc)

    dl = add(sub, "deliveries", cmd_deliveries, "the delivery ledger: one row per update and channel")
    dl.add_argument("--channel")
    dl.add_argument("--state", choices=[s.value for s in DeliveryState])
    dl.add_argument("--incident")
    dl.add_argument("--limit", type=int, default=100)
    dl.add_argument("--json", action="store_true")
    dsub = dl.add_subparsers(dest="sub")
    rt = add(dsub, "retry", cmd_deliveries_retry, "try failed or unknown notices again")
    rt.add_argument("notice_ids", nargs="+", metavar="NOTICE")
    rt.add_argument("--force", action="store_true", help="send an unknown notice without reconciling first")
    mp = add(dsub, "mark-posted", cmd_deliveries_mark_posted, "record that a person found the post")
    mp.add_argument("notice_id")
    mp.add_argument("--url")

    wk = add(sub, "worker", cmd_worker, "run a Celery worker (all queues unless --queues)")
    wk.add_argument("--queues", help="comma-separated, e.g. notify.x,notify.facebook")
    wk.add_argument("--concurrency", type=int, default=4, help="processes sending at once (prefork)")
    wk.add_argument("--loglevel", default="INFO")
    bt = add(sub, "beat", cmd_beat, "run celery beat (periodic sweeps; safe to run two)")
    bt.add_argument("--loglevel", default="INFO")
    rn = add(sub, "run", cmd_run, "run the whole service: Redis (if none configured), worker, beat, API, page")
    rn.add_argument("--demo", action="store_true", help="send a demo broadcast once everything is up")
    rn.add_argument("--concurrency", type=int, default=4)

    import importlib

    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"error: invalid configuration in {exc.source}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        print("fix these keys (see the configuration reference in README.md) and run "
              "`notifier config check` again", file=sys.stderr)
        return exc.exit_code
    except NotifierError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        import redis

        if isinstance(exc, redis.RedisError):
            print(f"error: lost the connection to Redis ({exc.__class__.__name__}: {exc}); check that it "
                  "is running, then try again", file=sys.stderr)
            return 69
        raise


if __name__ == "__main__":
    sys.exit(main())
