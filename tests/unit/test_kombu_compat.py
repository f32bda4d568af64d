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
