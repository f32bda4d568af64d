"""workers/kombu_compat.py: a kombu Redis channel whose transport was detached raises a connection error
the transport declares (recoverable for Celery), not AttributeError; the guard installs once."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from kombu.transport import redis as kombu_redis

from workers import kombu_compat


def test_detached_transport_is_a_connection_error_not_attribute_error() -> None:
    assert kombu_compat.install() and kombu_compat.install()  # idempotent
    channel = object.__new__(kombu_redis.Channel)
    channel.connection = SimpleNamespace(client=None)  # what Connection._do_close_transport leaves behind
    with pytest.raises(kombu_redis.Transport.connection_errors) as caught:
        kombu_redis.Channel._connparams(channel)
    assert not isinstance(caught.value, AttributeError)
    assert "outlived its connection" in str(caught.value)


def _channel(pool: object) -> object:
    import redis

    channel = object.__new__(kombu_redis.Channel)
    channel.connection = SimpleNamespace(client=object())  # an attached transport
    channel._pool = pool
    channel.Client = redis.Redis
    return channel


def test_one_redis_client_per_channel_and_pool_not_one_per_ack() -> None:
    import redis

    kombu_compat.install()
    first_pool = redis.ConnectionPool(host="unused.invalid")  # nothing connects: a client is only built
    channel = _channel(first_pool)
    with channel.conn_or_acquire() as a, channel.conn_or_acquire() as b:
        assert a is b and a.connection_pool is first_pool
    channel._pool = redis.ConnectionPool(host="unused.invalid")  # kombu replaced the pool
    with channel.conn_or_acquire() as c:
        assert c is not a and c.connection_pool is channel._pool
    given = object()
    with channel.conn_or_acquire(given) as d:
        assert d is given


def test_a_detached_channel_still_raises_the_connection_error_despite_a_cached_client() -> None:
    import redis

    kombu_compat.install()
    channel = _channel(redis.ConnectionPool(host="unused.invalid"))
    with channel.conn_or_acquire():
        pass  # cached now
    channel._pool = None  # kombu's close drops the pool ...
    channel.connection = SimpleNamespace(client=None)  # ... and Connection.collect detaches the transport
    with pytest.raises(kombu_redis.Transport.connection_errors), channel.conn_or_acquire():
        pass


def test_celerys_consumer_reconnects_at_the_transport_options_pace() -> None:
    """Consumer.ensure_connected passes (errback, max_retries) only; the rounds come from the options."""
    import socket

    from kombu import Connection
    from kombu.exceptions import OperationalError

    from workers.setup import BROKER_TIMEOUTS

    kombu_compat.install()
    with socket.socket() as s:  # a port nothing listens on: every connect is refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    slept: list[float] = []
    conn = Connection(f"redis://127.0.0.1:{port}/0", transport_options=dict(BROKER_TIMEOUTS))
    with pytest.raises(conn.connection_errors + (OperationalError,)):
        conn.ensure_connection(lambda _exc, interval: slept.append(interval), 3)
    assert slept[:3] == [0.5, 1.0, 1.5], slept  # kombu's own default: 2, 4, 6
    explicit: list[float] = []
    with pytest.raises(conn.connection_errors + (OperationalError,)):
        conn.ensure_connection(lambda _exc, interval: explicit.append(interval), 1, 0.25)
    assert explicit[:1] == [0.25], explicit  # an argument the caller gave wins
    conn.release()


def test_a_reconnect_does_not_track_a_pool_process_that_already_exited() -> None:
    """celery's AsynPool re-tracks every process of its pool after a broker reconnect; one that exited (its
    sentinel fd closed, ``_sentinel_poll = None``) made ``hub.add_reader(None)`` raise ValueError and the
    worker die. It is skipped; a live process is still tracked."""
    import os

    from celery.concurrency.asynpool import AsynPool

    assert kombu_compat.install()
    added: list[object] = []
    hub = SimpleNamespace(add_reader=lambda fd, *a, **k: added.append(fd))
    pool = SimpleNamespace(_event_process_exit=lambda *a: None)
    exited = SimpleNamespace(_sentinel_poll=None)
    AsynPool._track_child_process(pool, exited, hub)  # type: ignore[arg-type]
    assert added == [], "an exited process is not tracked again"
    read, write = os.pipe()
    try:
        live = SimpleNamespace(_popen=SimpleNamespace(sentinel=read))
        AsynPool._track_child_process(pool, live, hub)  # type: ignore[arg-type]
        assert added == [live._sentinel_poll] and live._sentinel_poll is not None
        os.close(live._sentinel_poll)
    finally:
        os.close(read)
        os.close(write)
