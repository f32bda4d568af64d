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


class _LineServer:
    """A small protocol-faithful IMAP4rev1 or POP3 server (greeting, CAPABILITY, LOGIN/USER+PASS,
    LOGOUT/QUIT) with one canary account, for the probes' login checks; one thread per connection."""

    def __init__(self, protocol: str, user: str = "canary", password: str = "s3cret") -> None:
        import socketserver

        owner = self
        self.protocol, self.user, self.password = protocol, user, password
        self.logins: list[tuple[str, bool]] = []

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                if owner.protocol == "imap":
                    owner._imap(self.rfile, self.wfile)
                else:
                    owner._pop3(self.rfile, self.wfile)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.target = f"127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.running = True

    def _imap(self, rfile: Any, wfile: Any) -> None:
        wfile.write(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] canary IMAP ready\r\n")
        for raw in rfile:
            tag, _, rest = raw.decode().strip().partition(" ")
            command, _, args = rest.partition(" ")
            command = command.upper()
            if command == "CAPABILITY":
                wfile.write(f"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n{tag} OK CAPABILITY completed\r\n".encode())
            elif command == "LOGIN":
                user, _, password = args.partition(" ")
                ok = (user.strip('"'), password.strip('"')) == (self.user, self.password)
                self.logins.append((user.strip('"'), ok))
                wfile.write(f"{tag} {'OK LOGIN completed' if ok else 'NO [AUTHENTICATIONFAILED] wrong'}\r\n".encode())
            elif command == "LOGOUT":
                wfile.write(f"* BYE logging out\r\n{tag} OK LOGOUT completed\r\n".encode())
                return
            else:
                wfile.write(f"{tag} BAD unknown command\r\n".encode())

    def _pop3(self, rfile: Any, wfile: Any) -> None:
        wfile.write(b"+OK canary POP3 ready\r\n")
        user = ""
        for raw in rfile:
            command, _, arg = raw.decode().strip().partition(" ")
            command = command.upper()
            if command == "USER":
                user = arg
                wfile.write(b"+OK\r\n")
            elif command == "PASS":
                ok = (user, arg) == (self.user, self.password)
                self.logins.append((user, ok))
                wfile.write(b"+OK logged in\r\n" if ok else b"-ERR [AUTH] wrong\r\n")
            elif command == "QUIT":
                wfile.write(b"+OK bye\r\n")
                return
            else:
                wfile.write(b"-ERR unknown command\r\n")

    def stop(self) -> None:
        if self.running:
            self.server.shutdown()
            self.server.server_close()
            self.running = False


def imap_server() -> _LineServer:
    return _LineServer("imap")


def pop3_server() -> _LineServer:
    return _LineServer("pop3")
