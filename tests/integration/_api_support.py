"""Real parts for the API tests: a private redis-server on a free port, the API under uvicorn in a
thread on a free port, and an App wired by the composition root."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis
import uvicorn
from redis.backoff import NoBackoff
from redis.retry import Retry

from notifier.bootstrap import build
from notifier.config import Settings
from notifier.config_loader import parse_settings
from notifier.ports import NullDispatcher
from notifier.store.local_redis import LocalRedis, free_port

TOKENS = {
    "AM_TOKEN": "am-s3cret",
    "GRAFANA_TOKEN": "gr-s3cret",
    "KUMA_TOKEN": "kuma-s3cret",
    "GENERIC_SECRET": "hmac-s3cret",
    "VIEWER_TOKEN": "viewer-tok",
    "EDITOR_TOKEN": "editor-tok",
    "PUBLISHER_TOKEN": "publisher-tok",
}

CONFIG = """
redis:
  key_prefix: "t:"
components:
  - {id: imap, name: IMAP, group: Mail}
  - {id: smtp, name: SMTP, group: Mail}
channels:
  outbox:
    type: outbox
    path: %(outbox)s
sources:
  alertmanager: {auth: bearer, token: "${AM_TOKEN}"}
  grafana: {auth: bearer, token: "${GRAFANA_TOKEN}"}
  uptime-kuma: {auth: bearer, token: "${KUMA_TOKEN}"}
  generic: {auth: hmac, secret: "${GENERIC_SECRET}", tolerance_seconds: 300}
staff:
  tokens:
    - {name: vera, role: viewer, token: "${VIEWER_TOKEN}"}
    - {name: ed, role: editor, token: "${EDITOR_TOKEN}"}
    - {name: pia, role: publisher, token: "${PUBLISHER_TOKEN}"}
"""


def wait_for(predicate: Any, timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll until truthy. The deadline only bounds a hang; it is not a timed assertion."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


@contextlib.contextmanager
def redis_server(data_dir: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A private redis-server (LocalRedis, AOF fsync always like production); yields (process, port)."""
    server = LocalRedis(data_dir).start()
    assert server.proc is not None
    try:
        yield server.proc, server.port
    finally:
        server.stop()


def settings_for(tmp: Path, extra: str = "") -> Settings:
    return parse_settings(CONFIG % {"outbox": tmp / "outbox.jsonl"} + extra, "test", env=TOKENS)


def make_app(settings: Settings, port: int) -> Any:
    # one quick retry instead of redis-py's default backoff: the outage tests need not wait seconds
    client = redis.Redis(
        host="127.0.0.1",
        port=port,
        decode_responses=True,
        socket_timeout=2,
        socket_connect_timeout=1,
        retry=Retry(NoBackoff(), 1),
    )
    return build(settings, dispatcher=NullDispatcher(), redis_client=client)


class ApiServer:
    """uvicorn serving an ASGI app on 127.0.0.1:<free port> in a daemon thread."""

    def __init__(self, asgi: Any) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(asgi, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ApiServer:
        self.thread.start()
        for _ in range(500):
            if self.server.started:
                return self
            time.sleep(0.01)
        raise RuntimeError("uvicorn did not start")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
