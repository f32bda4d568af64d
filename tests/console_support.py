"""Shared pieces of the console tests: settings with staff tokens, the app, a uvicorn in a thread."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from notifier.bootstrap import App, build
from notifier.config import Settings
from notifier.config_loader import parse_settings
from notifier.console import mount
from notifier.store.local_redis import free_port

TOKENS = {"CONSOLE_PUBLISHER": "pub-token-0123456789", "CONSOLE_EDITOR": "edit-token-0123456789",
          "CONSOLE_VIEWER": "view-token-0123456789"}


def settings_yaml(outbox: Path, extra_channels: str = "") -> str:
    return f"""
page: {{name: Example Mail, url: "http://status.example.test/"}}
components:
  - {{id: imap, name: IMAP, group: Mail}}
  - {{id: smtp, name: SMTP, group: Mail}}
  - {{id: webmail, name: Webmail, group: Web}}
channels:
  outbox:
    type: outbox
    path: {outbox}
{extra_channels}
staff:
  tokens:
    - {{name: Pia Publisher, token: "${{CONSOLE_PUBLISHER}}", role: publisher}}
    - {{name: Ed Editor, token: "${{CONSOLE_EDITOR}}", role: editor}}
    - {{name: Vi Viewer, token: "${{CONSOLE_VIEWER}}", role: viewer}}
"""


def make_settings(outbox: Path, extra_channels: str = "", env: dict[str, str] | None = None) -> Settings:
    return parse_settings(settings_yaml(outbox, extra_channels), "test", {**TOKENS, **(env or {})})


def make_app(settings: Settings, redis_url: str, **kwargs: Any) -> App:
    return build(settings, redis_url=redis_url, **kwargs)


def web_app(app: App, **console_options: Any) -> FastAPI:
    """The smallest ASGI app around the console, mounted as the API app mounts it."""
    web = FastAPI()
    web.state.notifier = app
    mount(web, **console_options)
    return web


class Served:
    """Run an ASGI app under a real uvicorn server in a thread, on a free loopback port."""

    def __init__(self, asgi: Any) -> None:
        import threading

        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(asgi, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        for _ in range(500):
            if self.server.started:
                break
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
