"""The Celery app the worker and beat run (``celery -A workers.celery_app``), built from the same config
file as everything else (``$NOTIFIER_CONFIG``, ``config/notifier.yaml`` or the embedded defaults).
Only worker and beat processes import this module; everything else uses ``workers.setup``.
"""

from __future__ import annotations

import logging

from celery.signals import after_setup_logger

from notifier import logsafe
from notifier.config_loader import load_settings
from workers.setup import make_celery

# Celery logs "Task ... received" and "Task ... succeeded" at INFO for every task: two formatted, redacted
# lines per delivery in the worker's main process (issue 14). Failures (ERROR) still log; --loglevel DEBUG
# brings the per-task lines back.
PER_TASK_LOGGERS = ("celery.app.trace", "celery.worker.strategy")


@after_setup_logger.connect
def _quiet_per_task_lines(loglevel: int | str | None = None, **_: object) -> None:
    level = logging.getLevelName(loglevel) if isinstance(loglevel, str) else loglevel
    if not isinstance(level, int) or level > logging.DEBUG:
        for name in PER_TASK_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)


settings = load_settings()
logsafe.install(settings)  # before Celery logs anything
app = make_celery(settings)
