"""A keyed write whose lease ran out before it committed (issue 14's Idempotency-Key race), against a
real Redis and uvicorn: request A reserves the key and is held between its reservation and its commit
for longer than the gate's lease; the client's retry B then reserves the key again and commits; A,
released, must not commit a second incident: exactly one write lands for the key, and both answers
describe it. (Main: two broadcasts, one per request.)

A is held twice over: before its transaction (it reads ``op:<op>`` after B committed) and inside it,
after that read (B commits under A's WATCH, A's EXEC aborts and the re-run finds B's commit)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx
import pytest

from notifier.api import create_app
from notifier.api.idempotency import op_for
from notifier.ports import NullDispatcher
from notifier.store.local_redis import LocalRedis
from tests.integration._api_support import TOKENS, ApiServer, make_app, settings_for, wait_for
from tests.support import future_window

pytestmark = pytest.mark.integration
PUBLISHER = {"Authorization": f"Bearer {TOKENS['PUBLISHER_TOKEN']}"}
LEASE = 0.3  # seconds: the gate's lease, run out while A is held


class Hold:
    """Holds the first caller of ``wrap(fn)`` until ``release`` is set (it sets ``reached`` first);
    every later call passes straight through."""

    def __init__(self) -> None:
        self.reached, self.release, self.armed = threading.Event(), threading.Event(), True
        self.lock = threading.Lock()

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def held(*args: Any, **kwargs: Any) -> Any:
            with self.lock:
                first, self.armed = self.armed, False
            if first:
                self.reached.set()
                assert self.release.wait(30), "the test never released the held request"
            return fn(*args, **kwargs)

        return held


class HoldingDispatcher(NullDispatcher):
    """The first ``outbox`` call (inside the first keyed broadcast's transaction, after its reads and
    before its EXEC) waits for the test."""

    def __init__(self, hold: Hold) -> None:
        super().__init__()
        self.outbox = hold.wrap(super().outbox)  # type: ignore[method-assign]


@pytest.fixture
def stack(tmp_path) -> Iterator[tuple[Any, httpx.Client, LocalRedis]]:
    server = LocalRedis(tmp_path / "redis").start()
    app = make_app(settings_for(tmp_path), server.port)
    try:
        with ApiServer(create_app(app, idempotency_lease=LEASE)) as api, \
                httpx.Client(base_url=api.url, timeout=30) as http:
            yield app, http, server
    finally:
        server.stop()


def broadcasts(app: Any, body: str) -> list:
    return [i for i in app.store.list_incidents(kind="broadcast") if i.updates[0].body.get("en") == body]


def race(app: Any, http: httpx.Client, hold: Hold, body: str) -> Sequence[httpx.Response]:
    """A posts and is held; once its lease has run out, B (the same request, the same key) is answered;
    then A is released. Returns (A's answer, B's answer)."""
    key = {"Idempotency-Key": uuid.uuid4().hex}
    record_key = app.key("idempotency", op_for("pia", key["Idempotency-Key"]))
    answers: dict[str, httpx.Response] = {}

    def post_a() -> None:
        with httpx.Client(base_url=str(http.base_url), timeout=60) as other:
            answers["a"] = other.post("/api/v1/broadcasts", json={"body": body}, headers={**PUBLISHER, **key})

    first = threading.Thread(target=post_a)
    first.start()
    try:
        assert hold.reached.wait(30), "A never reached the hold"
        assert app.store.redis.exists(record_key)  # A's reservation stands: the key is A's

        def retried() -> httpx.Response | None:
            resp = http.post("/api/v1/broadcasts", json={"body": body}, headers={**PUBLISHER, **key})
            assert resp.status_code in (201, 409), resp.text  # 409: A's lease, until it runs out
            return resp if resp.status_code == 201 else None

        answers["b"] = wait_for(retried, timeout=30, what="B to get the key once A's lease ran out")
        assert "idempotent-replayed" not in answers["b"].headers  # B ran: A had not committed
    finally:
        hold.release.set()
        first.join(60)
    assert not first.is_alive()
    return answers["a"], answers["b"]


def assert_one_write(app: Any, http: httpx.Client, body: str, a: httpx.Response, b: httpx.Response) -> None:
    assert a.status_code == 201, a.text
    found = broadcasts(app, body)
    assert [i.id for i in found] == [b.json()["id"]], [i.id for i in found]  # one incident: B's
    assert a.json()["id"] == b.json()["id"]  # and A's answer describes it
    assert len(found[0].updates) == 1
    rows = app.store.ledger.rows(incident_id=found[0].id, limit=100)
    assert [r.channel for r in rows] == ["outbox"]  # one ledger row per channel: one publish


def test_a_request_held_past_its_lease_before_its_commit_does_not_commit_again(stack, monkeypatch):
    app, http, _ = stack
    hold = Hold()
    monkeypatch.setattr(app.store, "next_id", hold.wrap(app.store.next_id))  # A: reserved, not yet written
    a, b = race(app, http, hold, "held before its commit")
    assert_one_write(app, http, "held before its commit", a, b)


def test_a_request_held_past_its_lease_inside_its_transaction_does_not_commit_again(stack):
    app, http, _ = stack
    hold = Hold()
    app.dispatcher = HoldingDispatcher(hold)  # A: its transaction's reads done, its EXEC not sent
    a, b = race(app, http, hold, "held inside its transaction")
    assert_one_write(app, http, "held inside its transaction", a, b)
    # a later retry with the key is the replay of that one write
    again_key = a.request.headers["idempotency-key"]
    again = http.post("/api/v1/broadcasts", json={"body": "held inside its transaction"},
                      headers={**PUBLISHER, "Idempotency-Key": again_key})
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == b.json()["id"]


def test_a_request_that_fails_after_its_lease_ran_out_leaves_the_key_to_the_request_now_holding_it(
        stack, monkeypatch):
    """A is held past its lease and then fails; meanwhile B (the same key) reserved the key and is still
    running. A's gate must not release B's reservation (main: it DELETEd the key's record, so a third
    request C ran next to B instead of getting 409)."""
    app, http, _ = stack
    key = {"Idempotency-Key": uuid.uuid4().hex}
    record_key = app.key("idempotency", op_for("pia", key["Idempotency-Key"]))
    reached_a, release_a, reached_b, release_b = (threading.Event() for _ in range(4))
    calls: list[int] = []
    lock, next_id = threading.Lock(), app.store.next_id

    def held(*args: Any, **kwargs: Any) -> Any:
        with lock:
            calls.append(1)
            n = len(calls)
        if n == 1:  # A: reserved, held until its lease ran out, then fails
            reached_a.set()
            assert release_a.wait(30)
            raise RuntimeError("A fails after its lease ran out")
        if n == 2:  # B: reserved the key after A's lease ran out; held until the test is done with A
            app.store.redis.persist(record_key)  # right after B's reservation: its lease lasts while we look
            reached_b.set()
            assert release_b.wait(30)
        return next_id(*args, **kwargs)

    monkeypatch.setattr(app.store, "next_id", held)
    answers: dict[str, httpx.Response] = {}

    def post(name: str) -> None:
        with httpx.Client(base_url=str(http.base_url), timeout=60) as other:
            answers[name] = other.post("/api/v1/broadcasts", json={"body": "b holds it"}, headers={**PUBLISHER, **key})

    a, b = threading.Thread(target=post, args=("a",)), threading.Thread(target=post, args=("b",))
    a.start()
    try:
        assert reached_a.wait(30), "A never reached the hold"
        wait_for(lambda: not app.store.redis.exists(record_key), what="A's lease to run out")
        b.start()
        assert reached_b.wait(30), "B never reached the hold"
        b_pending = app.store.redis.get(record_key)
        assert json.loads(b_pending)["state"] == "pending"
        release_a.set()
        a.join(60)
        assert answers["a"].status_code == 500
        assert app.store.redis.get(record_key) == b_pending  # B's reservation stands
        c = http.post("/api/v1/broadcasts", json={"body": "b holds it"}, headers={**PUBLISHER, **key})
        assert c.status_code == 409, c.text  # B is still running
    finally:
        release_a.set()
        release_b.set()
        a.join(60)
        if b.ident is not None:  # started
            b.join(60)
    assert answers["b"].status_code == 201, answers["b"].text
    assert [i.id for i in broadcasts(app, "b holds it")] == [answers["b"].json()["id"]]


# ---- the same key with another body, after the first request's lease ran out (issue 14) -------------
def other_body_race(app: Any, http: httpx.Client, hold: Hold, a: tuple[str, dict], b: tuple[str, dict],
                    ) -> tuple[httpx.Response, httpx.Response]:
    """A posts ``a`` (path, body) and is held before its commit; once its lease has run out, B posts ``b``
    with the same key (another body) and is answered; then A is released. Returns (A's answer, B's)."""
    key = {"Idempotency-Key": uuid.uuid4().hex}
    record_key = app.key("idempotency", op_for("pia", key["Idempotency-Key"]))
    answers: dict[str, httpx.Response] = {}

    def post_a() -> None:
        with httpx.Client(base_url=str(http.base_url), timeout=60) as other:
            answers["a"] = other.post(a[0], json=a[1], headers={**PUBLISHER, **key})

    first = threading.Thread(target=post_a)
    first.start()
    try:
        assert hold.reached.wait(30), "A never reached the hold"
        wait_for(lambda: not app.store.redis.exists(record_key), what="A's lease to run out")
        answers["b"] = http.post(b[0], json=b[1], headers={**PUBLISHER, **key})
        assert answers["b"].status_code == 201, answers["b"].text  # B ran: nothing had been written for the key
    finally:
        hold.release.set()
        first.join(60)
    assert not first.is_alive()
    return answers["a"], answers["b"]


def assert_refused(app: Any, a: httpx.Response, b: httpx.Response, http: httpx.Client) -> None:
    """A got the contract's 422, and the key still answers B's request with B's answer."""
    assert a.status_code == 422, a.text
    assert a.json()["field"] == "header.Idempotency-Key"
    again = http.post(b.request.url.path, content=b.request.content,
                      headers={**PUBLISHER, "Idempotency-Key": b.request.headers["idempotency-key"],
                               "Content-Type": "application/json"})
    assert again.status_code == 201 and again.headers.get("idempotent-replayed") == "true", again.text
    assert again.json() == b.json()


def test_a_held_open_whose_key_another_body_took_meanwhile_is_a_422_not_that_one_s_write(stack, monkeypatch):
    app, http, _ = stack
    hold = Hold()
    monkeypatch.setattr(app.store, "commit_update", hold.wrap(app.store.commit_update))
    a, b = other_body_race(app, http, hold, ("/api/v1/broadcasts", {"body": "a's broadcast"}),
                           ("/api/v1/broadcasts", {"body": "b's broadcast"}))
    assert broadcasts(app, "a's broadcast") == [] and len(broadcasts(app, "b's broadcast")) == 1
    assert_refused(app, a, b, http)


def test_a_held_update_whose_key_another_update_of_the_incident_took_is_a_422(stack, monkeypatch):
    app, http, _ = stack
    inc = http.post("/api/v1/incidents", json={"name": "IMAP down", "body": "Looking"}, headers=PUBLISHER).json()
    hold = Hold()
    monkeypatch.setattr(app.store, "commit_update", hold.wrap(app.store.commit_update))
    path = f"/api/v1/incidents/{inc['id']}/updates"
    a, b = other_body_race(app, http, hold, (path, {"body": "a's update"}), (path, {"body": "b's update"}))
    bodies = [u.body.get("en") for u in app.store.get_incident(inc["id"]).updates]
    assert bodies == ["Looking", "b's update"], bodies
    assert_refused(app, a, b, http)


def test_a_held_update_whose_key_an_update_of_another_incident_took_writes_nothing(stack, monkeypatch):
    app, http, _ = stack
    x = http.post("/api/v1/incidents", json={"name": "IMAP down", "body": "Looking"}, headers=PUBLISHER).json()
    y = http.post("/api/v1/incidents", json={"name": "SMTP down", "body": "Looking"}, headers=PUBLISHER).json()
    hold = Hold()
    monkeypatch.setattr(app.store, "commit_update", hold.wrap(app.store.commit_update))
    a, b = other_body_race(app, http, hold, (f"/api/v1/incidents/{x['id']}/updates", {"body": "a's update"}),
                           (f"/api/v1/incidents/{y['id']}/updates", {"body": "b's update"}))
    assert [u.body.get("en") for u in app.store.get_incident(x["id"]).updates] == ["Looking"]
    assert [u.body.get("en") for u in app.store.get_incident(y["id"]).updates] == ["Looking", "b's update"]
    assert_refused(app, a, b, http)


def test_a_keyed_maintenance_whose_answer_was_never_kept_answers_another_body_with_a_422(stack, monkeypatch):
    """A maintenance does not keep its answer in its transaction (the gate does, after the route): A
    commits, and its process dies before the gate kept the answer (here: the gate keeps nothing for A).
    Once A's lease runs out, B (the same key, another body) must get 422, not A's window."""
    from notifier.api.idempotency import IdempotencyGate

    app, http, _ = stack
    key = {"Idempotency-Key": uuid.uuid4().hex}
    record_key = app.key("idempotency", op_for("pia", key["Idempotency-Key"]))
    starts, ends = future_window(start_hour=2, minutes=120)
    window = {"name": "Mail server upgrade", "components": ["imap"], "body": "Upgrading mail servers.",
              "scheduled_for": f"{starts:%Y-%m-%dT%H:%M:%SZ}", "scheduled_until": f"{ends:%Y-%m-%dT%H:%M:%SZ}"}
    with monkeypatch.context() as dies:
        dies.setattr(IdempotencyGate, "_settle", lambda *args: None)  # A's answer is never kept
        a = http.post("/api/v1/maintenances", json=window, headers={**PUBLISHER, **key})
    assert a.status_code == 201, a.text
    wait_for(lambda: not app.store.redis.exists(record_key), what="A's lease to run out")
    b = http.post("/api/v1/maintenances", json={**window, "name": "Another window"}, headers={**PUBLISHER, **key})
    assert b.status_code == 422, b.text
    retried = http.post("/api/v1/maintenances", json=window, headers={**PUBLISHER, **key})
    assert retried.status_code == 201 and retried.json()["id"] == a.json()["id"], retried.text
