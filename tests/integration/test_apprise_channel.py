"""The apprise channel with real parts: Apprise's own ntfy and json plugins (unpatched) talking HTTP to a
local fake chat server, a real celery worker (and beat where retries need the sweeper), a real
redis-server with AOF and the ledger. Messages are counted at the fake server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from notifier.bootstrap import App, build
from notifier.config_loader import load_settings
from notifier.domain.model import DeliveryState
from notifier.services import delivery, incidents
from notifier.store.local_redis import LocalRedis
from tests.fakes.chat_api import ChatServer
from tests.fakes.http_fake import Reply
from tests.support import Proc, start_beat, start_worker, wait_for, write_config
from workers.dispatch import CeleryDispatcher

pytestmark = pytest.mark.integration
SETTLED = (DeliveryState.POSTED, DeliveryState.FAILED, DeliveryState.UNKNOWN)


@pytest.fixture
def ntfy() -> Iterator[ChatServer]:
    with ChatServer() as server:
        yield server


@pytest.fixture
def hook() -> Iterator[ChatServer]:
    with ChatServer() as server:
        yield server


@pytest.fixture
def setup(tmp_path: Path, redis_server: LocalRedis, redis_client: redis.Redis, ntfy: ChatServer, hook: ChatServer,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    # the URLs are credentials in real life: ${ENV} references, as the config loader demands
    monkeypatch.setenv("NTFY_URL", f"ntfy://{ntfy.url.split('://', 1)[1]}/alerts")
    monkeypatch.setenv("CHAT_URL", f"json://{hook.url.split('://', 1)[1]}/hook")
    config = write_config(tmp_path / "notifier.yaml", redis_server.url, {
        "ntfy": {"type": "apprise", "url": "${NTFY_URL}", "timeout": 1},
        "chat": {"type": "apprise", "url": "${CHAT_URL}", "language": "de", "timeout": 1},
    })
    settings = load_settings(config)
    app = build(settings, dispatcher=CeleryDispatcher(settings), redis_url=redis_server.url)
    procs: list[Proc] = []
    yield {"config": config, "app": app, "procs": procs, "tmp": tmp_path, "client": redis_client}
    for proc in procs:
        proc.stop()


def rows(app: App, update_ids: list[str], channel: str | None = None) -> list:
    return [r for u in update_ids for r in app.store.ledger.rows(update_id=u, channel=channel)]


def settle(setup: dict, update_ids: list[str], states: tuple[DeliveryState, ...] = SETTLED,
           channel: str | None = None) -> list:
    app, tmp = setup["app"], setup["tmp"]

    def done() -> bool:
        found = rows(app, update_ids, channel)
        return bool(found) and all(r.state in states for r in found)

    try:  # seconds on an idle machine; the deadline is for a loaded one
        wait_for(done, timeout=120, what=f"notices in {[s.value for s in states]}")
    except AssertionError as exc:
        state = [(r.notice_id, r.state.value, r.attempt, r.last_error) for r in rows(app, update_ids, channel)]
        logs = {n: (tmp / n).read_text(errors="replace")[-3000:] for n in ("worker.log", "beat.log")
                if (tmp / n).exists()}
        raise AssertionError(f"{exc}; rows: {state}; logs: {logs}") from None
    return rows(app, update_ids, channel)


def start(setup: dict, beat: bool = True) -> None:
    setup["procs"].append(start_worker(setup["config"], setup["client"], setup["tmp"] / "worker.log"))
    if beat:
        setup["procs"].append(start_beat(setup["config"], setup["tmp"] / "beat.log", setup["tmp"]))


def test_every_update_reaches_ntfy_and_the_json_endpoint_exactly_once(setup, ntfy: ChatServer,
                                                                       hook: ChatServer) -> None:
    app = setup["app"]
    start(setup, beat=False)
    inc = incidents.open_incident(app, name="IMAP down", components={"imap": "major_outage"},
                                  body={"en": "We are investigating.", "de": "Wir untersuchen das."})
    upd = incidents.update_incident(app, inc.id, status="identified", body="A storage node failed.")
    res = incidents.resolve_incident(app, inc.id, body="All good again.")
    update_ids = [inc.updates[0].id, upd.id, res.id]
    done = settle(setup, update_ids, (DeliveryState.POSTED,))
    assert len(done) == 6
    # Apprise channels do not thread, so the three updates may arrive in any order (only threading channels
    # wait for the previous post, README "Order on threading channels"): each is found by its tag.
    sent = {m.rsplit(" ", 1)[-1]: m for m in ntfy.messages("alerts")}
    assert sorted(sent) == ["#INC1·1", "#INC1·2", "#INC1·3"]
    assert sent["#INC1·1"].startswith("[Investigating] IMAP down: We are investigating.")
    chat = {m["message"].rsplit(" ", 1)[-1]: m for m in hook.accepted}
    assert sorted(chat) == ["#INC1·1", "#INC1·2", "#INC1·3"]
    assert chat["#INC1·1"]["message"].startswith("[Wir untersuchen] IMAP down: Wir untersuchen das.")
    assert [chat[t]["type"] for t in sorted(chat)] == ["failure", "failure", "success"]  # Apprise's envelope
    ntfy_rows = {r.remote_id for r in done if r.channel == "ntfy"}
    assert ntfy_rows == {f"ntfy{n}" for n in (1, 2, 3)}, "the receipt keeps ntfy's message id"
    assert len(ntfy.recorded("POST")) == 3 and len(hook.recorded("POST")) == 3  # no retry, no split


def test_5xx_is_retried_by_the_ledger_and_a_4xx_fails_with_the_services_reason(setup, ntfy: ChatServer,
                                                                                hook: ChatServer) -> None:
    app = setup["app"]
    ntfy.inject("POST", "/", "reply", reply=Reply(503, {"code": 50301, "error": "busy"}), times=2)
    hook.inject("POST", "/hook", "reply", reply=Reply(400, {"error": "unknown room ops-typo"}))
    start(setup)
    inc = incidents.open_incident(app, name="SMTP slow", components=["smtp"], body="Investigating.")
    update_ids = [inc.updates[0].id]
    settle(setup, update_ids, (DeliveryState.POSTED,), channel="ntfy")
    (failed,) = settle(setup, update_ids, (DeliveryState.FAILED,), channel="chat")
    assert len(ntfy.recorded("POST")) == 3, "two 503s, then the one that went through"
    assert len(ntfy.messages()) == 1
    assert "HTTP 400" in failed.last_error and "unknown room ops-typo" in failed.last_error
    assert hook.messages() == [] and len(hook.recorded("POST")) == 1, "a clear no is not retried"
    assert "127.0.0.1" not in failed.last_error, "the URL (a credential) stays out of the reason"


def test_a_send_that_stalls_after_the_service_took_it_waits_for_a_person(setup, ntfy: ChatServer) -> None:
    app = setup["app"]
    ntfy.inject("POST", "/", "stall_after_accept", seconds=3)  # the plugin's 1 s read timeout fires first
    start(setup)
    inc = incidents.open_incident(app, name="IMAP down", components=["imap"], body="Investigating.")
    update_ids = [inc.updates[0].id]
    settle(setup, update_ids, (DeliveryState.POSTED,), channel="chat")
    held = wait_for(lambda: [r for r in rows(app, update_ids, "ntfy")
                             if r.state == DeliveryState.UNKNOWN and "retry --force" in r.last_error],
                    timeout=120, what="the ntfy notice held as unknown")
    assert "Apprise cannot ask" in held[0].last_error
    assert len(ntfy.messages()) == 1, "it arrived once; nothing sent it again on a guess"
    # the person checked ntfy, saw it, and records it: no second message
    delivery.mark_posted(app, held[0].notice_id, url="")
    assert app.store.ledger.get(held[0].notice_id).state == DeliveryState.POSTED
    assert len(ntfy.recorded("POST")) == 1


@pytest.mark.parametrize("point", ["after_claim", "after_send"])
def test_worker_killed_mid_delivery_never_sends_twice(setup, ntfy: ChatServer, hook: ChatServer, point: str) -> None:
    """SIGKILL the worker frozen at ``point``: before sending, a fresh worker sends it once; after the
    message left, the ledger cannot ask ntfy, so the notice waits for a person instead of a resend."""
    app, tmp, client = setup["app"], setup["tmp"], setup["client"]
    marks = tmp / "failpoints"
    marks.mkdir()
    doomed = start_worker(setup["config"], client, tmp / "doomed.log", concurrency=2,
                          extra_env={"NOTIFIER_FAILPOINT": point, "NOTIFIER_FAILPOINT_DIR": str(marks)})
    inc = incidents.open_incident(app, name="Mail delayed", components=["smtp"], body="Investigating.")
    update_ids = [inc.updates[0].id]
    wait_for(lambda: len(list(marks.iterdir())) >= 2, timeout=120, what=f"both notices frozen at {point}")
    doomed.kill()
    assert len(ntfy.messages()) == len(hook.messages()) == (1 if point == "after_send" else 0)
    start(setup)
    expected = DeliveryState.POSTED if point == "after_claim" else DeliveryState.UNKNOWN
    done = settle(setup, update_ids, (expected,))
    assert len(done) == 2
    if expected == DeliveryState.UNKNOWN:  # first "the lease ran out", then the reconcile that cannot ask
        wait_for(lambda: all("retry --force" in r.last_error for r in rows(app, update_ids)), timeout=120,
                 what="both notices held for a person")
    assert len(ntfy.messages()) == 1 and len(hook.messages()) == 1
