"""A small static file server for previews, ``make run`` and the tests.

It serves a directory target's ``path`` (a symlink that publishes flip), resolving the link on every
request, so each response comes from exactly one release.
"""

from __future__ import annotations

import functools
import os
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from notifier.statuspage.publish import CONTENT_TYPES

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; object-src 'none'; "
       "base-uri 'none'; form-action {form_action}; frame-ancestors 'none'")


def csp(form_action: str | None = None) -> str:
    """The pages' CSP; ``form_action``: the one origin the subscribe form may post to (page.subscribe_url)."""
    return CSP.format(form_action=form_action or "'none'")


class StatusPageHandler(SimpleHTTPRequestHandler):
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, **CONTENT_TYPES}
    policy = csp()

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", self.policy)
        super().end_headers()

    def send_head(self) -> Any:
        # a NUL, a backslash or an undecodable byte in the path: a clean 400, not a dropped connection
        try:
            path = unquote(self.path.split("?", 1)[0].split("#", 1)[0], errors="strict")
        except UnicodeDecodeError:
            path = "\x00"
        if "\x00" in path or "\\" in path or not path.isprintable():
            self.send_error(400, "bad path")
            return None
        return super().send_head()

    def list_directory(self, path: Any) -> Any:
        self.send_error(404, "not found")  # never list a directory
        return None

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if os.environ.get("NOTIFIER_SERVE_LOG"):
            super().log_message(format, *args)


def make_server(directory: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 8081,
                form_action: str | None = None) -> ThreadingHTTPServer:
    handler_class = type("Handler", (StatusPageHandler,), {"policy": csp(form_action)})
    handler = functools.partial(handler_class, directory=os.fspath(directory))
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def serve_in_thread(directory: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 0,
                    form_action: str | None = None) -> ThreadingHTTPServer:
    """Start a server on a free port (``port=0``) in a daemon thread; call ``shutdown()`` to stop."""
    server = make_server(directory, host, port, form_action)
    threading.Thread(target=server.serve_forever, name="statuspage-serve", daemon=True).start()
    return server
