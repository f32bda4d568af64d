"""`notifier preview`: each channel's exact text for an update, and X's weighted length per post.

    notifier preview --name "Mail delayed" --message "We are looking into it." [--message-de ...]
    notifier preview --incident inc42 [--update 3]          # an update that exists (reads Redis)
    notifier preview ... --channel x --json

The text comes from each channel's own ``render()``, so the preview is what would be posted (the
delivery ledger stores the rendered parts on first send, so later template edits do not change a
retry). Nothing is stored or posted.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from notifier.channels.base import Rendering
from notifier.channels.x_text import MAX_WEIGHTED


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "preview", help="show each channel's exact text (and X's weighted length) without posting",
        description="Render an update for every channel (or those given) without storing or posting it.",
    )
    parser.add_argument("--name", default="", help="incident name (for a new, hypothetical incident)")
    parser.add_argument("--message", "-m", default="", help="update text in English")
    parser.add_argument("--message-de", default=None, help="update text in German")
    parser.add_argument("--status", default="investigating")
    parser.add_argument("--impact", default="minor")
    parser.add_argument("--kind", default="incident", choices=["incident", "maintenance", "broadcast"])
    parser.add_argument("--incident", default=None, help="an existing incident's update (reads Redis)")
    parser.add_argument("--update", type=int, default=None, help="update number (default: the latest)")
    parser.add_argument("--channel", action="append", help="only this channel (repeatable)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=cmd_preview)


def cmd_preview(args: argparse.Namespace) -> int:
    from notifier.bootstrap import build
    from notifier.config.loader import load_settings
    from notifier.errors import UsageError
    from notifier.services import incidents

    settings = load_settings(args.config)
    if args.incident:
        app = build(settings)
        incident = app.store.get_incident(args.incident)
        if not incident.updates:
            raise UsageError(f"{incident.id} has no updates yet")
        number = args.update or len(incident.updates)
        if not 1 <= number <= len(incident.updates):
            raise UsageError(f"--update must be between 1 and {len(incident.updates)} for {incident.id}")
        renderings = incidents.preview(app, incident, incident.updates[number - 1], args.channel)
    else:
        if not args.message:
            raise UsageError("give the update text with --message (or --incident ID to preview a stored one)")
        import redis

        app = build(settings, redis_client=redis.Redis(host="unused.invalid"))  # rendering needs no Redis
        body = {"en": args.message}
        if args.message_de:
            body["de"] = args.message_de
        renderings = incidents.draft_preview(app, name=args.name or "(untitled)", body=body,
                                             status=args.status, impact=args.impact, kind=args.kind,
                                             channels=args.channel)
    if args.channel:
        unknown = sorted(set(args.channel) - set(renderings))
        if unknown:
            raise UsageError(f"no enabled channel named {', '.join(unknown)}; configured: "
                             f"{', '.join(app.channels) or 'none'}")
    print(json.dumps(as_json(renderings), indent=2, ensure_ascii=False) if args.json else as_text(renderings))
    too_long = any(n > MAX_WEIGHTED for r in renderings.values() for n in r.info.get("weighted_lengths", []))
    return 3 if too_long else 0


def as_json(renderings: dict[str, Rendering]) -> dict[str, Any]:
    return {n: {"language": r.language, "parts": list(r.parts), **r.info} for n, r in renderings.items()}


def as_text(renderings: dict[str, Rendering]) -> str:
    out: list[str] = []
    for name, rendering in renderings.items():
        lengths = rendering.info.get("weighted_lengths")
        title = f"── {name} ({rendering.language}"
        if len(rendering.parts) > 1:
            title += f", thread of {len(rendering.parts)}"
        out.append(title + ") " + "─" * max(0, 60 - len(title)))
        for i, part in enumerate(rendering.parts):
            if len(rendering.parts) > 1:
                out.append(f"[{i + 1}/{len(rendering.parts)}]")
            out.append(part)
            if lengths:
                out.append(f"   (weighted length {lengths[i]}/{MAX_WEIGHTED})")
        if rendering.info.get("link"):
            out.append(f"   (link preview: {rendering.info['link']})")
        out.append("")
    out.append("(preview only: nothing was stored or posted)")
    return "\n".join(out)
