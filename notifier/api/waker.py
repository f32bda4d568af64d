"""Wake the incident engine off the request path, coalescing bursts.

``Dispatcher.wake_engine()`` publishes a Celery message; doing that inside each webhook request would
add a broker round trip (and Celery's publish retries when the broker is down) to every 202. The events
are already durable when we poke, and the engine also polls on its beat tick, so one wake-up per
``min_interval`` for a whole burst is enough.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger(__name__)


class EngineWaker:
    def __init__(self, dispatcher: Any, min_interval: float = 0.05) -> None:
        self.dispatcher = dispatcher
        self.min_interval = min_interval
        self._due = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def poke(self) -> None:
        """Ask for a wake-up soon; cheap and non-blocking."""
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="engine-waker", daemon=True)
                    self._thread.start()
        self._due.set()

    def stop(self) -> None:
        self._stop.set()
        self._due.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._due.wait()
            if self._stop.is_set():
                return
            self._due.clear()
            try:
                self.dispatcher.wake_engine()
            except Exception:  # the engine's beat tick processes the events anyway
                log.warning("could not wake the incident engine", exc_info=True)
            self._stop.wait(self.min_interval)
