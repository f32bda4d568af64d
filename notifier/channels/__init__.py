"""Channel registry: every channel type, registered explicitly (nothing is discovered)."""

from __future__ import annotations

from notifier.channels.base import Channel, ChannelContext, ChannelSettings, Rendering
from notifier.channels.bluesky import BlueskyChannel
from notifier.channels.facebook import FacebookChannel
from notifier.channels.mastodon import MastodonChannel
from notifier.channels.outbox import OutboxChannel
from notifier.channels.webhook import WebhookChannel
from notifier.channels.x import XChannel
from notifier.statuspage.channel import StatuspageChannel

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
    )
}

__all__ = ["CHANNEL_TYPES", "Channel", "ChannelContext", "ChannelSettings", "Rendering"]
