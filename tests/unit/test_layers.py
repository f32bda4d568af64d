"""Architecture rules that can be checked: the core never imports Celery or the entry points."""

from __future__ import annotations

import subprocess
import sys

from tests.support import ROOT

CORE = ["notifier.domain.model", "notifier.services.incidents", "notifier.services.delivery",
        "notifier.channels", "notifier.store.redis_store", "notifier.config", "notifier.bootstrap"]


def test_core_imports_no_celery_and_no_entry_points() -> None:
    code = (f"import sys; [__import__(m) for m in {CORE!r}]; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('celery', 'kombu', 'workers')]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def test_domain_imports_nothing_outside_the_standard_library() -> None:
    code = ("import sys; before = set(sys.modules); import notifier.domain.model, notifier.domain.events; "
            "new = {m.split('.')[0] for m in set(sys.modules) - before}; "
            "print(sorted(new - set(sys.stdlib_module_names) - {'notifier'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
