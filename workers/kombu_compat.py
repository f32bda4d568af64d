"""Work-arounds for kombu/Celery bugs that no released version fixes yet. Installed by ``make_celery``,
so every process that builds a Celery app (worker, beat, API, CLI) runs with them.

Redis restart kills the worker (celery 5.7.0 + kombu 5.7.0, the newest on PyPI; reproduced and pinned
down by ``tests/integration/test_worker_survives_redis_restarts.py``). When Redis dies while the
worker holds an unacknowledged message, the worker exits with ``Unrecoverable error:
AttributeError("'NoneType' object has no attribute 'hostname'")`` from
``kombu/transport/redis.py Channel._connparams``. The path:

1. ``celery/worker/consumer/consumer.py Consumer.on_connection_error_after_connected`` calls
   ``connection.collect()``. That closes the default channel, but ``kombu.transport.redis
   Channel.close`` first reads the pending BRPOP reply (``if self._in_poll: self._brpop_read()``,
   kombu#1733), which raises ``ConnectionError`` because Redis is gone: the channel is left *not*
   closed (``maybe_close_channel`` swallows the error). ``collect`` then detaches the transport
   (``Connection._do_close_transport`` sets ``transport.client = None``).
2. New in celery 5.7 (celery 5.6.3 stopped after ``collect``): the same method then calls
   ``connection.close()``, which closes the default channel a second time. Now it gets as far as
   ``virtual.Channel.close -> QoS.restore_unacked_once -> restore_unacked -> conn_or_acquire ->
   Channel.pool -> _get_pool -> _connparams``, which reads ``self.connection.client.hostname`` off the
   detached transport: ``AttributeError``. ``ignore_errors`` only swallows the transport's
   connection errors, so the AttributeError escapes ``Consumer.start`` and the worker shuts down.
   The same happens to every later ack of a message received on that channel (``QoS.ack ->
   pipe_or_acquire -> ... -> _connparams``), e.g. a task that finishes after the reconnect.

A channel whose transport was detached has lost its broker: that is a connection error, and every
caller on those paths already treats one as recoverable (``maybe_close_channel`` and
``ignore_errors`` ignore it, ``Message.ack_log_error`` logs it, the consumer reconnects on it). So the
override below raises ``redis.exceptions.ConnectionError`` there instead of dereferencing ``None``;
everything else is kombu's own ``_connparams``. What kombu could not restore or ack on the dead
channel stays in Redis's unacked index and comes back after ``visibility_timeout`` (or the ledger
sweeper enqueues the notice sooner); the ledger keeps a redelivered notice from being posted twice.

Remove this module once a kombu/celery release no longer reaches ``_connparams`` on a detached
transport (the regression test above fails without this work-around; run it after upgrading).

Also here: Celery's consumer reconnects at kombu's fixed pace, not the broker's (``_install_reconnect_rounds``),
and a broker reconnect after a pool process died killed the worker (``_install_exited_child_guard``).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

_MARK = "_notifier_detached_transport_guard"


def install() -> bool:
    """Install the guard on kombu's Redis channel (idempotent). False when kombu's code has changed shape
    so that the guard no longer applies (nothing is patched then)."""
    try:
        from kombu.transport import redis as kombu_redis
        from redis.exceptions import ConnectionError as RedisConnectionError
    except ImportError:  # no redis transport: nothing to work around
        return False
    _install_reconnect_rounds()
    _install_exited_child_guard()
    channel = kombu_redis.Channel
    original = channel.__dict__.get("_connparams")
    if original is None:
        return False
    if getattr(original, _MARK, False):
        return True

    @functools.wraps(original)
    def _connparams(self: Any, *args: Any, **kwargs: Any) -> Any:
        transport = getattr(self, "connection", None)
        if transport is None or getattr(transport, "client", None) is None:
            raise RedisConnectionError(
                "kombu redis channel outlived its connection (transport detached by Connection.collect/close); "
                "treating it as a lost broker connection"
            )
        return original(self, *args, **kwargs)

    setattr(_connparams, _MARK, True)
    setattr(channel, "_connparams", _connparams)  # noqa: B010 - mypy forbids assigning to a method
    _install_client_reuse(channel)
    return True


def _install_client_reuse(channel: Any) -> None:
    """kombu's ``Channel.conn_or_acquire()`` builds a new ``redis.Redis`` object on every call (every ack,
    every publish's pipeline): constructing one copies its response-callback tables, a measurable share
    of the worker main process's CPU per task (issue 14). A Redis client over a connection pool is
    thread-safe and holds no connection of its own, so one per channel and pool does the same work.

    Same behaviour otherwise: a new pool (kombu replaced it) gets a new client, and a channel whose
    transport was detached goes through kombu's own path, where the guard above raises the connection
    error Celery recovers from (a cached client must not paper over a lost broker)."""
    original = channel.__dict__.get("conn_or_acquire")
    if original is None or getattr(original, _MARK, False):
        return

    @contextlib.contextmanager
    def conn_or_acquire(self: Any, client: Any = None) -> Iterator[Any]:
        if client:
            yield client
            return
        transport = getattr(self, "connection", None)
        if transport is None or getattr(transport, "client", None) is None or _follows_sentinel(self):
            yield self._create_client()  # kombu's path: _connparams raises for a detached transport
            return
        cached = self.__dict__.get("_notifier_client")
        pool = self.__dict__.get("_pool")
        if cached is None or pool is None or cached.connection_pool is not pool:
            cached = self._create_client()  # sets self._pool when there was none
            self._notifier_client = cached
        yield cached

    setattr(conn_or_acquire, _MARK, True)
    setattr(channel, "conn_or_acquire", conn_or_acquire)  # noqa: B010


def _follows_sentinel(channel: Any) -> bool:
    """A Sentinel channel keeps kombu's own client per call: after a failover kombu asks the Sentinels for
    the new master when it builds a client, and a cached one kept talking to the old address (the Sentinel
    failover test found no delivery through the new master with the cache on)."""
    return type(channel).__name__ == "SentinelChannel"


_ROUNDS = ("interval_start", "interval_step", "interval_max")  # ensure_connection's 3rd..5th arguments


def _install_reconnect_rounds() -> None:
    """Celery's consumer (``Consumer.ensure_connected``) calls ``Connection.ensure_connection(errback,
    max_retries, callback=...)`` with kombu's default pace: sleep 2, 4, 6 ... 30 s between rounds. kombu
    itself takes ``interval_start/step/max`` from the transport options only when publishing
    (``Connection.default_channel``). After a Sentinel failover (the new master ~2 s after the kill) a
    worker then waited 2 + 4 s or more before asking again. This fills the interval arguments a caller
    left out from the connection's transport options (``workers.setup.BROKER_TIMEOUTS``), so the
    consumer reconnects at the same pace as the producers; explicit arguments win."""
    from kombu import Connection

    original = Connection.__dict__.get("ensure_connection")
    if original is None or getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def ensure_connection(self: Any, *args: Any, **kwargs: Any) -> Any:
        options = getattr(self, "transport_options", None) or {}
        for position, key in enumerate(_ROUNDS, start=2):
            if key in options and len(args) <= position:
                kwargs.setdefault(key, options[key])
        return original(self, *args, **kwargs)

    setattr(ensure_connection, _MARK, True)
    setattr(Connection, "ensure_connection", ensure_connection)  # noqa: B010


def _install_exited_child_guard() -> None:
    """celery 5.7 ``AsynPool._track_child_process`` on a pool process that has exited: the worker dies with
    ``Unrecoverable error: ValueError('file descriptor is None')``. When a process exits,
    ``_untrack_child_process`` closes its sentinel fd and sets ``proc._sentinel_poll = None``; if the
    consumer then reconnects to the broker before ``maintain_pool`` has dropped that process from
    ``pool._pool``, ``register_with_event_loop`` tracks every process in it again, and ``hub.add_reader(None)``
    raises ValueError, which ``iterate_file_descriptors_safely`` does not catch (OSError and AttributeError
    only). Seen in issue 17's partitioned-master test: both pool processes killed at the 10 s hard limit while
    their Redis commands waited on the silent master, then the reconnect to the new master. An exited,
    untracked process has nothing to watch; billiard's ``maintain_pool`` replaces it, so it is skipped."""
    try:
        from celery.concurrency.asynpool import AsynPool
    except ImportError:  # pragma: no cover - no prefork pool
        return
    original = AsynPool.__dict__.get("_track_child_process")
    if original is None or getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def _track_child_process(self: Any, proc: Any, hub: Any) -> Any:
        if "_sentinel_poll" in vars(proc) and proc._sentinel_poll is None:
            return None  # exited and untracked: maintain_pool replaces it
        return original(self, proc, hub)

    setattr(_track_child_process, _MARK, True)
    setattr(AsynPool, "_track_child_process", _track_child_process)  # noqa: B010
