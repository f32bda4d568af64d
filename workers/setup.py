"""The Celery application, configured for at-least-once delivery (the ledger turns it into exactly-once).

- acks_late + reject_on_worker_lost: a message is acknowledged only after its task returned, so a
  killed worker's notice is redelivered (and the ledger stops it from being posted twice);
- prefetch 1: a worker holds no more than it works on;
- JSON only;
- visibility_timeout > backoff_max + task_time_limit (enforced by config check and a test), so Redis
  does not redeliver a task that is merely waiting for its retry countdown;
- broker reconnection never gives up;
- one queue per channel (``notify.<channel>``): a slow or failing channel never delays another;
- kombu's Redis channel is patched so a Redis restart cannot kill the worker (``workers/kombu_compat.py``).

This module only builds apps; ``workers/celery_app.py`` holds the one the worker runs, so importing
these helpers never needs a configured Redis.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from celery import Celery
from kombu import Queue

from notifier.config import Settings
from notifier.store.redis_store import redis_url_of, sentinel_node_kwargs
from workers import kombu_compat

PERIODIC_QUEUE = "notifier.periodic"
ENGINE_QUEUE = "notifier.engine"
# One task per update carrying all its notices (workers/dispatch.py deliver_many). Not a ``notify.``
# name, so it can never be a channel's queue; every worker that consumes a channel queue consumes it
# too (``with_fanout``), and forwards a notice of a channel it does not consume to that queue.
FANOUT_QUEUE = "notifier.fanout"


def queue_for(channel: str) -> str:
    return f"notify.{channel}"


def probe_queue(location: str) -> str:
    """Each location's probes have their own queue, consumed only by a worker of that location."""
    return f"notifier.probes.{location}"


def all_queues(settings: Settings) -> list[str]:
    """The queues a plain ``notifier worker`` consumes. Not the probes queue: probes run in a worker of
    their own (``notifier run`` starts one; elsewhere ``notifier worker --queues notifier.probes.<location>``)
    so a slow probe never holds a process a delivery is waiting for."""
    channels = [queue_for(name) for name, c in settings.channels.items() if c.enabled]
    return channels + ([FANOUT_QUEUE] if channels else []) + [ENGINE_QUEUE, PERIODIC_QUEUE]


def with_fanout(queues: list[str]) -> list[str]:
    """A worker that consumes any channel queue also consumes the fan-out queue: the update tasks there
    carry that channel's notices (a worker started with ``-Q notify.x`` by hand, or by an older
    ``notifier worker``, gets it too: ``workers/tasks.py`` adds it when the worker starts)."""
    if FANOUT_QUEUE in queues or not any(q.startswith("notify.") for q in queues):
        return queues
    return [*queues, FANOUT_QUEUE]


def probe_schedule(settings: Settings) -> dict[str, dict[str, object]]:
    """One beat entry per location: a tick that runs that location's due probes (none without probes)."""
    if not settings.probes.checks:
        return {}
    tick = settings.probes.tick_seconds
    return {
        f"probes-tick-{loc}": {
            "task": "notifier.probes.tick",
            "schedule": tick,
            "args": [loc],
            # a tick no worker took in time is dropped: the next one runs whatever is due
            "options": {"queue": probe_queue(loc), "expires": max(2 * tick, 10.0)},
        }
        for loc in settings.probes.locations
    }


# kombu's Redis transport options (kombu.transport.redis): a broker that stops answering (its host died:
# no RST, nothing but silence) is given up on after 5 s instead of the kernel's minutes, and a pooled
# connection idle for 5 s is PINGed before use, so the first command after a failover does not go to a
# dead master. The reconnect rounds (kombu.Connection's interval_*, which workers/kombu_compat.py also
# applies to Celery's consumer) are 0.5, 1, 1.5, 1.5, ... s: a worker asks the Sentinels again well
# within 2 s of a new master being promoted, instead of Celery's 2, 4, 6 ... 30 s.
BROKER_TIMEOUTS: dict[str, float] = {
    "socket_timeout": 5.0, "socket_connect_timeout": 5.0, "health_check_interval": 5,
    "interval_start": 0.5, "interval_step": 0.5, "interval_max": 1.5,
}


def broker_of(settings: Settings, broker_url: str | None = None) -> tuple[str, dict[str, Any]]:
    """The broker URL and its transport options. With ``redis.sentinels``: kombu's Sentinel transport,
    ``sentinel://:<master password>@host:port/db;sentinel://...`` (one per Sentinel, tried in turn),
    ``master_name`` and ``sentinel_kwargs`` (Sentinel's own password) in the transport options; kombu
    asks the Sentinels again on reconnect, so a worker follows a failover without a restart.
    ``BROKER_TIMEOUTS`` apply to both."""
    conf = settings.redis
    # priority_steps [0]: one list per queue. kombu's default [0, 3, 6, 9] makes every consumer's BRPOP name
    # four keys per queue (built and parsed after every message, issue 14); nothing here publishes with a
    # priority, and a priority-0 message is on the queue's own list under either setting.
    options: dict[str, Any] = {"visibility_timeout": settings.delivery.visibility_timeout, "priority_steps": [0],
                               **BROKER_TIMEOUTS}
    if broker_url or not conf.sentinels:
        return broker_url or redis_url_of(settings), options
    auth = f":{quote(conf.password.get_secret_value(), safe='')}@" if conf.password is not None else ""
    url = ";".join(f"sentinel://{auth}{entry}/{conf.db}" for entry in conf.sentinels)
    options["master_name"] = conf.master_name
    # kombu's Sentinel transport hands these to redis-py's Sentinel: without the retry a dead first
    # Sentinel cost every new broker connection 0-14 s of backoff (see sentinel_retry)
    options["sentinel_kwargs"] = sentinel_node_kwargs(settings)
    return url, options


def make_celery(settings: Settings, broker_url: str | None = None) -> Celery:
    kombu_compat.install()  # before any broker connection exists; idempotent
    conf = settings.delivery
    # Republish well inside the page's staleness bound, so visitors only see the warning when we are down.
    heartbeat = settings.page.heartbeat()
    tick = float((settings.engine or {}).get("tick_seconds", 5.0))
    broker, transport_options = broker_of(settings, broker_url)
    app = Celery("notifier", broker=broker, include=["workers.tasks"])
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=conf.task_time_limit,
        # No soft limit. Nothing here catches SoftTimeLimitExceeded, and the soft limit's timer outlives
        # its task: after a blocking broker reconnect a stale timer SIGUSR1s an idle pool process
        # (celery#2952), the main process then reads a broken result frame and the worker exits with
        # broadcasts left pending (issue 10, issue 17). The hard limit still ends a hung send.
        task_soft_time_limit=None,
        broker_transport_options=transport_options,
        broker_connection_retry=True,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        task_default_queue=PERIODIC_QUEUE,
        task_queues=[Queue(q) for q in all_queues(settings)]
        + [Queue(probe_queue(loc)) for loc in settings.probes.locations],
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        beat_scheduler="workers.beat:LockedScheduler",
        beat_schedule={
            "sweep-ledger": {
                "task": "notifier.sweep",
                "schedule": conf.sweep_interval,
                # a sweep that waits longer is dropped (they do not pile up while no worker runs), but
                # never sooner than 10 s: with a sub-second interval on a loaded machine every sweep
                # expired before a worker took it, and nothing recovered a killed worker's notices
                "options": {"queue": PERIODIC_QUEUE, "expires": max(conf.sweep_interval * 2, 10.0)},
            },
            "engine-tick": {  # the engine's timers: confirm/resolve delays, maintenance, auto-publish
                "task": "notifier.engine.tick",
                "schedule": tick,
                "options": {"queue": ENGINE_QUEUE, "expires": 2 * tick},
            },
            "statuspage-heartbeat": {
                "task": "notifier.statuspage.heartbeat",
                "schedule": heartbeat,
                "options": {"queue": PERIODIC_QUEUE, "expires": heartbeat},
            },
        } | probe_schedule(settings),
    )
    app.conf.notifier_settings = settings
    return app
