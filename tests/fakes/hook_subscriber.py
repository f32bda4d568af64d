"""Receivers for webhook subscribers: one real HTTP server, one receiver per path.

Each path's behaviour is set with ``behave(path, ...)``: ``status`` (the answer), ``echo`` (answer a
challenge by echoing its token, which confirms at once), ``delay`` (seconds before answering, after
recording). Every POST is recorded with its path, headers and JSON body; ``verified`` tells whether
its ``X-Notifier-Signature`` checks out under the key the path learnt from its challenge.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from notifier.channels.webhook import verify_signature


@dataclass
class Behaviour:
    status: int = 200
    echo: bool = False
    delay: float = 0.0


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    raw: bytes
    verified: bool


@dataclass
class HookReceivers:
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    keys: dict[str, bytes] = field(default_factory=dict)  # path -> signing key from its challenge
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        receivers = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = json.loads(raw)
                path = self.path
                with receivers.lock:
                    if body.get("type") == "subscription_challenge":
                        receivers.keys[path] = body["signing_secret"].encode()
                    key = receivers.keys.get(path)
                    behaviour = receivers.behaviours.get(path, Behaviour())
                    verified = key is not None and verify_signature(
                        key, raw, self.headers.get("X-Notifier-Signature", ""), time.time(), tolerance=10**9)
                    receivers.requests.append(Request(path, dict(self.headers), body, raw, verified))
                if behaviour.delay:
                    time.sleep(behaviour.delay)
                answer = body["challenge"].encode() if behaviour.echo and "challenge" in body else b"ok"
                self.send_response(behaviour.status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def behave(self, path: str, **kwargs: Any) -> None:
        with self.lock:
            self.behaviours[path] = Behaviour(**kwargs)

    def at(self, path: str, kind: str = "notification") -> list[Request]:
        """The requests ``path`` got: its challenges, or its notifications."""
        with self.lock:
            return [r for r in self.requests if r.path == path
                    and (r.body.get("type") == "subscription_challenge") == (kind == "challenge")]

    def __enter__(self) -> HookReceivers:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
