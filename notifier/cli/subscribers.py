"""`notifier subscribers`: counts per component, CSV export, removing an address or a webhook URL, and the
local mail sink that `make run` uses as its relay (every mail lands in a Maildir under ./var)."""

from __future__ import annotations

import argparse
import mailbox
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from notifier.cli.common import add_command, app_for
from notifier.services import subscriptions


def cmd_count(args: argparse.Namespace) -> int:
    app = app_for(args)
    for title, counts in (("confirmed subscribers", subscriptions.counts(app)),
                          ("webhook subscribers", subscriptions.hook_counts(app))):
        print(f"{title:<24} {counts.pop('total')}")
        print(f"{'  of every component':<24} {counts.pop('all')}")
        for component, n in counts.items():
            print(f"{'  ' + component:<24} {n}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    sys.stdout.write(subscriptions.export_csv(app_for(args)))
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    if subscriptions.remove(app_for(args), args.address):
        print(f"removed {args.address}")
        return 0
    print(f"{args.address} is not subscribed", file=sys.stderr)
    return 66


def cmd_remove_webhook(args: argparse.Namespace) -> int:
    if subscriptions.remove_hook(app_for(args), args.url):
        print("removed the webhook subscriber")  # not the URL: it may carry a receiver's token
        return 0
    print("no such webhook subscriber", file=sys.stderr)
    return 66


class MaildirHandler:
    """aiosmtpd handler: every message into one Maildir, as the relay received it."""

    def __init__(self, path: str) -> None:
        self.box = mailbox.Maildir(path, create=True)
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        with self.lock:
            self.box.add(envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"


def cmd_sink(args: argparse.Namespace) -> int:
    from aiosmtpd.controller import Controller

    for sub in ("tmp", "new", "cur"):  # mailbox.Maildir makes these only when the folder itself is new
        (Path(args.dir) / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
    controller = Controller(MaildirHandler(args.dir), hostname=args.host, port=args.port)
    controller.start()
    print(f"mail sink on {args.host}:{args.port}, writing every message to the Maildir {args.dir}/new/", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()
    return 0


def register(subparsers: Any) -> None:
    sub = subparsers.add_parser("subscribers", help="e-mail and webhook subscribers: counts, export, remove; "
                                "a mail sink").add_subparsers(dest="sub", required=True)
    add_command(sub, "count", cmd_count, "confirmed subscribers, per component")
    add_command(sub, "export", cmd_export, "every confirmed subscriber as CSV on stdout")
    rm = add_command(sub, "remove", cmd_remove, "forget an address (exit 66 if it is not subscribed)")
    rm.add_argument("address")
    rw = add_command(sub, "remove-webhook", cmd_remove_webhook,
                     "forget a webhook subscriber's URL (exit 66 if it is not subscribed)")
    rw.add_argument("url")
    sk = add_command(sub, "sink", cmd_sink, "a local SMTP server writing every mail to a Maildir (make run's relay)")
    sk.add_argument("--dir", default="var/mail")
    sk.add_argument("--host", default="127.0.0.1")
    sk.add_argument("--port", type=int, default=8025)
