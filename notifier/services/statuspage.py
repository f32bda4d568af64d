"""Freshness heartbeat: republish every status page target, called periodically (Celery beat).

The page shows when it was built and warns visitors when that is older than
``page.stale_after_minutes``; this keeps it fresh while nothing happens, and also carries component
status changes that arrive without an incident update. Each target is published on its own, so a
failing mirror never stops the others.
"""

from __future__ import annotations

import logging
from typing import Any

from notifier.channels.statuspage import StatuspageChannel
from notifier.errors import DeliveryError

log = logging.getLogger(__name__)


def statuspage_channels(app: Any) -> dict[str, StatuspageChannel]:
    return {n: c for n, c in app.channels.items() if isinstance(c, StatuspageChannel)}


def republish(app: Any) -> dict[str, str]:
    """Publish the current state to every statuspage channel; returns {channel: "ok ..." | error}."""
    results: dict[str, str] = {}
    for name, channel in statuspage_channels(app).items():
        try:
            result = channel.publish()  # each loads its own snapshot: updates may target one channel
            results[name] = f"ok {result.release} ({result.written} written, {result.skipped} unchanged)"
        except DeliveryError as exc:
            log.warning("statuspage heartbeat: %s failed: %s", name, exc.reason)
            results[name] = f"error: {exc.reason}"
    return results
