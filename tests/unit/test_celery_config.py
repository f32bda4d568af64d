"""The at-least-once settings, read back from the real Celery app object."""

from __future__ import annotations

from notifier.config_loader import parse_settings
from workers.setup import all_queues, make_celery


def test_visibility_timeout_exceeds_longest_countdown_plus_time_limit() -> None:
    settings = parse_settings("redis: {url: 'redis://127.0.0.1:1/0'}\nchannels: {o: {type: outbox}}\n", "t", {})
    app = make_celery(settings)
    conf = app.conf
    visibility = conf.broker_transport_options["visibility_timeout"]
    assert visibility > settings.delivery.backoff_max + conf.task_time_limit
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.accept_content == ["json"] and conf.task_serializer == "json"
    assert conf.broker_connection_max_retries is None  # never give up reconnecting
    assert settings.delivery.lease_seconds > conf.task_time_limit  # a live send is never presumed dead
    assert all_queues(settings)[0] == "notify.o"


def test_config_rejects_a_visibility_timeout_that_would_redeliver_waiting_tasks() -> None:
    import pytest

    from notifier.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        parse_settings("delivery: {visibility_timeout: 100, backoff_max: 600}\n", "t", {})
    assert any(p.path == "delivery.visibility_timeout" for p in info.value.problems)


def test_a_worker_of_any_channel_queue_consumes_the_fanout_queue_too() -> None:
    from workers.setup import FANOUT_QUEUE, with_fanout

    assert with_fanout(["notify.x"]) == ["notify.x", FANOUT_QUEUE]
    assert with_fanout(["notify.x", FANOUT_QUEUE]) == ["notify.x", FANOUT_QUEUE]
    assert with_fanout(["notifier.probes.local"]) == ["notifier.probes.local"], "a probes worker sends nothing"
    assert with_fanout(["notifier.engine", "notifier.periodic"]) == ["notifier.engine", "notifier.periodic"]
