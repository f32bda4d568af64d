"""The engine core is pure: importing it pulls in no Redis, no Celery, no services, no store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_engine_core_imports_no_io() -> None:
    code = (
        "import sys; import notifier.engine.core, notifier.engine.actions, notifier.engine.state; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('redis', 'celery', 'kombu', 'workers', 'requests')"
        " or m.startswith(('notifier.services', 'notifier.store', 'notifier.bootstrap'))); print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
