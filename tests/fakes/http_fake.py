"""A base for fake APIs: a real threaded HTTP server on loopback and a random port.

Subclasses implement ``handle(request) -> Reply``. Tests can add latency to every request and inject
faults that fire on the next matching requests (``inject``), for example "accept the post, then stall
past the client's timeout" or "answer 503". Every request is recorded, so tests count at the far end.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)  # arrival (CLOCK_MONOTONIC: one clock for all processes)

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.body.decode(), keep_blank_values=True).items()}


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    """What to do instead of (or after) the normal handling of a matching request.

    kind: "reply" (answer ``reply`` without handling), "stall_after_accept" (handle it, then sleep
    ``seconds`` before answering), "delay" (sleep ``seconds``, then handle), "drop" (handle, then close
    the connection without an answer).
    """

    method: str
    path_prefix: str
    kind: str
    reply: Reply | None = None
    seconds: float = 0.0
    times: int = 1


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the default 5 drops connections under a burst (then SYN retries cost 1 s)


class FakeServer:
    def __init__(self) -> None:
        self.latency = 0.0
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self.lock = threading.RLock()
        self.arrived = threading.Condition(self.lock)  # notified on every request recorded
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body leave in two writes: without this, a 40 ms delayed-ACK stall
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet tests
                return

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                headers = {k.lower(): v for k, v in self.headers.items()}
                req = Request(self.command, parts.path, query, headers, body)
                fake._serve(self, req)

            do_GET = do_POST = do_DELETE = _serve  # noqa: N815 - http.server's naming

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults -----------------------------------------------------------------------------------

    def inject(self, method: str, path_prefix: str, kind: str, *, reply: Reply | None = None,
               seconds: float = 0.0, times: int = 1) -> None:
        with self.lock:
            self.faults.append(Fault(method, path_prefix, kind, reply, seconds, times))

    def _take_fault(self, req: Request) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.method == req.method and req.path.startswith(fault.path_prefix):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def recorded(self, method: str, path_prefix: str = "/") -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    def wait_recorded(self, method: str, path_prefix: str, count: int, timeout: float) -> list[Request]:
        """The matching requests once at least ``count`` have arrived (woken by each arrival, no polling);
        fewer if ``timeout`` seconds pass first."""
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.recorded(method, path_prefix)) >= count, timeout)
            return self.recorded(method, path_prefix)

    # -- serving ----------------------------------------------------------------------------------

    def handle(self, req: Request) -> Reply:
        raise NotImplementedError

    def _serve(self, handler: BaseHTTPRequestHandler, req: Request) -> None:
        with self.lock:
            self.requests.append(req)
            self.arrived.notify_all()
        if self.latency:
            time.sleep(self.latency)
        fault = self._take_fault(req)
        if fault and fault.kind == "delay":
            time.sleep(fault.seconds)
        if fault and fault.kind == "reply":
            assert fault.reply is not None
            reply = fault.reply
        else:
            reply = self.handle(req)
        if fault and fault.kind == "stall_after_accept":
            time.sleep(fault.seconds)  # the client has given up by now; the post exists regardless
        if fault and fault.kind == "drop":
            handler.close_connection = True
            return
        data = b"" if reply.body is None else json.dumps(reply.body).encode()
        try:
            handler.send_response(reply.status)
            handler.send_header("Content-Type", "application/json; charset=utf-8")
            handler.send_header("Content-Length", str(len(data)))
            for key, value in reply.headers.items():
                handler.send_header(key, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and left
