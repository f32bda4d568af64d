"""A hard total deadline for every HTTP request a channel makes, enforced from outside its thread.

Why: ``requests``' timeout is per socket operation (connect, then each read): a server that trickles a
byte every few seconds keeps a request with ``timeout=10`` alive for ever. Under the prefork pool
Celery's hard ``task_time_limit`` kills such a process; a thread (``-P threads``) cannot be killed, and
a send that outlives its lease breaks the ledger's premise (the claim expires, another worker may
reconcile and send while the first request is still on the wire, and X's in-flight lease lapses under a
write that is still in flight). So the time limit moves into the request itself:

- ``ChannelSession.send`` (``notifier/channels/http.py``, the session of every HTTP channel, tweepy's
  included) arms a deadline for the calling thread around each request: the request's own budget
  (connect + read timeout), cut short by the send window ``deliver`` opened (the claim's lease, less a
  margin for the ledger write after the answer);
- the connections of a channel's session (``DeadlineAdapter``) enrol their socket with the armed
  deadline of the thread using them: the raw socket when it is made (before any TLS handshake), and
  again before each request on a kept-alive connection;
- one watchdog thread per process sleeps until the earliest armed deadline; when one passes it shuts
  the enrolled sockets down (``shutdown(SHUT_RDWR)`` on the raw descriptor, not ``close``: it wakes a
  ``recv``/``send`` blocked in another thread at once, and frees no descriptor number that thread could
  then use by mistake). The blocked call returns, urllib3 raises, and ``ChannelSession`` raises
  ``DeadlineExceeded`` (a ``requests.ReadTimeout``): an unknown outcome, reconciled like any timeout;
- a request that would start after the send window closed is not sent at all: ``WindowClosed`` (a
  ``requests.ConnectTimeout``, so "provably not sent", transient).

What it does not cover: name resolution (``getaddrinfo`` cannot be interrupted; the resolver's own
timeouts bound it) and a TCP connect, which the connect timeout bounds; a socket that exists by the
time the deadline passes is cut at once, even one enrolled after it passed.

Clocks: monotonic only. Wall-clock times (the ledger's, possibly a fake clock in tests) never reach
this module; ``deliver`` hands it a duration.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class DeadlineExceeded(requests.ReadTimeout):
    """The request was cut at its total deadline; it may have reached the server."""


class WindowClosed(requests.ConnectTimeout):
    """The send window (the claim's lease) closed before this request started: it was never sent."""


class Watch:
    """One armed deadline: the sockets a request uses, shut down together when ``deadline`` passes."""

    __slots__ = ("deadline", "budget", "fired", "done", "_sockets", "_lock")

    def __init__(self, deadline: float, budget: float) -> None:
        self.deadline = deadline  # time.monotonic()
        self.budget = budget  # seconds, for the error message
        self.fired = False
        self.done = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def enrol(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            if self.done:
                return
            if not self.fired:
                if all(s is not sock for s in self._sockets):
                    self._sockets.append(sock)
                return
        _cut(sock)  # the deadline passed while this socket was being made: cut it before it is used

    def fire(self) -> None:
        with self._lock:
            if self.done or self.fired:
                return
            self.fired = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _cut(sock)

    def finish(self) -> None:
        """The request returned: a late deadline must not touch its (pooled, reusable) connection."""
        with self._lock:
            self.done = True
            self._sockets = []


def _cut(sock: socket.socket) -> None:
    # the raw descriptor's shutdown, also under an SSLSocket (whose own shutdown drops its TLS state);
    # OSError: already closed or never connected, so nothing is blocked on it
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class Watchdog:
    """The process's one timer thread. Started at the first armed deadline (after any fork: a forked
    child starts afresh, ``os.register_at_fork``), a daemon, idle (blocked on a condition) when nothing
    is armed."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Watch]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, deadline: float, budget: float) -> Watch:
        watch = Watch(deadline, budget)
        with self._cond:
            heapq.heappush(self._heap, (deadline, next(self._seq), watch))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="notifier-http-deadline", daemon=True)
                self._thread.start()
            elif self._heap[0][2] is watch:
                self._cond.notify()  # earlier than what the watchdog sleeps towards
        return watch

    def pending(self) -> int:
        """Armed deadlines not yet passed or finished (for tests and metrics)."""
        with self._cond:
            return sum(1 for _, _, w in self._heap if not w.done and not w.fired)

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                while self._heap and (self._heap[0][2].done or self._heap[0][0] <= now):
                    _, _, watch = heapq.heappop(self._heap)
                    watch.fire()  # no-op when finished
                self._cond.wait(self._heap[0][0] - now if self._heap else None)


WATCHDOG = Watchdog()
os.register_at_fork(after_in_child=WATCHDOG._reset)  # the parent's thread does not exist in a child

_local = threading.local()


def current() -> Watch | None:
    """The deadline armed for this thread's request in flight, if any."""
    return getattr(_local, "watch", None)


@contextmanager
def send_window(seconds: float) -> Iterator[None]:
    """Every request this thread makes inside the block ends within ``seconds`` from now (``deliver``
    opens it for the rest of the claim's lease). Nested windows only ever shorten it."""
    end = time.monotonic() + max(seconds, 0.0)
    outer = getattr(_local, "window", None)
    _local.window = end if outer is None else min(outer, end)
    try:
        yield
    finally:
        _local.window = outer


def window_left() -> float | None:
    """Seconds left in this thread's send window; None outside one."""
    end = getattr(_local, "window", None)
    return None if end is None else end - time.monotonic()


def budget_of(timeout: Any) -> float | None:
    """A request's total budget from requests' ``timeout``: connect + read for a pair, else the number."""
    if timeout is None:
        return None
    if isinstance(timeout, tuple):
        parts = [t for t in timeout if t is not None]
        return float(sum(parts)) if parts else None
    return float(timeout)


@contextmanager
def guard(budget: float | None) -> Iterator[Watch | None]:
    """Arm this thread's deadline for one request: ``budget`` seconds, never past the send window.
    Yields None when neither bounds it. Raises ``WindowClosed`` when the window has already closed."""
    left = window_left()
    if left is not None and left <= 0:
        raise WindowClosed("the claim's lease is nearly over; not sending (it is retried under a new claim)")
    limits = [b for b in (budget, left) if b is not None]
    if not limits:
        yield None
        return
    seconds = min(limits)
    watch = WATCHDOG.arm(time.monotonic() + seconds, seconds)
    outer = current()
    _local.watch = watch
    try:
        yield watch
    finally:
        watch.finish()
        _local.watch = outer


def _enrol(sock: socket.socket | None) -> None:
    watch = current()
    if watch is not None:
        watch.enrol(sock)


class _DeadlineHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _enrol(sock)  # before the request (and, for HTTPS, the handshake) is written to it
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        _enrol(self.sock)  # a kept-alive connection (None for a fresh one: _new_conn enrols it)
        super().request(*args, **kwargs)


class _DeadlineHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _enrol(sock)
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        _enrol(self.sock)
        super().request(*args, **kwargs)


class _DeadlineHTTPPool(HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _DeadlineHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


POOL_CLASSES = {"http": _DeadlineHTTPPool, "https": _DeadlineHTTPSPool}


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter whose connections enrol their sockets with the thread's armed deadline."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = POOL_CLASSES

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = POOL_CLASSES
        return manager
