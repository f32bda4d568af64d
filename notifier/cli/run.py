"""The process supervisor and its commands: `notifier worker`, `notifier beat` and `notifier run`
(everything at once).

`run` is what `make run` calls: it starts a private Redis with AOF under ./var when no redis.url is
configured, then the worker, beat, the API and the status page preview as child processes, waits for
the worker to report in, optionally sends a demo broadcast, and says what to try first. Ctrl-C stops
everything, Redis last.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from notifier.cli.common import add_command, app_for, settings_for
from notifier.config import Settings, mask_url


def _env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    if settings.source_path != "<embedded defaults>":
        env["NOTIFIER_CONFIG"] = settings.source_path
    return env


def worker_argv(settings: Settings, queues: str | None, concurrency: int, loglevel: str,
                pool: str = "prefork") -> list[str]:
    from workers.setup import all_queues

    return [
        sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "-P", pool,
        "-Q", queues or ",".join(all_queues(settings)), "-c", str(concurrency), "--loglevel", loglevel,
        "--without-gossip", "--without-mingle", "-n", f"notifier-{os.getpid()}@%h",
    ]


def beat_argv(loglevel: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "workers.celery_app", "beat", "--loglevel", loglevel,
            "--schedule", str(Path("var/celerybeat-schedule").resolve())]


DEFAULT_POOL = "threads"
DEFAULT_CONCURRENCY = {"threads": 32, "prefork": 4}


def pool_for(settings: Settings, queues: str | None, pool: str | None) -> str:
    """The pool a worker runs: ``--pool`` when given; else prefork for a worker of probe queues only
    (a probe tick can run CPU-bound checks for minutes and relies on Celery's hard time limit, which
    only a process pool enforces), else threads.

    Threads for delivery: a send is a wait on the network, so 32 threads in one process (about 90 MB)
    do what took 32 processes (about 85 MB each). What the lease needs is kept without Celery's hard
    time limit, which cannot stop a thread: every HTTP request a channel makes has a hard total
    deadline inside the claim's lease (``notifier/channels/deadline.py``), and the ledger fences a late
    claimant's writes."""
    if pool:
        return pool
    from workers.setup import probe_queue

    probe_queues = {probe_queue(loc) for loc in settings.probes.locations}
    if queues and all(q.strip() in probe_queues for q in queues.split(",") if q.strip()):
        return "prefork"
    return DEFAULT_POOL


def exec_worker(settings: Settings, queues: str | None, concurrency: int, loglevel: str, pool: str) -> int:
    argv = worker_argv(settings, queues, concurrency, loglevel, pool)
    os.execve(argv[0], argv, _env(settings))  # noqa: S606 - replace this process (signals go to celery)
    return 0  # pragma: no cover


def exec_beat(settings: Settings, loglevel: str) -> int:
    Path("var").mkdir(exist_ok=True)
    argv = beat_argv(loglevel)
    os.execve(argv[0], argv, _env(settings))  # noqa: S606
    return 0  # pragma: no cover


def _optional(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


DEMO_SECTIONS = """
# --- added by `notifier run` for the demo: webhook sources and a staff sign-in, all on one random
# token that exists only in this run's environment (NOTIFIER_DEMO_TOKEN) and in var/demo-token.
sources:
  alertmanager: {auth: bearer, token: "${NOTIFIER_DEMO_TOKEN}"}
  generic: {auth: bearer, token: "${NOTIFIER_DEMO_TOKEN}"}
staff:
  tokens: [{name: demo, token: "${NOTIFIER_DEMO_TOKEN}", role: publisher}]
engine:
  routing: {component_label: service}     # Alertmanager's service="imap" -> component imap
  confirm: {seconds: 20, component_status_seconds: 5}
probes:                                   # outside-in: the status page preview, fetched as a visitor would
  checks:
    - {name: status-page, component: webmail, type: http, target: "http://127.0.0.1:8081/",
       interval: 30, timeout: 5, retries: 1, slow_ms: 2000}
"""


DEMO_MAILDIR = "var/mail"


def demo_settings(settings: Settings) -> tuple[Settings, str | None]:
    """On the embedded defaults, a derived config with demo sources and a fresh random token."""
    if settings.source_path != "<embedded defaults>":
        return settings, None
    import secrets

    import yaml

    from notifier.config_loader import DEFAULTS_FILE, load_settings

    token = os.environ.get("NOTIFIER_DEMO_TOKEN") or secrets.token_urlsafe(18)
    os.environ["NOTIFIER_DEMO_TOKEN"] = token  # inherited by the children only
    fd = os.open("var/demo-token", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # also when the file already existed with looser permissions
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    # e-mail subscribers through the embedded relay (the defaults name it: a local SMTP sink writing
    # var/mail/); their links are signed with a secret of this run's environment only
    os.environ.setdefault("NOTIFIER_DEMO_MAIL_SECRET", secrets.token_urlsafe(24))
    merged = yaml.safe_load(DEFAULTS_FILE.read_text())
    merged["subscribers"]["secret"] = "${NOTIFIER_DEMO_MAIL_SECRET}"  # noqa: S105 - a reference, not a value
    merged["page"]["probe_results"] = True  # the demo probe's response times and runs on the preview page
    path = Path("var/demo.yaml").resolve()
    path.write_text("# made by `notifier run` from the embedded defaults\n" + yaml.safe_dump(merged, sort_keys=False)
                    + DEMO_SECTIONS)
    return load_settings(path), token


class RestartPolicy:
    """When to restart a child that exited: at once the first time, then with exponential backoff and
    jitter while it keeps dying soon after each start, up to ``cap`` seconds between tries. It never
    gives up: the notifier is the one service that must come back by itself (a Redis restart can make
    a worker exit several times in a row), and a person learns of a crash loop from the log line.
    A child that ran ``healthy_after`` seconds counts as recovered and starts the count afresh."""

    def __init__(self, base: float = 1.0, cap: float = 60.0, healthy_after: float = 60.0,
                 rand: Callable[[], float] = random.random) -> None:
        self.base, self.cap, self.healthy_after, self._rand = base, cap, healthy_after, rand
        self._failures: dict[str, int] = {}

    def delay(self, name: str, started_at: float, exited_at: float) -> float:
        """Seconds to wait before starting ``name`` again, after it ran from started_at to exited_at."""
        if exited_at - started_at >= self.healthy_after:
            self._failures[name] = 0
        n = self._failures.get(name, 0)
        self._failures[name] = n + 1
        if n == 0:
            return 0.0
        ceiling = min(self.cap, self.base * 2 ** (n - 1))
        return ceiling / 2 + self._rand() * ceiling / 2  # "equal jitter": never 0, never above the cap

    def failures(self, name: str) -> int:
        return self._failures.get(name, 0)


def run_all(settings: Settings, args: argparse.Namespace) -> int:
    from notifier.store import local_redis

    Path("var").mkdir(exist_ok=True)
    os.chmod("var", 0o700)  # incidents, sessions, logs and the demo token: for this user only
    settings, demo_token = demo_settings(settings)
    redis_server = None
    if settings.redis.private:
        redis_server = local_redis.ensure_private(settings)
        url = mask_url(local_redis.private_url(settings))
        print(f"redis     private, AOF in {local_redis.private_dir(settings)}/ ({url}, password in its password file)")
    env = _env(settings)
    cli = [sys.executable, "-m", "notifier"] + (["--config", settings.source_path]
                                               if settings.source_path != "<embedded defaults>" else [])
    procs: dict[str, subprocess.Popen[bytes]] = {}
    argvs: dict[str, list[str]] = {}
    started: dict[str, float] = {}
    due: dict[str, float] = {}  # name -> monotonic time of its next start
    policy = RestartPolicy()
    logs = Path("var/log")
    logs.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(logs, 0o700)

    def spawn(name: str, argv: list[str]) -> None:
        fd = os.open(logs / f"{name}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(fd, 0o600)  # also a log made by an older run
        out = os.fdopen(fd, "ab")
        procs[name] = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
        argvs[name] = argv
        started[name] = time.monotonic()
        print(f"{name:<9} started (pid {procs[name].pid}), log: var/log/{name}.log")

    if demo_token is not None:  # the embedded relay: every mail to subscribers lands in var/mail/new/
        relay = settings.subscribers.relay
        spawn("mailsink", [*cli, "subscribers", "sink", "--dir", DEMO_MAILDIR, "--host", relay.host,
                           "--port", str(relay.port)])
    worker = [*cli, "worker"] + (["--pool", args.pool] if args.pool else [])
    spawn("worker", worker + (["--concurrency", str(args.concurrency)] if args.concurrency else []))
    if settings.probes.checks:  # a worker of their own: a slow probe never holds a delivery's process
        from workers.setup import probe_queue

        spawn("probes", [*cli, "worker", "--queues", probe_queue(settings.probes.location), "--pool", "prefork",
                         "--concurrency", "1"])
    spawn("beat", [*cli, "beat"])
    spawn("api", [*cli, "api", "--host", settings.api.host, "--port", str(settings.api.port)])
    port = urlsplit(settings.page.url).port or 8081
    spawn("page", [*cli, "statuspage", "serve", "--port", str(port)])

    app = app_for(args, settings)
    print("waiting for the worker", end="", flush=True)
    deadline = time.monotonic() + 60
    while not app.require_redis().keys(app.key("worker", "heartbeat", "*")):
        if time.monotonic() > deadline or procs["worker"].poll() is not None:
            print("\nerror: the worker did not start; see var/log/worker.log", file=sys.stderr)
            _stop(procs, redis_server)
            return 1
        print(".", end="", flush=True)
        time.sleep(0.5)
    print(" ready")
    if args.demo:
        _demo(app)
    _hints(settings, demo_token)
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        while not stopping:
            now = time.monotonic()
            for name, proc in list(procs.items()):
                if name in due:
                    if now >= due[name]:
                        del due[name]
                        spawn(name, argvs[name])
                    continue
                if proc.poll() is None:
                    continue
                wait = policy.delay(name, started[name], now)
                due[name] = now + wait
                tries = policy.failures(name)
                advice = f"; it keeps exiting, see var/log/{name}.log" if tries >= 3 else ""
                print(f"{name:<9} exited with code {proc.returncode}; restarting in {wait:.1f} s "
                      f"(exit {tries} in a row{advice})", flush=True)
            time.sleep(0.5)
    finally:
        print("\nstopping…")
        _stop(procs, redis_server)
    return 0


def _demo(app: object) -> None:
    from notifier.app import App
    from notifier.services import incidents

    assert isinstance(app, App)
    incident = incidents.broadcast(
        app, body={"en": "Hello from outage notifier: this demo notice went through the worker and the ledger.",
                   "de": "Hallo von outage notifier: diese Demo-Meldung lief durch Worker und Ledger."},
        author="make run",
    )
    update = incident.updates[0]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rows = app.store.ledger.rows(update_id=update.id)
        if rows and all(r.state.value == "posted" for r in rows):
            for r in rows:
                print(f"demo      {r.notice_id} posted on {r.channel}: {r.url}")
            return
        time.sleep(0.2)
    print("demo      not delivered within 30 s; run `notifier deliveries` to see why")


def _hints(settings: Settings, token: str | None) -> None:
    outbox = next((c for c in settings.channels.values() if c.type == "outbox"), None)
    print("\nWhat to try first (in another terminal, with .venv/bin on your PATH):")
    if outbox is not None:
        print(f"  tail -f {getattr(outbox, 'path', 'var/outbox.jsonl')}            # what the channels publish")
    print('  notifier incident open --name "IMAP login failures" --component imap -m "We are investigating."')
    print("  notifier deliveries                      # the ledger: one row per update and channel")
    if settings.probes.checks:
        print(f"  notifier probe list                      # the probes' last results "
              f"({', '.join(p.name for p in settings.probes.checks)})")
    api = f"http://{settings.api.host}:{settings.api.port}"
    print(f"  curl {api}/readyz                 # API docs: {api}/docs")
    if token:
        sample = Path(__file__).resolve().parents[2] / "tests/data/alertmanager/firing-imap-two-instances.json"
        print("  # an Alertmanager alert: after the 20 s confirm delay it becomes an incident on every channel")
        print(f"  curl -H \"Authorization: Bearer $(cat var/demo-token)\" -H 'Content-Type: application/json' "
              f"--data @{sample} {api}/webhooks/alertmanager")
        if _optional("notifier.console"):
            print(f"  {api}/console/   # the staff console: sign in with the token in var/demo-token")
    print(f"  {settings.page.url}   # the status page preview")
    if token and settings.page.subscribe_url:
        maildir = Path(DEMO_MAILDIR).resolve()
        print(f"  # subscribe on the preview page; its mails (the confirmation first) arrive in {maildir}/new/")
        print("  notifier subscribers count                # confirmed subscribers per component")
    print("Ctrl-C stops everything.")


def _stop(procs: dict[str, subprocess.Popen[bytes]], redis_server: object) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.terminate()
    for proc in procs.values():
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
    if redis_server is not None:
        redis_server.stop()  # type: ignore[attr-defined]


# ---- the commands ---------------------------------------------------------------------------------
def cmd_worker(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    pool = pool_for(settings, args.queues, args.pool)
    return exec_worker(settings, args.queues, args.concurrency or DEFAULT_CONCURRENCY[pool], args.loglevel, pool)


def cmd_beat(args: argparse.Namespace) -> int:
    return exec_beat(settings_for(args), args.loglevel)


def cmd_run(args: argparse.Namespace) -> int:
    return run_all(settings_for(args), args)


def register(subparsers: Any) -> None:
    wk = add_command(subparsers, "worker", cmd_worker, "run a Celery worker (all queues unless --queues)")
    wk.add_argument("--queues", help="comma-separated, e.g. notify.x,notify.facebook")
    wk.add_argument("--pool", choices=sorted(DEFAULT_CONCURRENCY),
                    help="threads (default; a probes-only worker: prefork) or prefork (a process per slot)")
    wk.add_argument("--concurrency", type=int, default=None,
                    help="sends at once: threads (default 32) or processes (prefork, default 4)")
    wk.add_argument("--loglevel", default="INFO")
    bt = add_command(subparsers, "beat", cmd_beat, "run celery beat (periodic sweeps; safe to run two)")
    bt.add_argument("--loglevel", default="INFO")
    rn = add_command(subparsers, "run", cmd_run,
                     "run the whole service: Redis (if none configured), worker, beat, API, page")
    rn.add_argument("--demo", action="store_true", help="send a demo broadcast once everything is up")
    rn.add_argument("--pool", choices=sorted(DEFAULT_CONCURRENCY), help="the delivery worker's pool (default threads)")
    rn.add_argument("--concurrency", type=int, default=None, help="the delivery worker's (default: 32 threads)")
