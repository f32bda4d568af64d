"""Chaos for e-mail subscribers, counted at the SMTP server: one update to N confirmed subscribers
through a real worker (and beat, for the sweeper) whose process group is SIGKILLed while it sends.

Lean in ``make test`` (SUBSCRIBER_KILL_N=100, 2 kills); ``make chaos`` runs 1,000 subscribers and 5 kills.
What is asserted is what README "Subscribers" promises: every subscriber gets the update, always under
one Message-ID; a resumed send never starts over, so a subscriber gets a second copy only when a kill
fell between the relay's 250 and our record of it (the one message SMTP cannot be asked about), and
then that copy carries the same Message-ID. So: extra copies <= kills. The test prints how many there were.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from notifier.bootstrap import build
from notifier.config_loader import load_settings
from notifier.domain.model import DeliveryState
from notifier.domain.subscribers import Subscriber
from notifier.services import incidents
from notifier.store.local_redis import LocalRedis
from tests.fakes.smtp_sink import SmtpSink
from tests.support import Proc, start_beat, start_worker, wait_for, write_config
from workers.dispatch import CeleryDispatcher

pytestmark = pytest.mark.integration

SUBSCRIBERS = int(os.environ.get("SUBSCRIBER_KILL_N", "100"))
KILLS = int(os.environ.get("SUBSCRIBER_KILLS", "2"))
BOUND = float(os.environ.get("CHAOS_SETTLE_SECONDS", "150"))  # a stated bound, generous for a loaded box


@pytest.fixture
def world(tmp_path: Path, redis_server: LocalRedis, redis_client: redis.Redis,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    monkeypatch.setenv("SUB_SECRET", "chaos-secret-0123456789")
    with SmtpSink() as sink:
        config = write_config(
            tmp_path / "notifier.yaml", redis_server.url, {"mail": {"type": "email"}},
            page={"name": "Test Mail", "url": "http://status.test/", "language": "en",
                  "subscribe_url": "http://notifier.test/subscribe"},
            subscribers={"secret": "${SUB_SECRET}",
                         "relay": {"host": "127.0.0.1", "port": sink.port, "security": "none",
                                   "from_address": "status@example.net", "messages_per_connection": 50}},
        )
        settings = load_settings(config)
        app = build(settings, dispatcher=CeleryDispatcher(settings), redis_url=redis_server.url)
        procs: list[Proc] = []
        try:
            yield {"config": config, "app": app, "procs": procs, "tmp": tmp_path, "client": redis_client,
                   "sink": sink}
        finally:
            for proc in procs:
                proc.stop()


def test_worker_killed_while_subscribers_get_an_update(world) -> None:
    app, sink, tmp, client = world["app"], world["sink"], world["tmp"], world["client"]
    addresses = [f"s{i:05}@example.org" for i in range(SUBSCRIBERS)]
    for address in addresses:
        app.subscribers.save(Subscriber(address, "*", "en", 1.0, 2.0))
    rng = random.Random(os.environ.get("CHAOS_SEED"))
    kill_at = sorted(rng.sample(range(SUBSCRIBERS // 10, SUBSCRIBERS * 9 // 10), KILLS))
    world["procs"] += [start_worker(world["config"], client, tmp / "worker-0.log", concurrency=2),
                       start_beat(world["config"], tmp / "beat-0.log", tmp)]
    started = time.monotonic()
    update = incidents.open_incident(app, name="SMTP down", components={"smtp": "major_outage"},
                                     body="Outgoing mail is delayed.").updates[0]
    for i, k in enumerate(kill_at, 1):
        wait_for(lambda k=k: len(sink.messages) >= k, timeout=BOUND, interval=0.005,
                 what=f"{k} mails at the server before kill {i}")
        for proc in list(world["procs"]):
            proc.kill()
        world["procs"] += [start_worker(world["config"], client, tmp / f"worker-{i}.log", concurrency=2),
                           start_beat(world["config"], tmp / f"beat-{i}.log", tmp)]
    [row] = app.store.ledger.rows(update_id=update.id)
    wait_for(lambda: app.store.ledger.get(row.notice_id).state == DeliveryState.POSTED, timeout=BOUND,
             interval=0.2, what=f"the notice posted within {BOUND:.0f} s")
    elapsed = time.monotonic() - started
    mails = sink.by_recipient()
    ids = {a: Counter(m["Message-ID"] for m in mails.get(a, [])) for a in addresses}
    extra = sum(len(mails.get(a, [])) - 1 for a in addresses if mails.get(a))
    print(f"subscriber chaos: {SUBSCRIBERS} subscribers, kills at mails {kill_at}: posted in {elapsed:.1f} s, "
          f"{sum(map(len, mails.values()))} mails, {extra} extra copies (same Message-ID), "
          f"{sink.sessions} SMTP sessions")
    assert sorted(mails) == addresses  # nobody lost, nobody else
    assert all(len(c) == 1 for c in ids.values())  # each subscriber: one Message-ID
    assert extra <= KILLS
