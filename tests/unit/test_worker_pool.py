"""Which Celery pool `notifier worker` runs: threads for delivery, prefork for a probes-only worker."""

from __future__ import annotations

from notifier.cli.run import DEFAULT_CONCURRENCY, pool_for
from notifier.config_loader import load_settings


def test_delivery_workers_default_to_threads_and_probe_workers_to_prefork() -> None:
    settings = load_settings(None)
    probes = f"notifier.probes.{settings.probes.location}"
    assert pool_for(settings, None, None) == "threads"
    assert pool_for(settings, "notify.x,notify.facebook", None) == "threads"
    assert pool_for(settings, probes, None) == "prefork"  # its ticks rely on Celery's hard time limit
    assert pool_for(settings, f"{probes},notify.x", None) == "threads"
    assert pool_for(settings, None, "prefork") == "prefork"  # --pool always wins
    assert DEFAULT_CONCURRENCY == {"threads": 32, "prefork": 4}
