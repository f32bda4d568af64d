"""``Idempotency-Key`` on the staff API's writes (Stripe's and the IETF httpapi draft's semantics).

A ``POST /api/v1/...`` with ``Idempotency-Key: <1-255 printable ASCII>``:

| situation                                           | answer |
| --------------------------------------------------- | ------ |
| first time (per staff member and key)               | runs; the answer is kept for 24 h |
| the same key and the same request again             | the first answer, nothing changed (*) |
| the same key with a different method, path or body | 422 |
| the same key while the first is still running       | 409 with ``Retry-After`` |

(*) the same status and body, with ``Idempotent-Replayed: true``.

Crash safety: the key is reserved (``SET NX`` with a short lease) before the route writes anything,
and the write itself records the key in its own Redis transaction (``notifier.services.incidents``
reads the ``op`` this module sets for the request). So when the API dies, or Redis goes away, between
the write and the answer, a retry with the same key finds the committed write and answers with it
instead of writing again: one publish, whatever the client saw. A request that stalls past its lease
and resumes after the client's retry wrote does not write again either: the incident writes check the
op inside their own transaction (``incidents._commit``); and a request with the key and another body
that wrote meanwhile makes it a 422 (the op keeps the fingerprint of the request that made its write),
as does a write found for the op whose request had another body. A 5xx answer is not kept (the client
may retry). Every keyed write does so: the incident writes (``services.incidents._commit``), merge
(``services.merge``: the source's resolution, the target's components and the op in one transaction)
and a delivery retry (``services.delivery.retry_delivery``: the row's move and the op in one ledger
script). This gate settles a key's record (keeps the answer, or releases the lease) only while it is
still the pending value this request wrote (a nonce in it): never one that another request with the key
reserved after this one's lease ran out.

The incident writes (open, update, resolve, broadcast: ``staff._keeps_answer``) go further (issue 14:
a keyed write's CPU). They reserve the key themselves, first thing on the route's own thread (one
script that also reads the op's committed incident for ``_commit``; no thread hand-off of this gate's),
and their transaction also keeps the answer (``services.idempotent.answer_in_commit``), so this gate
writes nothing after the route, and a retry after a crash between the commit and the answer replays
the answer the route gave, not one rendered anew. Whether the key is taken is then known only once
the route runs: it raises ``Claimed`` and this gate answers (replay, 409, 422, 503) as for any other
write. A request those routes refuse before they run (its body fails validation, its role is short)
keeps nothing, as with Stripe: the corrected request with the same key runs. The other writes are
reserved and settled here, around the route, as before.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import secrets
from collections.abc import Callable
from typing import Any

import redis
from starlette.concurrency import run_in_threadpool

from notifier.api import staff
from notifier.api.auth import principal_of
from notifier.failpoints import failpoint
from notifier.ports import op_fp_key
from notifier.services.idempotent import (
    KEEP_SECONDS,
    Answer,
    Claimed,
    Record,
    current_op,
    current_record,
    done_record,
)

log = logging.getLogger(__name__)
HEADER = "Idempotency-Key"
_KEY = re.compile(r"[\x21-\x7e]{1,255}")


# The reservation of a route that reserves on its own thread, in one round trip: SET NX the pending
# record, and then read the op's committed incident (1, incident?); or the record in the way (0, record).
_RESERVE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
    local incident = redis.call('GET', KEYS[2])
    if incident then return {1, incident, redis.call('GET', KEYS[3]) or ''} end
    return {1}
end
return {0, redis.call('GET', KEYS[1])}
"""

# The settlement of a request's lease: keep its answer (ARGV[2], for ARGV[3] seconds) or release the key
# (ARGV[2] empty), only while the record is still the pending value this request wrote (ARGV[1]). A
# request whose lease ran out, and whose key another request then reserved (and maybe answered), leaves
# that record alone. 1: settled; 0: the record was not ours any more.
_SETTLE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) end
return 1
"""


def op_for(principal: str, key: str) -> str:
    return hashlib.sha256(f"{principal}\0{key}".encode()).hexdigest()[:32]


async def _json(send: Any, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"detail": detail, "field": "header.Idempotency-Key"}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class IdempotencyGate:
    """ASGI middleware; runs after authentication and after the body has been read (``BodyLimit``)."""

    def __init__(self, app: Any, principal: Callable[[str | None], Any], store: Callable[[], Any],
                 lease_seconds: float = 60.0, prefix: str = "/api/v1/",
                 route_reserves: Callable[[str], bool] = staff.reserves_own_key) -> None:
        self.app = app
        self.principal = principal  # bearer token -> StaffMember | None
        self.store = store  # -> the App (its redis client and key())
        self.lease_ms = int(lease_seconds * 1000)
        self.prefix = prefix
        self.route_reserves = route_reserves  # POST path -> its route reserves the key on its own thread
        self._script: tuple[Any, Any] | None = None  # (client, its registered _RESERVE)
        self._settle_script: tuple[Any, Any] | None = None  # (client, its registered _SETTLE)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = dict(scope.get("headers") or []) if scope["type"] == "http" else {}
        raw_key = headers.get(b"idempotency-key")
        if raw_key is None or scope.get("method") != "POST" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        key = raw_key.decode("latin-1")
        if not _KEY.fullmatch(key):
            await _json(send, 422, "Idempotency-Key: 1 to 255 printable ASCII characters (a UUID is a good key)")
            return
        member = principal_of(scope)  # authenticated once, by RequestGate
        if member is None:
            auth = headers.get(b"authorization", b"").decode("latin-1")
            member = self.principal(auth.partition(" ")[2].strip() or None)
        if member is None:  # the gate before us already refused it; be safe anyway
            await self.app(scope, receive, send)
            return
        message = await receive()  # BodyLimit hands over the whole body in one message
        body = message.get("body", b"")
        fingerprint = hashlib.sha256(b"\0".join(
            [scope["method"].encode(), scope["path"].encode(), scope.get("query_string", b""), body])).hexdigest()
        op = op_for(member.name, key)
        app = self.store()
        client = app.require_redis()
        # The pending value carries this request's own nonce: the record is settled only while it is still
        # this value (_SETTLE), never once the lease ran out and another request with the key took it.
        pending = json.dumps({"state": "pending", "fp": fingerprint, "nonce": secrets.token_hex(8)})
        record = Record(app.key("idempotency", op), fingerprint, pending=pending)
        if self.route_reserves(scope["path"]):  # on its own thread, first thing (answer_in_commit): no hand-off
            record.claim = functools.partial(self._claim_here, client, record, app.key("op", op))
        else:
            try:
                found = await run_in_threadpool(self._reserve, client, record)
            except redis.RedisError as exc:
                await self._unavailable(send, exc)
                return
            if found is not None:
                await self._answer_for(send, found, fingerprint)
                return
            record.reserved = True
        replayed = False

        async def once() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return message
            return await receive()

        status, out_headers, chunks = 500, [], []
        held: list[Any] = []

        async def capture(msg: Any) -> None:
            nonlocal status, out_headers
            if msg["type"] == "http.response.start":
                status, out_headers = msg["status"], msg.get("headers", [])
                failpoint("idempotency_before_record")  # the crash tests: the write is done, nothing answered
            elif msg["type"] == "http.response.body":
                chunks.append(msg.get("body", b""))
            held.append(msg)  # answered only once the key's record is settled, below

        token, record_token = current_op.set(op), current_record.set(record)
        try:
            await self.app(scope, once, capture)
        except Claimed as claimed:  # the route found the key taken (or Redis failing) and wrote nothing
            if record.reserved:  # taken under our reservation (its lease ran out): released, if still ours
                await run_in_threadpool(self._settle, client, record, op, None)
            if claimed.error is not None or claimed.found is None:
                await self._unavailable(send, claimed.error)
            else:
                await self._answer_for(send, claimed.found, fingerprint)
            return
        except BaseException:
            if record.reserved:
                await run_in_threadpool(self._settle, client, record, op, None)  # not kept: the retry runs again
            raise
        finally:
            current_op.reset(token)
            current_record.reset(record_token)
        if not record.reserved:  # refused before it reached the key (its body, its role): nothing ran, nothing kept
            await self._answer(send, held)
            return
        done = None
        if status < 500:  # a 5xx is not kept: the retry runs again (and finds the write, if it was committed)
            ctype = dict(out_headers).get(b"content-type", b"application/json").decode("latin-1")
            answer = Answer(status, ctype, b"".join(chunks))
            if answer == record.kept:  # the write's own transaction kept exactly this answer
                await self._answer(send, held)
                return
            done = done_record(fingerprint, answer)
        # The record is settled before the client hears anything: a client that retries the moment it
        # reads a 503 finds the lease released, and one that got a 201 finds the answer kept.
        await run_in_threadpool(self._settle, client, record, op, done)
        await self._answer(send, held)

    @staticmethod
    async def _answer(send: Any, held: list[Any]) -> None:
        for msg in held:
            await send(msg)

    def _settle(self, client: Any, record: Record, op: str, done: str | None) -> None:
        """Keep the answer (``done``) or release the lease (None), if the record is still this request's
        pending value (one script, ``_SETTLE``): a request whose lease ran out meanwhile, and whose key
        another request reserved, does not overwrite or delete that one's record. Blocking, so run in the
        thread pool. A connection that broke under us (a reset while Redis fails over, a socket closed by
        a pool reset) is redialled by the next command, so one more try usually lands; left unsettled, the
        pending lease answers 409 to every retry until it runs out (lease_seconds)."""
        if self._settle_script is None or self._settle_script[0] is not client:
            self._settle_script = (client, client.register_script(_SETTLE))
        script = self._settle_script[1]
        for attempt in range(3):
            try:
                if not script(keys=[record.key], args=[record.pending, done or "", KEEP_SECONDS], client=client):
                    log.info("idempotency: %s was taken by another request after its lease ran out", op)
                return
            except (redis.RedisError, OSError, ValueError) as exc:  # ValueError: I/O on a closed socket
                if attempt == 2:  # the lease runs out by itself
                    log.warning("idempotency: could not record %s: %s", op, exc)

    def _claim_here(self, client: Any, record: Record, op_key: str) -> None:
        """Reserve the key on the caller's thread (the route's, right before its write): Claimed unless it
        is now this request's. The same round trip reads the op's commit (``op:<op>``: its incident, and
        ``op:<op>:fp``: the fingerprint of the request that made it) for ``incidents._commit``,
        which skips its write when the op was committed already (and answers 422 when by another body).
        That read alone cannot keep a request whose lease ran out from writing next to a later request's
        with the key: every keyed incident write also guards its own transaction by the op
        (``commit_update(op=...)``: WATCH and GET of ``op:<op>``)."""
        if self._script is None or self._script[0] is not client:
            self._script = (client, client.register_script(_RESERVE))
        try:
            reply = self._script[1](keys=[record.key, op_key, op_fp_key(op_key)],
                                    args=[record.pending, self.lease_ms], client=client)
        except redis.RedisError as exc:
            raise Claimed(None, exc) from exc
        if int(reply[0]) != 1:
            raise Claimed(json.loads(reply[1]))
        record.reserved, record.op_read = True, True
        record.op_landed = (reply[1], reply[2] if len(reply) > 2 else "") if len(reply) > 1 else None

    @staticmethod
    async def _unavailable(send: Any, exc: Exception | None) -> None:
        log.warning("idempotency: redis error: %s", exc)
        await _json(send, 503, "store unavailable; retry later with the same Idempotency-Key",
                    [(b"retry-after", b"5")])

    async def _answer_for(self, send: Any, record: dict[str, Any], fingerprint: str) -> None:
        """The answer for a key whose record stands in the way: a replay, 409 (still running) or 422."""
        if record.get("fp") != fingerprint:
            await _json(send, 422, "this Idempotency-Key was used for a different request; use a new key")
            return
        if record.get("state") != "done":
            await self._busy(send)
            return
        body = str(record["body"]).encode()
        await send({"type": "http.response.start", "status": int(record["status"]),
                    "headers": [(b"content-type", str(record["type"]).encode()),
                                (b"content-length", str(len(body)).encode()),
                                (b"idempotent-replayed", b"true")]})
        await send({"type": "http.response.body", "body": body})

    def _reserve(self, client: Any, record: Record) -> dict[str, Any] | None:
        """The key reserved for this request (None: the record is now its ``pending`` value), or the
        record standing in its way. Blocking Redis I/O: run in the thread pool or on the route's own
        thread, never on the event loop (a slow fsync would stall every request)."""
        if client.set(record.key, record.pending, nx=True, px=self.lease_ms):
            return None
        raw = client.get(record.key)
        if raw is None:  # expired between the two calls: take it, unless another request just did
            if client.set(record.key, record.pending, nx=True, px=self.lease_ms):
                return None
            return {"state": "pending", "fp": record.fingerprint}
        found: dict[str, Any] = json.loads(raw)
        return found

    async def _busy(self, send: Any) -> None:
        await _json(send, 409, "a request with this Idempotency-Key is still running; retry shortly",
                    [(b"retry-after", b"1")])
