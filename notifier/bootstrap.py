"""The composition root: settings in, a wired ``App`` out. CLI, API, worker and tests all come here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from notifier import logsafe
from notifier.channels.base import Channel, ChannelContext
from notifier.channels.progress import ProgressStore
from notifier.channels.registry import CHANNEL_TYPES
from notifier.channels.x_budget import BudgetStore
from notifier.clock import Clock, SystemClock
from notifier.config import Settings
from notifier.ports import Dispatcher, NullDispatcher
from notifier.statuspage.snapshot import StoreSnapshots
from notifier.store.redis_store import RedisStore, connect
from notifier.templating import TemplateRenderer


@dataclass
class App:
    settings: Settings
    store: RedisStore
    channels: dict[str, Channel]
    clock: Clock
    dispatcher: Dispatcher
    templates: TemplateRenderer
    extras: dict[str, Any] = field(default_factory=dict)

    def channel(self, name: str) -> Channel:
        return self.channels[name]


def build_channels(settings: Settings, context: ChannelContext) -> dict[str, Channel]:
    return {
        name: CHANNEL_TYPES[conf.type](name, conf, context)
        for name, conf in settings.channels.items()
        if conf.enabled
    }


def build(
    settings: Settings,
    *,
    dispatcher: Dispatcher | None = None,
    clock: Clock | None = None,
    redis_client: Any = None,
    redis_url: str | None = None,
) -> App:
    logsafe.install(settings)
    clock = clock or SystemClock()
    redis_client = redis_client if redis_client is not None else connect(settings, redis_url)
    templates = TemplateRenderer(settings.templates_dir, settings.page.language)
    store = RedisStore(redis_client, prefix=settings.redis.key_prefix)
    prefix = settings.redis.key_prefix
    context = ChannelContext(
        page=settings.page,
        clock=clock,
        templates=templates,
        http_timeout=settings.delivery.http_timeout,
        key_prefix=prefix,
        budgets=BudgetStore(redis_client, prefix),
        progress=ProgressStore(redis_client, prefix),
        snapshots=StoreSnapshots(store, settings.page, settings.components, clock),
    )
    return App(
        settings=settings,
        store=store,
        channels=build_channels(settings, context),
        clock=clock,
        dispatcher=dispatcher or NullDispatcher(),
        templates=templates,
    )
