"""Test support: real processes (redis-server, celery worker and beat) and a config writer."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
import yaml

ROOT = Path(__file__).resolve().parent.parent


def future_window(start_hour: int = 22, minutes: int = 90, days_ahead: int = 1) -> tuple[datetime, datetime]:
    """A maintenance window that lies ahead of the real clock (today's or the date-shifted one):
    ``days_ahead`` days from now at ``start_hour``:00 UTC, lasting ``minutes``. Never a date literal."""
    day = (datetime.now(UTC) + timedelta(days=days_ahead)).replace(hour=start_hour, minute=0, second=0, microsecond=0)
    return day, day + timedelta(minutes=minutes)


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05, what: str = "") -> Any:
    """Poll until ``predicate()`` is truthy; fail the test with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def advance(app: Any, seconds: float, step: float = 5, tick: Callable[[Any], Any] | None = None) -> None:
    """Move the App's FakeClock on in steps, with a beat tick of the engine (or ``tick``) after each."""
    from notifier.clock import FakeClock
    from notifier.services import engine_runner

    clock = app.clock
    assert isinstance(clock, FakeClock)
    left = seconds
    while left > 0:
        clock.advance(min(step, left))
        left -= step
        (tick or engine_runner.tick)(app)


def write_config(path: Path, redis_url: str, channels: dict[str, Any], **sections: Any) -> Path:
    """A config for tests: fast leases and sweeps so crash recovery happens in seconds."""
    delivery = {
        "lease_seconds": 4, "task_time_limit": 3, "http_timeout": 1, "backoff_base": 0.5, "backoff_max": 2,
        "sweep_interval": 0.5, "requeue_after": 2, "visibility_timeout": 3600,
    }
    delivery.update(sections.pop("delivery", {}))
    doc = {
        "page": {"name": "Test Mail", "url": "http://status.test/", "language": "en"},
        "redis": {"url": redis_url},
        "components": [{"id": "imap", "name": "IMAP", "group": "Mail"},
                       {"id": "smtp", "name": "SMTP", "group": "Mail"}],
        "channels": channels,
        "delivery": delivery,
        **sections,
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def env_for(config: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    env.update({"NOTIFIER_CONFIG": str(config), "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"})
    env.update(extra or {})
    return env


def stop_process(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM, ``grace`` seconds to exit, then SIGKILL: how a test or a benchmark ends a process it started."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(grace)


class Proc:
    """A celery worker or beat in its own process group, so a test can SIGKILL the whole group."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.node = ""
        self._out = log.open("ab")
        self.proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=self._out, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def kill(self) -> None:
        """SIGKILL to the whole process group: the main process and every pool child die at once."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._out.close()

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


def start_worker(config: Path, client: redis.Redis, log: Path, concurrency: int = 2,
                 extra_env: dict[str, str] | None = None, queues: str | None = None,
                 wait: bool = True, pool: str = "prefork") -> Proc:
    node = f"test-{time.monotonic_ns()}@{socket.gethostname()}"
    argv = [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "-c", str(concurrency), "-P", pool,
            "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
            "-n", node]
    if queues:
        argv += ["-Q", queues]
    else:
        argv += ["-Q", _all_queues(config)]
    for key in client.keys("*worker:heartbeat:*"):
        client.delete(key)
    proc = Proc(argv, env_for(config, extra_env), log)
    proc.node = node
    if wait:
        try:
            wait_for(lambda: client.keys("*worker:heartbeat:*") or proc.proc.poll() is not None,
                     timeout=60, what="the worker's heartbeat")
            assert proc.proc.poll() is None, "worker exited:\n" + proc.tail()
        except AssertionError:
            proc.kill()  # never leave a half-started worker behind a failed test
            raise AssertionError("worker did not start:\n" + proc.tail()) from None
    return proc


def _all_queues(config: Path) -> str:
    doc = yaml.safe_load(config.read_text())
    return ",".join([f"notify.{n}" for n in doc.get("channels", {})] + ["notifier.engine", "notifier.periodic"])


def start_beat(config: Path, log: Path, tmp: Path) -> Proc:
    argv = [sys.executable, "-m", "celery", "-A", "workers.celery_app", "beat", "--loglevel", "INFO",
            "--schedule", str(tmp / f"beat-{time.monotonic_ns()}")]
    return Proc(argv, env_for(config), log)
