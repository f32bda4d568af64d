"""Failpoints: named places where a test can freeze a worker so that it can be killed right there.

Inert unless ``NOTIFIER_FAILPOINT`` names the point (e.g. ``after_claim``) and
``NOTIFIER_FAILPOINT_DIR`` is set. On reaching it, the thread writes ``<dir>/<point>.<pid>.<thread>``
(one update's notices run on several threads of one process) and sleeps, waiting for the test's
SIGKILL. The crash tests use them to kill a worker between claiming a notice, fencing it ('sending'),
sending it, and recording the result.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

POINTS = ("before_claim", "after_claim", "after_fence", "after_send", "retry_after_release",
          "idempotency_before_record")


def failpoint(name: str) -> None:
    if os.environ.get("NOTIFIER_FAILPOINT") != name:
        return
    folder = os.environ.get("NOTIFIER_FAILPOINT_DIR")
    if not folder:
        return
    Path(folder, f"{name}.{os.getpid()}.{threading.get_ident()}").write_text(str(time.time()))
    while True:  # hold here until killed
        time.sleep(1)
