"""Per-process state of a worker: the App (built lazily, after the fork) and the liveness heartbeat."""

from __future__ import annotations

import socket
import threading

from notifier.bootstrap import App, build
from workers.celery_app import settings
from workers.dispatch import CeleryDispatcher

_app: App | None = None
_lock = threading.Lock()
HEARTBEAT_TTL = 30


def get_app() -> App:
    global _app
    with _lock:
        if _app is None:
            _app = build(settings, dispatcher=CeleryDispatcher())  # uses the worker's own app
        return _app


def heartbeat_key(app: App) -> str:
    return app.store.key("worker", "heartbeat", socket.gethostname())


def start_heartbeat(stop: threading.Event) -> threading.Thread:
    """Refresh ``worker:heartbeat:<host>`` every 10 s with a 30 s TTL; /readyz looks for such keys."""

    def beat() -> None:
        while not stop.is_set():
            try:
                app = get_app()
                app.store.redis.set(heartbeat_key(app), "1", ex=HEARTBEAT_TTL)
            except Exception:  # noqa: BLE001,S110 - Redis may be restarting; try again next round
                pass
            stop.wait(10)

    thread = threading.Thread(target=beat, name="notifier-heartbeat", daemon=True)
    thread.start()
    return thread
