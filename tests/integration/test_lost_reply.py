"""A Redis reply lost after EXEC ran must not run a transaction twice (found in review: redis-py's
retries re-sent it, giving a duplicate update with its own notices)."""

from __future__ import annotations

import contextlib
import socket
import threading

import pytest

from notifier.bootstrap import build
from notifier.config_loader import parse_settings
from notifier.ports import NullDispatcher
from notifier.services import incidents

pytestmark = pytest.mark.integration


class DropExecReply:
    """A TCP proxy in front of Redis that, once armed, swallows the reply to the next EXEC and cuts
    the connection, as a Redis restart or a network blip does."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.armed = False
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self.listener.accept()
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            state = {"drop": False}
            threading.Thread(target=self._pipe, args=(client, upstream, True, state), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False, state), daemon=True).start()

    @staticmethod
    def _cut(*socks: socket.socket) -> None:
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _pipe(self, src: socket.socket, dst: socket.socket, to_redis: bool, state: dict[str, bool]) -> None:
        try:
            while data := src.recv(65536):
                if to_redis and self.armed and b"EXEC" in data:
                    self.armed = False
                    state["drop"] = True  # Redis runs the transaction, but its reply never arrives
                    dst.sendall(data)
                    continue
                if not to_redis and state["drop"]:
                    self._cut(src, dst)
                    return
                dst.sendall(data)
        except OSError:
            pass


def test_a_lost_exec_reply_does_not_duplicate_an_update(redis_server) -> None:
    proxy = DropExecReply(redis_server.port)
    settings = parse_settings(f"redis: {{url: 'redis://127.0.0.1:{proxy.port}/0'}}\n"
                              "components: [{id: imap, name: IMAP}]\nchannels: {o: {type: outbox}}\n", "t", {})
    app = build(settings, dispatcher=NullDispatcher())
    inc = incidents.open_incident(app, name="IMAP", components=["imap"], body="down")
    proxy.armed = True
    with contextlib.suppress(Exception):  # a lost reply may surface as an error; what's stored matters
        incidents.update_incident(app, inc.id, status="identified", body="found it")
    direct = build(settings, dispatcher=NullDispatcher(), redis_url=redis_server.url)  # around the proxy
    stored = direct.store.get_incident(inc.id)
    assert [u.body["en"] for u in stored.updates] == ["down", "found it"]
    assert len(direct.store.ledger.rows(incident_id=inc.id)) == 2
