"""The composition root: fakes go in through ``build()``, not by patching module globals."""

from __future__ import annotations

import redis

from notifier.bootstrap import build
from notifier.channels.base import Channel, Rendering
from notifier.channels.outbox import OutboxChannel
from notifier.clock import FakeClock
from notifier.config_loader import parse_settings
from notifier.domain.model import Notice, Receipt
from notifier.ports import NullDispatcher

CONFIG = """
components: [{id: imap, name: IMAP}]
channels:
  out: {type: outbox, path: /nonexistent/outbox.jsonl}
  off: {type: outbox, enabled: false}
"""


class RecordingChannel(Channel):
    type_name = "outbox"  # stands in for the registry's outbox type

    def render(self, notice: Notice) -> Rendering:
        return Rendering(parts=(notice.marker,), language="en")

    def send(self, notice: Notice, rendering: Rendering) -> Receipt:
        return Receipt(remote_id="r1")


def offline() -> redis.Redis:
    return redis.Redis(host="unused.invalid")  # never connected: build() makes no Redis call


def test_build_wires_the_given_clock_dispatcher_and_registry_channels() -> None:
    settings = parse_settings(CONFIG, "test", env={})
    clock, dispatcher = FakeClock(), NullDispatcher()
    app = build(settings, clock=clock, dispatcher=dispatcher, redis_client=offline())
    assert app.clock is clock and app.dispatcher is dispatcher and app.settings is settings
    assert list(app.channels) == ["out"]  # a disabled channel is not built
    assert type(app.channel("out")) is OutboxChannel


def test_channel_types_override_the_registry_for_this_app_only() -> None:
    settings = parse_settings(CONFIG, "test", env={})
    app = build(settings, channel_types={"outbox": RecordingChannel}, redis_client=offline())
    assert type(app.channel("out")) is RecordingChannel
    assert app.channel("out").name == "out" and app.channel("out").settings is settings.channels["out"]
    again = build(settings, redis_client=offline())
    assert type(again.channel("out")) is OutboxChannel  # the real registry was not touched


def test_ready_channels_replace_and_add_to_the_built_ones() -> None:
    settings = parse_settings(CONFIG, "test", env={})
    built = build(settings, redis_client=offline())
    fake = RecordingChannel("out", settings.channels["out"], built.channel("out").context)
    extra = RecordingChannel("extra", settings.channels["out"], built.channel("out").context)
    app = build(settings, channels={"out": fake, "extra": extra}, redis_client=offline())
    assert app.channels == {"out": fake, "extra": extra}


def test_without_a_dispatcher_nothing_is_enqueued_anywhere() -> None:
    app = build(parse_settings(CONFIG, "test", env={}), redis_client=offline())
    assert isinstance(app.dispatcher, NullDispatcher)


def test_build_on_the_memory_store_connects_no_redis_and_the_redis_adapters_say_so() -> None:
    from notifier.store.memory import MemoryStore

    settings = parse_settings(CONFIG, "test", env={})
    clock = FakeClock()
    store = MemoryStore(clock)
    app = build(settings, store=store, clock=clock)
    assert app.store is store and app.redis is None
    assert app.key("worker", "heartbeat") == settings.redis.key_prefix + "worker:heartbeat"
    try:
        app.require_redis()
    except RuntimeError as exc:
        assert "needs Redis" in str(exc)
    else:
        raise AssertionError("require_redis() returned on an App without Redis")
