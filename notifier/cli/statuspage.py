"""`notifier statuspage build|publish|serve`: the status page from the command line.

Registered by ``notifier.cli.build_parser``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from notifier.errors import NotifierError

if TYPE_CHECKING:
    from notifier.app import App


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("statuspage", help="build, publish or preview the status page")
    sub = parser.add_subparsers(dest="statuspage_command", required=True)

    build = sub.add_parser("build", help="build the site from the current state into a directory")
    build.add_argument("--out", default="var/site-build", help="output directory (default: %(default)s)")
    _config(build)
    build.set_defaults(func=cmd_build)

    publish = sub.add_parser("publish", help="publish the current state to every statuspage channel now")
    publish.add_argument("--channel", action="append", help="only this channel (repeatable)")
    _config(publish)
    publish.set_defaults(func=cmd_publish)

    serve = sub.add_parser("serve", help="serve a directory target locally for previews")
    serve.add_argument("--port", type=int, default=8081)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--dir", help="directory to serve (default: the first directory channel's path)")
    _config(serve)
    serve.set_defaults(func=cmd_serve)


def _config(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: don't clobber a --config given to the top-level parser
    parser.add_argument("--config", default=argparse.SUPPRESS, help="config file (default: see README)")


def _app(args: argparse.Namespace) -> App:
    from notifier.cli.common import local_app, settings_for

    return local_app(settings_for(args))


def cmd_build(args: argparse.Namespace) -> int:
    from notifier.probes.history import PageProbeResults
    from notifier.statuspage.generator import build_site
    from notifier.statuspage.snapshot import load_snapshot

    try:
        app = _app(args)
        s = app.settings
        now = app.clock.now()
        probes = PageProbeResults(app.redis, s) if app.redis is not None else None
        files = build_site(load_snapshot(app.store, s.page, s.components, now, probes=probes), args.out, now)
    except NotifierError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    index = Path(args.out) / "index.html"
    print(f"built {len(files)} files into {args.out} (index.html {index.stat().st_size / 1024:.1f} KiB)")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from notifier.errors import DeliveryError
    from notifier.services.statuspage import statuspage_channels

    try:
        app = _app(args)
    except NotifierError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    channels = statuspage_channels(app)
    if args.channel:
        unknown = set(args.channel) - set(channels)
        if unknown:
            print(
                f"error: no statuspage channel {', '.join(sorted(unknown))}; configured: "
                f"{', '.join(sorted(channels)) or '(none)'}",
                file=sys.stderr,
            )
            return 64
        channels = {n: c for n, c in channels.items() if n in args.channel}
    if not channels:
        print(
            "no statuspage channels configured (add one with type: statuspage under channels:)",
            file=sys.stderr,
        )
        return 64
    failed = 0
    for name, channel in channels.items():
        try:
            result = channel.publish()
            print(f"{name}: published {result.release} ({result.written} written, {result.skipped} unchanged)")
        except DeliveryError as exc:
            failed += 1
            print(f"{name}: FAILED: {exc.reason}", file=sys.stderr)
    return 69 if failed else 0  # EX_UNAVAILABLE: a target could not be reached (1 means a bug)


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve a directory target. Keeps running when nothing is published yet (``make run`` starts it
    before the first publish); the page appears as soon as the symlink exists."""
    from notifier.statuspage.serve import make_server

    directory = args.dir
    channel_name = None
    form_action = None
    if directory is None:
        try:
            from notifier.cli.common import settings_for

            settings = settings_for(args)
        except NotifierError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return exc.exit_code
        form_action = settings.page.subscribe_origin()
        targets = [
            (name, str(getattr(c, "path", "")))
            for name, c in settings.channels.items()
            if c.type == "statuspage" and getattr(c, "target", "") == "directory" and c.enabled
        ]
        if targets:
            channel_name, directory = targets[0]
        else:
            directory = "var/site"
            print(
                "warning: no statuspage channel with target: directory is configured, so nothing publishes "
                f"to {directory}; add `page-local: {{type: statuspage, target: directory, path: {directory}}}` "
                "under channels:",
                file=sys.stderr,
            )
    if not Path(directory).exists() and channel_name is not None:
        args.channel = [channel_name]
        if cmd_publish(args) != 0:  # a first publish so the preview has something to show
            print(f"warning: {directory} is not published yet; it appears after the first publish", file=sys.stderr)
    try:
        server = make_server(directory, args.host, args.port, form_action)
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror}; choose --port", file=sys.stderr)
        return 69
    print(f"serving {directory} on http://{args.host}:{server.server_address[1]}/ (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
