"""``notifier api [--host H] [--port P]``: serve the HTTP API (webhooks, staff API, ops) with uvicorn."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "api", help="serve the HTTP API (webhooks, staff API, /healthz, /readyz, /metrics)",
        description="Serve the HTTP API with uvicorn. Host and port default to api.host / api.port.",
    )
    p.add_argument("--host", help="listen address (default: api.host, 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (default: api.port, 8080)")
    p.add_argument("--log-level", default="warning",
                   choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=cmd_api)


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    from notifier import limits
    from notifier.api import create_app
    from notifier.config_loader import load_settings

    settings = load_settings(getattr(args, "config", None))
    api = create_app(settings=settings)  # the composition root wires it, Celery dispatcher included
    host = args.host or settings.api.host
    port = args.port or settings.api.port
    # one process, one event loop: the request path is a few hundred microseconds of Redis work;
    # scale out with more `notifier api` processes behind a balancer
    uvicorn.run(api, host=host, port=port, log_level=args.log_level, proxy_headers=settings.api.trust_proxy,
                forwarded_allow_ips=settings.api.forwarded_allow_ips, server_header=False,
                timeout_graceful_shutdown=10, h11_max_incomplete_event_size=limits.MAX_HEADER_BYTES)
    return 0
