"""The composition root: settings in, a wired ``App`` out. CLI, API, worker and tests all come here.

Every entry point (``notifier.cli``, ``notifier.api.app``, ``workers.runtime``) calls :func:`build`; tests
hand it their fakes (a dispatcher, a clock, channel types or ready channels, a Redis client) instead of
patching module globals. Celery stays out of here: the entry points pass the Celery dispatcher in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from notifier import logsafe
from notifier.app import App
from notifier.channels.base import Channel, ChannelContext
from notifier.channels.progress import ProgressStore
from notifier.channels.registry import CHANNEL_TYPES
from notifier.channels.x_budget import BudgetStore
from notifier.clock import Clock, SystemClock
from notifier.config import Settings
from notifier.ports import Dispatcher, IncidentStore, NullDispatcher
from notifier.probes.history import PageProbeResults
from notifier.statuspage.snapshot import StoreSnapshots
from notifier.store.redis_store import RedisStore, connect
from notifier.store.subscribers import RedisSubscribers
from notifier.templating import TemplateRenderer


def build_channels(settings: Settings, context: ChannelContext,
                   channel_types: Mapping[str, type[Channel]] | None = None) -> dict[str, Channel]:
    """One channel per enabled ``channels.<name>``, its class looked up by type in the registry
    (``channel_types`` entries take precedence: tests register their fakes there)."""
    types = {**CHANNEL_TYPES, **(channel_types or {})}
    return {
        name: types[conf.type](name, conf, context)
        for name, conf in settings.channels.items()
        if conf.enabled
    }


def build(
    settings: Settings,
    *,
    dispatcher: Dispatcher | None = None,
    clock: Clock | None = None,
    channel_types: Mapping[str, type[Channel]] | None = None,
    channels: Mapping[str, Channel] | None = None,
    store: IncidentStore | None = None,
    redis_client: Any = None,
    redis_url: str | None = None,
) -> App:
    """Wire an App for ``settings``.

    dispatcher: where work goes (the entry points pass ``workers.dispatch.CeleryDispatcher``);
        default a ``NullDispatcher`` that enqueues nothing.
    clock: default the system clock.
    channel_types: channel classes by type name, merged over the registry (a fake type for a test).
    channels: ready channel instances by name; they replace (or add to) the ones built from settings.
    store: a ready store (``MemoryStore`` for unit tests); then no Redis is connected, and X budgets and
        thread progress live in memory.
    redis_client / redis_url: the Redis to use; default a connection made from ``settings.redis``.
    """
    logsafe.install(settings)
    clock = clock or SystemClock()
    templates = TemplateRenderer(settings.templates_dir, settings.page.language)
    prefix = settings.redis.key_prefix
    if store is None:
        redis_client = redis_client if redis_client is not None else connect(settings, redis_url)
        store = RedisStore(redis_client, prefix=prefix, min_replicas=settings.redis.min_replicas,
                           wait_timeout_ms=settings.redis.wait_timeout_ms)
    subscribers = RedisSubscribers(redis_client, prefix) if redis_client is not None else None
    context = ChannelContext(
        page=settings.page,
        clock=clock,
        templates=templates,
        http_timeout=settings.delivery.http_timeout,
        key_prefix=prefix,
        budgets=BudgetStore(redis_client, prefix) if redis_client is not None else None,
        progress=ProgressStore(redis_client, prefix) if redis_client is not None else None,
        snapshots=StoreSnapshots(store, settings.page, settings.components, clock,
                                 probes=PageProbeResults(redis_client, settings) if redis_client is not None else None),
        task_time_limit=settings.delivery.task_time_limit,
        subscribers=subscribers,
        mail=settings.subscribers,
    )
    return App(
        settings=settings,
        store=store,
        redis=redis_client,
        channels={**build_channels(settings, context, channel_types), **(channels or {})},
        clock=clock,
        dispatcher=dispatcher or NullDispatcher(),
        templates=templates,
        subscribers=subscribers,
    )

__all__ = ["App", "build", "build_channels"]
