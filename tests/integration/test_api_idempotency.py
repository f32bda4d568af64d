"""``Idempotency-Key`` on the staff API's writes, against a real Redis (issue 10, item 4): a repeat
returns the first answer and changes nothing, a different body with the key is a 422, a concurrent
repeat does not act twice, and a 503 (Redis stopped in the middle of the request) followed by a retry
with the same key publishes exactly once."""

from __future__ import annotations

import concurrent.futures
import threading
import uuid
from collections.abc import Callable, Sequence

import httpx
import pytest
import redis

from notifier.api import create_app
from notifier.errors import StoreUnavailable
from notifier.store.local_redis import LocalRedis
from tests.integration._api_support import TOKENS, ApiServer, make_app, settings_for, wait_for

pytestmark = pytest.mark.integration
PUBLISHER = {"Authorization": f"Bearer {TOKENS['PUBLISHER_TOKEN']}"}
EDITOR = {"Authorization": f"Bearer {TOKENS['EDITOR_TOKEN']}"}


class KillsRedisOnce:
    """A dispatcher that stops Redis when the first notice is handed to the workers, as a broker that
    goes away right after the write committed, and answers as an unreachable broker does."""

    def __init__(self, server: LocalRedis) -> None:
        self.server, self.armed, self.sent = server, False, []

    def deliver(self, notice_id: str, channel: str, countdown: float = 0) -> None:
        if self.armed:
            self.armed = False
            self.server.kill()
            raise StoreUnavailable("broker unreachable")
        self.sent.append(notice_id)

    def deliver_many(self, notices: Sequence[tuple[str, str]]) -> None:
        for notice_id, channel in notices:
            self.deliver(notice_id, channel)

    def outbox(self, notices: Sequence[tuple[str, str]], store: object) -> None:
        return None  # a broker of its own: the notices are handed over after the commit

    def wake_engine(self) -> None:
        pass


@pytest.fixture
def stack(tmp_path):
    server = LocalRedis(tmp_path / "redis").start()
    app = make_app(settings_for(tmp_path), server.port)
    app.dispatcher = KillsRedisOnce(server)
    try:
        with ApiServer(create_app(app, idempotency_lease=1.0)) as api, \
                httpx.Client(base_url=api.url, timeout=30) as http:
            yield app, http, server
    finally:
        server.stop()


def broadcasts(app, body: str) -> list:
    return [i for i in app.store.list_incidents(kind="broadcast") if i.updates[0].body.get("en") == body]


def test_a_repeat_returns_the_first_answer_and_changes_nothing(stack):
    app, http, _ = stack
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = http.post("/api/v1/broadcasts", json={"body": "once"}, headers={**PUBLISHER, **key})
    again = http.post("/api/v1/broadcasts", json={"body": "once"}, headers={**PUBLISHER, **key})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert len(broadcasts(app, "once")) == 1
    assert len([n for n in app.dispatcher.sent if n.startswith(first.json()["id"] + ".")]) == 1
    # the key belongs to one staff member: another token with the same key is another request
    other = http.post("/api/v1/broadcasts", json={"body": "once", "draft": True}, headers={**EDITOR, **key})
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]


def test_the_same_key_with_another_body_is_a_422(stack):
    app, http, _ = stack
    key = {"Idempotency-Key": "k-" + uuid.uuid4().hex}
    assert http.post("/api/v1/broadcasts", json={"body": "a"}, headers={**PUBLISHER, **key}).status_code == 201
    changed = http.post("/api/v1/broadcasts", json={"body": "b"}, headers={**PUBLISHER, **key})
    assert changed.status_code == 422 and changed.json()["field"] == "header.Idempotency-Key"
    assert broadcasts(app, "b") == []
    bad = http.post("/api/v1/broadcasts", json={"body": "c"}, headers={**PUBLISHER, "Idempotency-Key": "x y"})
    assert bad.status_code == 422


def test_concurrent_requests_with_one_key_act_once(stack):
    app, http, _ = stack
    key = {"Idempotency-Key": uuid.uuid4().hex}

    def post(_: int) -> int:
        return http.post("/api/v1/broadcasts", json={"body": "together"}, headers={**PUBLISHER, **key}).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(post, range(8)))
    assert set(codes) <= {201, 409} and 201 in codes, codes
    assert len(broadcasts(app, "together")) == 1


def test_a_503_then_a_retry_with_the_same_key_publishes_exactly_once(stack):
    app, http, server = stack
    key = {"Idempotency-Key": uuid.uuid4().hex}
    app.dispatcher.armed = True  # Redis dies after the write committed, before the answer
    first = http.post("/api/v1/broadcasts", json={"body": "outage"}, headers={**PUBLISHER, **key})
    assert first.status_code == 503, first.text
    server.start()  # same port, same AOF

    def retried() -> httpx.Response | None:
        resp = http.post("/api/v1/broadcasts", json={"body": "outage"}, headers={**PUBLISHER, **key})
        assert resp.status_code in (201, 409, 503), resp.text  # 409: the first one's lease, until it expires
        return resp if resp.status_code == 201 else None

    answer = wait_for(retried, timeout=60, what="the retry to succeed")
    found = broadcasts(app, "outage")
    assert [i.id for i in found] == [answer.json()["id"]]  # one incident: the first request's
    rows = app.store.ledger.rows(incident_id=found[0].id, limit=100)
    assert len(rows) == 1  # one ledger row per channel (outbox): one publish
    assert http.post("/api/v1/broadcasts", json={"body": "outage"},
                     headers={**PUBLISHER, **key}).json() == answer.json()


def test_openapi_documents_the_header_on_every_write(stack):
    app, http, _ = stack
    doc = http.get("/openapi.json").json()
    posts = [op for path, ops in doc["paths"].items() if path.startswith("/api/v1/") for m, op in ops.items()
             if m == "post"]
    assert posts and all(any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in op["parameters"])
                         for op in posts)


def commands_during(server: LocalRedis, action: Callable[[], object]) -> list[tuple[str, str]]:
    """Every command Redis executed while ``action`` ran (MONITOR, real Redis), in order, as (who,
    command): who is "lua" for a command a script ran, else "client"."""
    watcher = redis.Redis(port=server.port, decode_responses=True)
    seen: list[tuple[str, str]] = []
    ready = threading.Event()

    def listen() -> None:
        with watcher.monitor() as monitor:
            ready.set()
            for cmd in monitor.listen():
                if cmd["command"] == "ECHO end-of-request":
                    return
                seen.append(("lua" if cmd.get("client_type") == "lua" else "client", cmd["command"]))

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    ready.wait(10)
    watcher.echo("start")
    wait_for(lambda: seen, what="MONITOR to listen")
    action()
    watcher.echo("end-of-request")
    thread.join(10)
    watcher.close()
    return seen[seen.index(("client", "ECHO start")) + 1:]


def test_a_keyed_broadcast_keeps_its_answer_in_the_write_s_own_transaction(stack):
    """Three fsynced writes for a keyed broadcast, as for one without a key but the reservation: the
    reservation (with the op look-up, one script), the id's INCR and the transaction, which also keeps
    the answer; nothing is written after it. (Main: four, and a GET: the answer's SET after EXEC.) The
    transaction is guarded by WATCH and GET of the op (reads, no fsync): at most one commit per op lands
    even when the key's lease ran out before it (test_api_idempotency_race)."""
    app, http, server = stack
    warm = http.post("/api/v1/broadcasts", json={"body": "warm"}, headers={**PUBLISHER, "Idempotency-Key": "w1"})
    assert warm.status_code == 201  # the reservation script is loaded from now on
    key = {"Idempotency-Key": uuid.uuid4().hex}
    answers: list[httpx.Response] = []
    seen = commands_during(server, lambda: answers.append(
        http.post("/api/v1/broadcasts", json={"body": "kept"}, headers={**PUBLISHER, **key})))
    (first,) = answers
    assert first.status_code == 201, first.text
    sent = [c for who, c in seen if who == "client"]
    begin, end = sent.index("MULTI"), sent.index("EXEC")
    outside = [c.split(" ")[0] for c in sent[:begin] + sent[end + 1:]]
    # the reservation and op look-up, the id; the op's guard (WATCH, MGET of the op and its fingerprint); then the MULTI
    assert outside == ["EVALSHA", "INCRBY", "WATCH", "MGET"], sent
    assert sent[begin - 2:begin] == [f"WATCH {sent[begin - 1].split(' ')[1]}", sent[begin - 1]]
    assert sent[begin - 1].startswith("MGET t:op:")
    assert sent.count("MULTI") == 1  # one transaction: the incident, its ledger row, the op and the answer
    inside = sent[begin:end]
    assert [c for c in inside if c.startswith("SET t:idempotency:") and '"state": "done"' in c], inside
    scripted = [c for who, c in seen if who == "lua"]
    assert scripted[0].startswith("SET t:idempotency:") and " NX PX " in scripted[0]
    assert scripted[1].startswith("GET t:op:")
    again = http.post("/api/v1/broadcasts", json={"body": "kept"}, headers={**PUBLISHER, **key})
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content and again.headers["content-type"] == first.headers["content-type"]


def test_a_request_refused_before_its_route_ran_keeps_nothing_under_its_key(stack):
    """As Stripe: a request that failed validation (or the role check) never started, so nothing is kept;
    the corrected request with the same key runs. The incident writes reserve the key on their own
    thread, after those checks, and before anything is written."""
    app, http, server = stack
    key = {"Idempotency-Key": uuid.uuid4().hex}
    watcher = redis.Redis(port=server.port, decode_responses=True)
    before = set(watcher.scan_iter("t:idempotency:*"))
    invalid = http.post("/api/v1/broadcasts", json={"body": ""}, headers={**PUBLISHER, **key})
    viewer = http.post("/api/v1/broadcasts", json={"body": "fixed"},
                       headers={"Authorization": f"Bearer {TOKENS['VIEWER_TOKEN']}", **key})
    assert invalid.status_code == 422 and viewer.status_code == 403
    assert set(watcher.scan_iter("t:idempotency:*")) == before  # nothing reserved, nothing kept
    fixed = http.post("/api/v1/broadcasts", json={"body": "fixed"}, headers={**PUBLISHER, **key})
    assert fixed.status_code == 201 and "idempotent-replayed" not in fixed.headers, fixed.text
    assert len(broadcasts(app, "fixed")) == 1
    watcher.close()


def test_only_the_incident_writes_reserve_their_key_on_their_own_thread():
    from notifier.api.staff import reserves_own_key

    assert all(reserves_own_key(p) for p in ("/api/v1/broadcasts", "/api/v1/incidents",
                                              "/api/v1/incidents/inc4/updates", "/api/v1/incidents/inc4/resolve"))
    # the others keep the gate's reservation: merge, approve, a delivery retry, a maintenance, unknown paths
    assert not any(reserves_own_key(p) for p in (
        "/api/v1/incidents/inc4/merge", "/api/v1/drafts/inc4.2/approve", "/api/v1/deliveries/inc4.1:x/retry",
        "/api/v1/maintenances", "/api/v1/broadcasts/x", "/v2/api/v1/broadcasts", "/api/v1/incidents/inc4"))
