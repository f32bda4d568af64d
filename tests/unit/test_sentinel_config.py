"""Issue 17: the redis.sentinels settings, validated and turned into the broker's Sentinel transport."""

from __future__ import annotations

import pytest

from notifier.config_loader import parse_settings
from notifier.errors import ConfigError
from workers.setup import make_celery

SENTINEL = """\
redis:
  sentinels: ["10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26379"]
  master_name: notifier
  password: "${REDIS_PASSWORD}"
  sentinel_password: "${SENTINEL_PASSWORD}"
  min_replicas: 1
channels: {o: {type: outbox}}
"""
ENV = {"REDIS_PASSWORD": "data p@ss", "SENTINEL_PASSWORD": "sentinel-pass"}


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_settings(text, "t", env or {})
    return [str(p) for p in err.value.problems]


def test_the_broker_asks_every_sentinel_with_both_passwords() -> None:
    settings = parse_settings(SENTINEL, "t", ENV)
    conf = make_celery(settings).conf
    assert conf.broker_url.split(";") == [f"sentinel://:data%20p%40ss@10.0.0.{i}:26379/0" for i in (1, 2, 3)]
    options = conf.broker_transport_options
    assert options["master_name"] == "notifier"
    assert options["sentinel_kwargs"]["password"] == "sentinel-pass"
    assert options["visibility_timeout"] == settings.delivery.visibility_timeout
    assert settings.redis.min_replicas == 1
    shown = str(settings.redacted())
    assert "sentinel-pass" not in shown and "data p@ss" not in shown
    assert "${SENTINEL_PASSWORD}" in shown


def test_a_sentinel_url_is_refused_with_what_to_write_instead() -> None:
    found = problems("redis: {url: 'sentinel://10.0.0.1:26379/0'}\n")
    assert len(found) == 1 and found[0].startswith("redis.url") and "redis.sentinels" in found[0]


def test_every_sentinel_mistake_is_reported_with_its_key_path() -> None:
    text = ("redis:\n  sentinels: ['10.0.0.1', '10.0.0.2:99999']\n  sentinel_password: literal\n"
            "  min_replicas: -1\n")
    found = problems(text)
    assert any(p.startswith("redis.sentinels.0") and "host:port" in p for p in found), found
    assert any(p.startswith("redis.sentinels.1") for p in found), found
    assert any(p.startswith("redis.sentinel_password") and "${ENV_VAR}" in p for p in found), found
    assert any(p.startswith("redis.min_replicas") for p in found), found


def test_sentinels_need_a_master_name_and_no_url() -> None:
    found = problems("redis:\n  sentinels: ['10.0.0.1:26379']\n  url: redis://10.0.0.9:6379/0\n")
    assert any(p.startswith("redis.master_name") and "sentinel monitor" in p for p in found), found
    assert any(p.startswith("redis.url") and "leave it out" in p for p in found), found
    assert any(p.startswith("redis.sentinels") for p in problems("redis: {master_name: notifier}\n"))


def test_the_broker_gives_up_on_a_silent_master_in_seconds_and_reconnects_quickly() -> None:
    for text in (SENTINEL, "redis: {url: 'redis://10.0.0.1:6379/0'}\nchannels: {o: {type: outbox}}\n"):
        options = make_celery(parse_settings(text, "t", ENV)).conf.broker_transport_options
        assert options["socket_timeout"] == options["health_check_interval"] == 5
        assert options["socket_connect_timeout"] == 5
        rounds = [options["interval_start"] + i * options["interval_step"] for i in range(4)]
        assert [min(r, options["interval_max"]) for r in rounds] == [0.5, 1.0, 1.5, 1.5]
