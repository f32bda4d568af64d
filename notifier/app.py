"""The wired application every service and entry point works with; built only by ``notifier.bootstrap``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from notifier.channels.base import Channel
from notifier.clock import Clock
from notifier.config import Settings
from notifier.ports import Dispatcher, IncidentStore, SubscriberRepository
from notifier.templating import TemplateRenderer


@dataclass
class App:
    """What every entry point and service works with.

    ``store`` is the port the services speak (incidents, ledger, engine state, event stream): the Redis
    store in production, ``notifier.store.memory.MemoryStore`` in unit tests. ``redis`` is the raw client
    for the adapters that keep their own keys next to the store (console sessions and sign-in limits, the
    API's idempotency records and readiness probe, worker heartbeats, queue-depth metrics); it is None on
    the in-memory store, and those adapters then say so.
    """

    settings: Settings
    store: IncidentStore
    channels: dict[str, Channel]
    clock: Clock
    dispatcher: Dispatcher
    templates: TemplateRenderer
    redis: Any = None
    subscribers: SubscriberRepository | None = None  # e-mail subscribers (None without Redis)
    extras: dict[str, Any] = field(default_factory=dict)

    def channel(self, name: str) -> Channel:
        return self.channels[name]

    def key(self, *parts: str) -> str:
        """A Redis key under the configured prefix (for the adapters that use ``redis``)."""
        return self.settings.redis.key_prefix + ":".join(parts)

    def require_redis(self) -> Any:
        if self.redis is None:
            raise RuntimeError("this part of the service needs Redis; build the App with a Redis store "
                               "(notifier.bootstrap.build without store=)")
        return self.redis
