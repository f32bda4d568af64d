"""Per-process state of a worker: the App (built lazily, after the fork), the liveness heartbeat, and a
watchdog for a wedged consumer.

The watchdog exists because Celery workers on Redis have, across several releases, stopped
consuming after a broker reconnect while looking alive (celery#8030, #8091, #9054, #10205). If our
queues hold messages, nothing has been received for ``NOTIFIER_STALL_SECONDS`` (default 60) and
nothing is running, the worker logs why and exits; its supervisor (``notifier run``, compose's
``restart:``, systemd) starts a fresh one. With acks_late, nothing is lost on the way.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from notifier.bootstrap import App, build
from workers.dispatch import CeleryDispatcher

log = logging.getLogger(__name__)
_app: App | None = None
_lock = threading.Lock()
HEARTBEAT_TTL = 30
STALL_SECONDS = float(os.environ.get("NOTIFIER_STALL_SECONDS", "60"))
_last_received = time.monotonic()
_queues: list[str] = []


def get_app() -> App:
    global _app
    with _lock:
        if _app is None:
            from workers.celery_app import settings

            _app = build(settings, dispatcher=CeleryDispatcher())  # sends through the worker's own app
        return _app


def heartbeat_key(app: App) -> str:
    return app.key("worker", "heartbeat", socket.gethostname())


def note_received() -> None:
    global _last_received
    _last_received = time.monotonic()


def watch_queues(names: list[str]) -> None:
    _queues[:] = names


def consumes(queue: str) -> bool:
    """Whether this worker consumes ``queue`` (True before it knows: outside a worker, send everything)."""
    return not _queues or queue in _queues


_fanout: ThreadPoolExecutor | None = None
_fanout_threads = 32


def set_concurrency(concurrency: object) -> None:
    """The fan-out threads: as many as the worker's slots, so each update task running in a slot can
    have its other channels sent at the same moment (at most 2 × concurrency sends at once)."""
    global _fanout_threads
    if isinstance(concurrency, int) and concurrency > 0:
        _fanout_threads = concurrency


def fanout_executor() -> ThreadPoolExecutor:
    """Built on first use, so in the process that uses it (after a prefork pool's fork)."""
    global _fanout
    with _lock:
        if _fanout is None:
            _fanout = ThreadPoolExecutor(max_workers=_fanout_threads, thread_name_prefix="notifier-fanout")
        return _fanout


def is_stalled(now: float, last_received: float, waiting_since: float | None, busy: bool,
               stall_after: float) -> bool:
    """Wedged: messages have waited ``stall_after`` seconds, and in that time we held none and
    received none. (A message that just arrived after a quiet hour is not a stall.)"""
    if waiting_since is None or busy:
        return False
    return now - max(last_received, waiting_since) >= stall_after


def _busy() -> bool:
    from celery.worker import state

    return bool(state.active_requests or state.reserved_requests)


def start_heartbeat(stop: threading.Event) -> threading.Thread:
    """Every 10 s: refresh ``worker:heartbeat:<host>`` (30 s TTL; /readyz looks for it) and check the
    consumer is not wedged."""

    def beat() -> None:
        waiting_since: float | None = None
        while True:
            try:
                app = get_app()
                app.require_redis().set(heartbeat_key(app), "1", ex=HEARTBEAT_TTL)
                waiting = sum(int(app.require_redis().llen(q)) for q in _queues)
            except Exception:  # noqa: BLE001 - Redis may be restarting; look again next round
                waiting = 0
            now = time.monotonic()
            waiting_since = (waiting_since or now) if waiting else None
            if is_stalled(now, _last_received, waiting_since, _busy(), STALL_SECONDS):
                log.error("consumer stalled: %d message(s) wait in %s and nothing was received for %.0f s "
                          "(a known Celery/kombu reconnect bug); exiting so the supervisor starts a fresh "
                          "worker", waiting, ",".join(_queues), now - max(_last_received, waiting_since or now))
                os.kill(os.getpid(), signal.SIGTERM)
                stop.wait(30)
                os._exit(70)
            if stop.wait(min(10.0, STALL_SECONDS / 3)):
                return

    thread = threading.Thread(target=beat, name="notifier-heartbeat", daemon=True)
    thread.start()
    return thread
