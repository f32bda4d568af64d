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
