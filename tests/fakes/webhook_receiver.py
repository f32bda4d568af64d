"""A real HTTP receiver for the webhook channel: records POSTs, can fail on demand, answers lookups.

- POST /hook           verifies X-Notifier-Signature when a secret is set; records the body;
                       answers ``fail_status`` (with Retry-After) while ``failing`` is set; holds
                       its answer while ``gate`` is cleared.
- GET  /hook/status    ?idempotency_key=K -> 200 {"id", "url"} if a POST with that key arrived, else 404
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from notifier.channels.webhook import verify_signature


class WebhookReceiver:
    def __init__(self, secret: bytes | None = None) -> None:
        self.secret = secret
        self.received: list[dict[str, Any]] = []
        self.attempts = 0  # every POST, accepted or not
        self.failing = False
        self.fail_status = 503
        self.delay = 0.0  # seconds to stall *after* recording, before answering
        # cleared: a POST is recorded, then its answer waits until the gate is set again (at most 60 s),
        # so a test can hold a send in flight (its task running, its message unacknowledged)
        self.gate = threading.Event()
        self.gate.set()
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)  # notified on every POST recorded
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                # http.server writes headers and body separately; without NODELAY, Nagle + delayed ACK
                # add 40 ms to every response.
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _reply(self, status: int, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None):
                data = json.dumps(body or {}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.attempts += 1
                    failing = receiver.failing
                if failing:
                    self._reply(receiver.fail_status, {"error": "unavailable"}, {"Retry-After": "1"})
                    return
                if receiver.secret is not None:
                    header = self.headers.get("X-Notifier-Signature", "")
                    if not verify_signature(receiver.secret, body, header, time.time()):
                        self._reply(401, {"error": "bad signature"})
                        return
                key = self.headers.get("Idempotency-Key", "")
                with receiver.lock:
                    receiver.received.append({"key": key, "body": json.loads(body), "at": time.monotonic()})
                    number = len(receiver.received)
                    receiver.arrived.notify_all()
                if receiver.delay:
                    time.sleep(receiver.delay)
                receiver.gate.wait(60)
                self._reply(200, {"id": f"msg-{number}", "url": f"http://receiver.invalid/msg-{number}"})

            def do_GET(self) -> None:  # noqa: N802
                query = parse_qs(urlparse(self.path).query)
                key = query.get("idempotency_key", [""])[0]
                with receiver.lock:
                    for i, item in enumerate(receiver.received, 1):
                        if item["key"] == key:
                            self._reply(200, {"id": f"msg-{i}", "url": f"http://receiver.invalid/msg-{i}"})
                            return
                self._reply(404, {"error": "not found"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def keys(self) -> list[str]:
        with self.lock:
            return [item["key"] for item in self.received]

    def arrival(self, count: int, timeout: float) -> float | None:
        """When (time.monotonic) the ``count``-th POST was recorded, waiting for it (woken by each arrival,
        no polling); None if it has not arrived within ``timeout`` seconds."""
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.received) >= count, timeout):
                return None
            return float(self.received[count - 1]["at"])

    def first_arrival(self, keys: set[str]) -> float | None:
        """When (time.monotonic) the first POST with one of ``keys`` arrived; None if none did."""
        with self.lock:
            return min((item["at"] for item in self.received if item["key"] in keys), default=None)

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.gate.set()  # let held answers go
        self.server.shutdown()
        self.server.server_close()
