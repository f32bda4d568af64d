"""The Celery app the worker and beat run (``celery -A workers.celery_app``), built from the same config
file as everything else (``$NOTIFIER_CONFIG``, ``config/notifier.yaml`` or the embedded defaults).
Only worker and beat processes import this module; everything else uses ``workers.setup``.
"""

from __future__ import annotations

from notifier import logsafe
from notifier.config_loader import load_settings
from workers.setup import make_celery

settings = load_settings()
logsafe.install(settings)  # before Celery logs anything
app = make_celery(settings)
