"""The hard total deadline per HTTP request (notifier/channels/deadline.py), against a real local server
that trickles its answer: one byte every 0.2 s, so no single socket read ever waits as long as the read
timeout and requests' own timeout never fires. Left alone, the server completes a valid answer after
about 30 s; a test that gets that answer instead of the cut fails."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
import requests

from notifier.channels import deadline
from notifier.channels.http import ChannelSession, request_error
from notifier.channels.x import XChannel, XSettings
from notifier.errors import OutcomeUnknown, Transient
from tests.fakes import social

TRICKLE_BYTES = 150  # x 0.2 s: the answer would be complete after 30 s
BODY = b'{"data": {"id": "1", "text": "x"}}'.ljust(TRICKLE_BYTES)


class TrickleServer:
    """HTTP/1.1 with keep-alive. ``plan`` says, per request on a connection, "fast" (answered at once)
    or "trickle". ``cut`` is set when the client shut a trickled answer's connection down."""

    def __init__(self, plan: list[str]) -> None:
        self.plan = plan
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        self.requests = 0
        self.cut = threading.Event()
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            buf = b""
            for step in self.plan:
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(buf) < length:
                    buf += conn.recv(65536)
                buf = buf[length:]
                self.requests += 1
                header = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n"
                try:
                    if step == "fast":
                        conn.sendall(header.encode() + BODY)
                        continue
                    conn.sendall(header.encode())
                    for i in range(len(BODY)):
                        if self.stop.wait(0.2):
                            return
                        conn.sendall(BODY[i:i + 1])
                        if _eof(conn):  # the client shut its side down
                            self.cut.set()
                            return
                except OSError:
                    self.cut.set()
                    return

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def _eof(conn: socket.socket) -> bool:
    try:
        return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False  # nothing to read: the client is still waiting


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[TrickleServer]:
    srv = TrickleServer(getattr(request, "param", ["trickle"]))
    yield srv
    srv.close()


def test_a_trickling_answer_is_cut_at_the_total_deadline(server: TrickleServer) -> None:
    session = ChannelSession()
    with pytest.raises(deadline.DeadlineExceeded) as caught:
        # 1 s per read, and the server never makes a read wait that long: only the total deadline ends it
        session.post(server.url + "/hook", data=b"{}", timeout=(0.5, 1.0))
    assert "1.5 s" in str(caught.value)
    assert server.cut.wait(10), "the server saw its connection shut down"
    assert isinstance(request_error(caught.value), OutcomeUnknown)  # it may have arrived: reconcile it
    assert deadline.WATCHDOG.pending() == 0


@pytest.mark.parametrize("server", [["fast", "trickle"]], indirect=True)
def test_a_kept_alive_connection_is_cut_too(server: TrickleServer) -> None:
    session = ChannelSession()
    assert session.get(server.url + "/1", timeout=(0.5, 1.0)).json()["data"]["id"] == "1"
    with pytest.raises(deadline.DeadlineExceeded):
        session.get(server.url + "/2", timeout=(0.5, 1.0))
    assert server.connections == 1, "the second request reused the first one's connection"
    assert server.cut.wait(10)


@pytest.mark.parametrize("server", [["fast", "fast"]], indirect=True)
def test_a_request_that_answers_in_time_keeps_its_connection(server: TrickleServer) -> None:
    session = ChannelSession()
    for path in ("/1", "/2"):
        assert session.get(server.url + path, timeout=(0.5, 1.0)).json()["data"]["id"] == "1"
    assert server.connections == 1
    assert not server.cut.is_set()
    assert deadline.WATCHDOG.pending() == 0


def test_the_send_window_shortens_a_longer_request_budget(server: TrickleServer) -> None:
    session = ChannelSession()
    with deadline.send_window(1.0), pytest.raises(deadline.DeadlineExceeded) as caught:
        session.get(server.url + "/", timeout=(5.0, 5.0))
    assert "1.0 s" in str(caught.value)


def test_no_request_leaves_once_the_send_window_has_closed(server: TrickleServer) -> None:
    session = ChannelSession()
    with deadline.send_window(0.0), pytest.raises(deadline.WindowClosed) as caught:
        session.get(server.url + "/", timeout=(5.0, 5.0))
    assert server.connections == 0
    assert isinstance(request_error(caught.value), Transient)  # provably not sent


def test_tweepy_requests_of_the_x_channel_are_cut_at_the_deadline(server: TrickleServer) -> None:
    settings = XSettings(type="x", api_base_url=server.url, user_token="tok", user_id="1",  # type: ignore[arg-type]
                         budget_per_15min=0)
    channel = XChannel("x", settings, social.context(timeout=1.0))
    inc = social.incident(["We are investigating."])
    note = social.notice(inc, 1, "x")
    with pytest.raises(OutcomeUnknown) as caught:  # a post that may be out: reconciled, not re-sent
        channel.send(note, channel.render(note))
    assert isinstance(caught.value.__cause__, deadline.DeadlineExceeded)
    assert server.requests == 1
    assert server.cut.wait(10)


def test_a_socket_enrolled_after_the_deadline_passed_is_cut_at_once() -> None:
    (cut, _peer), (kept, _peer2) = socket.socketpair(), socket.socketpair()
    with cut, _peer, kept, _peer2:
        watch = deadline.Watch(0.0, 1.0)
        watch.fire()
        watch.enrol(cut)
        assert cut.recv(1) == b""  # shut down: EOF instead of blocking
        finished = deadline.Watch(0.0, 1.0)
        finished.enrol(kept)
        finished.finish()
        finished.fire()  # a late deadline leaves a finished request's (pooled) connection alone
        kept.setblocking(False)
        with pytest.raises(BlockingIOError):
            kept.recv(1)


def test_request_budgets() -> None:
    assert deadline.budget_of((5, 10)) == 15
    assert deadline.budget_of(3) == 3
    assert deadline.budget_of(None) is None
    assert deadline.budget_of((None, 4)) == 4


def test_requests_in_two_threads_each_get_their_own_deadline() -> None:
    """Under the thread pool each sending thread arms its own deadline; one cut never touches another."""
    slow, fast = TrickleServer(["trickle"]), TrickleServer(["fast"])
    session = ChannelSession()
    results: dict[str, object] = {}
    started = threading.Event()

    def slow_send() -> None:
        started.set()
        try:
            session.get(slow.url + "/", timeout=(0.5, 1.5))
        except requests.RequestException as exc:
            results["slow"] = exc

    try:
        t = threading.Thread(target=slow_send)
        t.start()
        started.wait(5)
        results["fast"] = session.get(fast.url + "/", timeout=(5.0, 5.0)).json()
        t.join(60)
        assert isinstance(results["slow"], deadline.DeadlineExceeded)
        assert results["fast"] == {"data": {"id": "1", "text": "x"}}
        assert not fast.cut.is_set()
    finally:
        slow.close()
        fast.close()
