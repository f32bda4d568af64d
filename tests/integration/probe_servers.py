"""Real servers on loopback for the probe tests: an HTTP server whose delay and status a test sets,
and aiosmtpd's SMTP server. Each listens on a free port and stops for real (the port then refuses)."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HttpServer:
    def __init__(self) -> None:
        self.delay = 0.0
        self.status = 200
        self.body = b"<html><body>Inbox</body></html>"
        self.requests = 0
        self.in_flight = 0
        self.peak = 0
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                with owner._lock:
                    owner.requests += 1
                    owner.in_flight += 1
                    owner.peak = max(owner.peak, owner.in_flight)
                try:
                    if owner.delay:
                        time.sleep(owner.delay)  # the server being slow is what is under test
                    self.send_response(owner.status)
                    self.send_header("Content-Length", str(len(owner.body)))
                    self.end_headers()
                    self.wfile.write(owner.body)
                finally:
                    with owner._lock:
                        owner.in_flight -= 1

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        self.running = True

    def stop(self) -> None:
        if self.running:
            self.server.shutdown()
            self.server.server_close()
            self.running = False


class SmtpServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.controller = Controller(object(), hostname="127.0.0.1", port=self.port,
                                     server_hostname="mx.test.invalid")
        self.controller.start()
        self.target = f"127.0.0.1:{self.port}"
        self.running = True

    def stop(self) -> None:
        if self.running:
            self.controller.stop()
            self.running = False
