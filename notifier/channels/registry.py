"""The channel registry: every channel type, listed explicitly (nothing is discovered).

A new channel is one module under ``notifier/channels/`` plus one line here. The config loader
looks channel entries up in ``CHANNEL_TYPES`` to validate them, and the composition root
(``notifier.bootstrap``) to build them.
"""

from __future__ import annotations

from notifier.channels.apprise import AppriseChannel
from notifier.channels.base import Channel
from notifier.channels.bluesky import BlueskyChannel
from notifier.channels.email import EmailChannel
from notifier.channels.facebook import FacebookChannel
from notifier.channels.mastodon import MastodonChannel
from notifier.channels.outbox import OutboxChannel
from notifier.channels.statuspage import StatuspageChannel
from notifier.channels.subscriber_hooks import SubscriberHooksChannel
from notifier.channels.webhook import WebhookChannel
from notifier.channels.x import XChannel

CHANNEL_TYPES: dict[str, type[Channel]] = {
    cls.type_name: cls
    for cls in (
        OutboxChannel,
        WebhookChannel,
        XChannel,
        FacebookChannel,
        MastodonChannel,
        BlueskyChannel,
        StatuspageChannel,
        EmailChannel,
        AppriseChannel,
        SubscriberHooksChannel,
    )
}

__all__ = ["CHANNEL_TYPES"]
