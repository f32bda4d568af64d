"""Every module imports on its own, first, in a fresh interpreter: no import cycle waits for an unlucky
import order (``import notifier.statuspage.channel`` used to fail that way).

Starting ~100 interpreters would take minutes on a small machine, so one helper process imports the
third-party libraries once and then forks a child per module: each child starts with no ``notifier``
or ``workers`` module loaded, which is the state a fresh interpreter is in as far as this project's
import graph is concerned. Each module is then its own test case, named after it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

PACKAGES = ("notifier", "workers")


def _modules() -> list[str]:
    names = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


MODULES = _modules()

# Runs in its own interpreter: preload the third-party modules the project uses (slow to import, and
# they cannot import this project), then fork one child per module; prints {module: error or null}.
_DRIVER = r"""
import importlib, json, os, subprocess, sys, traceback
modules = json.loads(sys.argv[1])
ours = ("notifier", "workers", "tests")
# which third-party modules the project pulls in at all: import everything once, elsewhere
listing = "import importlib, json, sys\n" \
    f"for m in {modules!r}:\n    try: importlib.import_module(m)\n    except BaseException: pass\n" \
    f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] not in {ours!r})))"
done = subprocess.run([sys.executable, "-c", listing], capture_output=True, text=True, check=True)
for lib in json.loads(done.stdout.strip().splitlines()[-1]):
    try:
        importlib.import_module(lib)
    except BaseException:
        pass
assert not [m for m in sys.modules if m.split(".")[0] in ours], "the preload imported the project"
results = {}
for module in modules:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            importlib.import_module(module)
            message = ""
        except BaseException as exc:
            message = "".join(traceback.format_exception_only(type(exc), exc)).strip() or repr(exc)
        os.write(write, message.encode())
        os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    _, status = os.waitpid(pid, 0)
    message = b"".join(chunks).decode()
    if status != 0 and not message:
        message = f"the child exited with status {status}"
    results[module] = message or None
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def import_errors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str | None]:
    work = tmp_path_factory.mktemp("imports")
    config = work / "notifier.yaml"
    # workers.celery_app builds its app from the config at import time; a URL nobody listens on
    # (nothing connects while importing)
    config.write_text("redis: {url: 'redis://127.0.0.1:9/0'}\n")
    env = {**os.environ, "NOTIFIER_CONFIG": str(config), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", _DRIVER, json.dumps(MODULES)], capture_output=True, text=True,
                         cwd=work, env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def test_the_walk_finds_the_modules_that_once_failed() -> None:
    assert {"notifier.config", "notifier.channels.registry", "notifier.channels.statuspage",
            "workers.tasks"} <= set(MODULES)
    assert all(Path(ROOT, *m.split(".")).with_suffix(".py").exists() or Path(ROOT, *m.split("."), "__init__.py")
               .exists() for m in MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_first_in_a_fresh_interpreter(module: str, import_errors: dict[str, str | None]) -> None:
    assert module in import_errors, f"{module} was not tried"
    error = import_errors[module]
    assert error is None, f"import {module} fails in a fresh interpreter: {error}"


def test_the_config_models_are_a_leaf_below_the_channels() -> None:
    # the settings models import neither the channel registry nor any channel (the loader sits above them)
    code = ("import sys, notifier.config, notifier.config.settings; "
            "print(sorted(m for m in sys.modules if m.startswith(('notifier.channels', 'notifier.store', "
            "'notifier.statuspage', 'notifier.config_loader'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_channel_package_imports_no_channel_module() -> None:
    code = ("import sys, notifier.channels; print(sorted(m for m in sys.modules "
            "if m.startswith('notifier.channels.') and m != 'notifier.channels.base'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]", out.stdout
