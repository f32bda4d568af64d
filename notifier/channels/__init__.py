"""Channels: one module per publishing target, all implementing ``base.Channel``.

This package's namespace holds the base types only and imports no channel module, so importing one
channel never drags in the others; the list of channel types is ``notifier.channels.registry``.
"""

from __future__ import annotations

from notifier.channels.base import Channel, ChannelContext, ChannelSettings, Rendering

__all__ = ["Channel", "ChannelContext", "ChannelSettings", "Rendering"]
