"""Configuration: the settings models, a leaf every layer may import.

This package's namespace re-exports the models only, so ``from notifier.config import Settings`` works
anywhere without importing the channel registry. Reading a file is ``notifier.config_loader``
(``load_settings``, ``parse_settings``), which sits above the registry: it validates each channel
entry with its channel type's settings model.
"""

from notifier.config.settings import (
    ApiSettings,
    ChannelSettings,
    ComponentSettings,
    DeliverySettings,
    PageSettings,
    RedisSettings,
    Settings,
    StaffSettings,
    StaffToken,
    mask_url,
)

__all__ = [
    "ApiSettings",
    "ChannelSettings",
    "ComponentSettings",
    "DeliverySettings",
    "PageSettings",
    "RedisSettings",
    "Settings",
    "StaffSettings",
    "StaffToken",
    "mask_url",
]
