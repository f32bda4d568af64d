"""The delivery ledger: one Redis hash per notice (update × channel). It is what makes "exactly once" true.

    pending ──claim──▶ claimed ──mark_sending──▶ (request in flight) ──mark_posted──▶ posted
       ▲                  │  └─ Transient ─▶ pending (next_at)          └─ Permanent ─▶ failed
       │                  └─ lease expired, never marked sending ─▶ pending   (provably not sent)
       │                  └─ lease expired after mark_sending   ─▶ unknown   (maybe sent)
       └─── reconcile found nothing ◀── unknown ──claim(reconcile)──▶ reconcile found it ─▶ posted

Every transition is one Lua script, so it is atomic across any number of workers. A claim carries a
random token; only the holder of the current token may move the row on, except ``mark_posted``,
which records the truth whoever learns it (a post that exists is never forgotten).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from notifier.domain.model import UNVERIFIED, DeliveryState, Receipt

_CLAIM = """
local row, claimed_z, due_z = KEYS[1], KEYS[2], KEYS[3]
local now, lease, token, id = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4]
local state = redis.call('HGET', row, 'state')
if not state then return {'missing', ''} end
if state == 'posted' or state == 'failed' then return {state, ''} end
-- a task for this row reached a worker: the sweeper's proof that it is alive (in the same write as the claim)
redis.call('HSET', row, 'task_seen_at', ARGV[1])
if state == 'claimed' then
  local lease_until = tonumber(redis.call('HGET', row, 'lease_until'))
  if lease_until > now then return {'busy', tostring(lease_until)} end
  local sent = redis.call('HGET', row, 'sending_at')
  if sent and sent ~= '' then state = 'unknown' else state = 'pending' end
end
local mode = 'send'
if state == 'unknown' then mode = 'reconcile' end
if state == 'pending' or state == 'unknown' then
  -- an unknown row waits for its backoff too: a reconcile that could not conclude is not retried at once
  local next_at = tonumber(redis.call('HGET', row, 'next_at')) or 0
  if next_at > now then return {'early', tostring(next_at)} end
end
local attempt = redis.call('HINCRBY', row, 'attempt', 1)
redis.call('HSET', row, 'state', 'claimed', 'token', token, 'mode', mode,
           'lease_until', tostring(now + lease), 'updated_at', tostring(now))
redis.call('ZADD', claimed_z, now + lease, id)
redis.call('ZREM', due_z, id)
return {mode, tostring(attempt)}
"""

_MARK_SENDING = """
local row = KEYS[1]
if redis.call('HGET', row, 'state') ~= 'claimed' or redis.call('HGET', row, 'token') ~= ARGV[1] then
  return 0
end
redis.call('HSET', row, 'sending_at', ARGV[2], 'mode', 'send', 'rendered', ARGV[3], 'updated_at', ARGV[2])
return 1
"""

# ``_CLAIM`` and, when it gave a send claim, ``_MARK_SENDING``'s fence in the same atomic step (one fsynced
# write instead of two before the request leaves). ARGV[5] = the rendered parts (JSON). A row that already
# holds a rendering (an earlier attempt's, provably not sent) keeps it: a retry publishes the same text.
# Returns {mode, attempt, the rendering fenced ('' unless the fence was written)}.
_CLAIM_SENDING = "local function claim()\n" + _CLAIM + """
end
local claimed = claim()
if claimed[1] ~= 'send' then return {claimed[1], claimed[2], ''} end
local rendered = redis.call('HGET', KEYS[1], 'rendered')
if not rendered or rendered == '' or rendered == '[]' then rendered = ARGV[5] end
redis.call('HSET', KEYS[1], 'sending_at', ARGV[1], 'mode', 'send', 'rendered', rendered)
return {'send', claimed[2], rendered}
"""

_MARK_POSTED = """
local row, claimed_z, due_z, id = KEYS[1], KEYS[2], KEYS[3], ARGV[1]
local state = redis.call('HGET', row, 'state')
if not state then return 'missing' end
if state == 'posted' then return 'already' end
redis.call('HSET', row, 'state', 'posted', 'remote_id', ARGV[2], 'url', ARGV[3], 'extra', ARGV[4],
           'posted_at', ARGV[5], 'updated_at', ARGV[5], 'last_error', '', 'token', '')
redis.call('ZREM', claimed_z, id)
redis.call('ZREM', due_z, id)
return 'posted'
"""

# Move a claimed row on (to pending/unknown/failed) only if we still hold its claim. Without a token (a
# person, the sweeper, a vanished channel) only a row nobody holds can move, only from the state the
# caller decided on (``expect``), and whether it may have been sent (sending_at) is kept unless the
# caller explicitly clears it.
_RELEASE = """
local row, claimed_z, due_z, id = KEYS[1], KEYS[2], KEYS[3], ARGV[1]
local token, new_state, now, next_at, err = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local keep_sending, expect, enqueued_at = ARGV[7] == '1', ARGV[8], ARGV[9]
local state = redis.call('HGET', row, 'state')
if not state or state == 'posted' then return 0 end
if expect ~= '' and state ~= expect then return 0 end
if token ~= '' then
  if state ~= 'claimed' or redis.call('HGET', row, 'token') ~= token then return 0 end
elseif state == 'claimed' and tonumber(redis.call('HGET', row, 'lease_until')) > tonumber(now) then
  return 0
end
redis.call('HSET', row, 'state', new_state, 'next_at', next_at, 'last_error', err, 'updated_at', now,
           'token', '')
if not keep_sending then redis.call('HSET', row, 'sending_at', '') end
if enqueued_at ~= '' then redis.call('HSET', row, 'enqueued_at', enqueued_at) end
redis.call('ZREM', claimed_z, id)
if (new_state == 'pending' or new_state == 'unknown') and next_at ~= 'inf' then
  redis.call('ZADD', due_z, next_at, id)
else
  redis.call('ZREM', due_z, id)
end
return 1
"""

# ``_RELEASE`` and, only when the row moved, the staff request's idempotency op recorded in the same
# atomic step (KEYS[4] = the op's key, ARGV[10] = what the request answered, ARGV[11] = seconds to keep it;
# ARGV[9] is the release's own ``enqueued_at``). An op recorded already (another request with the op, a
# stalled one and its retry, passed its ``op_result`` look-up too and released first) moves nothing: its
# result comes back instead of 0 or 1.
# The release body runs unchanged inside a function: its ``return``s become the function's result.
_RELEASE_FOR_OP = "local function release()\n" + _RELEASE + """
end
local earlier = redis.call('GET', KEYS[4])
if earlier then return earlier end
local moved = release()
if moved == 1 then redis.call('SET', KEYS[4], ARGV[10], 'EX', ARGV[11]) end
return moved
"""

# An expired claim: never marked sending -> pending (provably not sent); else unknown (maybe sent).
_EXPIRE = """
local row, claimed_z, due_z, id, now = KEYS[1], KEYS[2], KEYS[3], ARGV[1], tonumber(ARGV[2])
if redis.call('HGET', row, 'state') ~= 'claimed' then redis.call('ZREM', claimed_z, id) return '' end
if tonumber(redis.call('HGET', row, 'lease_until')) > now then return '' end
local new_state = 'pending'
local sent = redis.call('HGET', row, 'sending_at')
if sent and sent ~= '' then new_state = 'unknown' end
redis.call('HSET', row, 'state', new_state, 'token', '', 'next_at', tostring(now), 'updated_at', tostring(now),
           'last_error', 'worker stopped while holding the claim (lease expired)')
redis.call('ZREM', claimed_z, id)
redis.call('ZADD', due_z, now, id)
return new_state
"""




@dataclass
class LedgerRow:
    notice_id: str
    channel: str
    update_id: str
    incident_id: str
    state: DeliveryState
    attempt: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0
    deadline: float = 0.0
    next_at: float = 0.0
    lease_until: float = 0.0
    sending_at: float | None = None
    posted_at: float | None = None
    remote_id: str = ""
    url: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    last_error: str = ""
    rendered: list[str] = field(default_factory=list)
    enqueued_at: float = 0.0
    task_seen_at: float = 0.0  # when a deliver task for this row last arrived at a worker

    @property
    def unverified(self) -> str:
        """Why this posted row is posted-unverified ("" when verified): staff should check the account."""
        return self.extra.get(UNVERIFIED, "") if self.state == DeliveryState.POSTED else ""

    @property
    def shown_state(self) -> str:
        return "posted-unverified" if self.unverified else self.state.value

    @property
    def receipt(self) -> Receipt | None:
        return Receipt(self.remote_id, self.url, self.extra) if self.state == DeliveryState.POSTED else None

    @classmethod
    def from_hash(cls, data: dict[str, str]) -> LedgerRow:
        def num(key: str) -> float:
            value = data.get(key, "")
            return float(value) if value not in ("", "inf") else (float("inf") if value == "inf" else 0.0)

        return cls(
            notice_id=data["notice_id"],
            channel=data["channel"],
            update_id=data["update_id"],
            incident_id=data["incident_id"],
            state=DeliveryState(data["state"]),
            attempt=int(data.get("attempt", 0)),
            created_at=num("created_at"),
            updated_at=num("updated_at"),
            deadline=num("deadline"),
            next_at=num("next_at"),
            lease_until=num("lease_until"),
            sending_at=num("sending_at") or None,
            posted_at=num("posted_at") or None,
            remote_id=data.get("remote_id", ""),
            url=data.get("url", ""),
            extra=json.loads(data.get("extra") or "{}"),
            last_error=data.get("last_error", ""),
            rendered=json.loads(data.get("rendered") or "[]"),
            enqueued_at=num("enqueued_at"),
            task_seen_at=num("task_seen_at"),
        )


@dataclass(frozen=True)
class Claim:
    """The outcome of ``Ledger.claim``. ``mode`` is send/reconcile when we hold the row."""

    mode: str  # send | reconcile | posted | failed | busy | early | missing
    token: str = ""
    attempt: int = 0
    until: float = 0.0  # busy: lease end; early: next_at
    # claim_sending only: the 'sending' fence went in with the claim, for this rendering
    fenced: tuple[str, ...] | None = None

    @property
    def held(self) -> bool:
        return self.mode in ("send", "reconcile")


class Ledger:
    def __init__(self, redis: Any, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._claim = redis.register_script(_CLAIM)
        self._claim_sending = redis.register_script(_CLAIM_SENDING)
        self._sending = redis.register_script(_MARK_SENDING)
        self._posted = redis.register_script(_MARK_POSTED)
        self._release = redis.register_script(_RELEASE)
        self._release_for_op = redis.register_script(_RELEASE_FOR_OP)
        self._expire = redis.register_script(_EXPIRE)

    # keys
    def row_key(self, notice_id: str) -> str:
        return f"{self.prefix}notice:{notice_id}"

    @property
    def index_key(self) -> str:
        return f"{self.prefix}notices"

    @property
    def claimed_key(self) -> str:
        return f"{self.prefix}notices:claimed"

    @property
    def due_key(self) -> str:
        return f"{self.prefix}notices:due"

    def _keys(self, notice_id: str) -> list[str]:
        return [self.row_key(notice_id), self.claimed_key, self.due_key]

    # creation happens inside the caller's MULTI so a row never exists without its update
    def create_in(
        self, pipe: Any, notice_id: str, channel: str, update_id: str, incident_id: str, now: float, deadline: float
    ) -> None:
        pipe.hset(
            self.row_key(notice_id),
            mapping={
                "notice_id": notice_id, "channel": channel, "update_id": update_id, "incident_id": incident_id,
                "state": DeliveryState.PENDING.value, "attempt": 0, "created_at": now, "updated_at": now,
                "deadline": deadline, "next_at": now, "lease_until": 0, "sending_at": "", "remote_id": "",
                "url": "", "extra": "{}", "last_error": "", "enqueued_at": now,
            },
        )
        pipe.zadd(self.index_key, {notice_id: now})
        pipe.zadd(self.due_key, {notice_id: now})

    def get(self, notice_id: str) -> LedgerRow | None:
        data = self.redis.hgetall(self.row_key(notice_id))
        return LedgerRow.from_hash(data) if data else None

    def get_many(self, notice_ids: list[str]) -> list[LedgerRow | None]:
        if not notice_ids:
            return []
        with self.redis.pipeline(transaction=False) as pipe:
            for nid in notice_ids:
                pipe.hgetall(self.row_key(nid))
            found = pipe.execute()
        return [LedgerRow.from_hash(data) if data else None for data in found]

    def claim(self, notice_id: str, now: float, lease: float) -> Claim:
        """Also records ``task_seen_at = now`` on any row not yet posted or failed (one write, not two)."""
        token = secrets.token_hex(8)
        mode, value = self._claim(keys=self._keys(notice_id), args=[now, lease, token, notice_id])
        if mode in ("send", "reconcile"):
            return Claim(mode, token, int(value))
        return Claim(mode, until=float(value) if value else 0.0)

    @property
    def fuses_fence(self) -> bool:
        """Whether ``claim_sending`` may stand for ``claim`` + ``mark_sending``: not when a subclass's fence
        does more than the write (``ReplicatedLedger`` waits for replicas before a request may leave)."""
        return type(self).mark_sending is Ledger.mark_sending

    def claim_sending(self, notice_id: str, now: float, lease: float, rendered: list[str]) -> Claim:
        """``claim`` and, if it is a send claim, ``mark_sending(rendered)`` in one script: the claim comes
        back with ``fenced`` set to the rendering now on the row (its earlier one, if it had one).

        Only for a channel whose ``reconcile`` tells exactly whether a post is out: a worker that dies
        after this write, even before its request left, leaves a row that is reconciled, not re-sent.
        A reconcile claim is not fenced (``fenced`` None): reconcile first, then ``mark_sending``."""
        token = secrets.token_hex(8)
        mode, value, fenced = self._claim_sending(keys=self._keys(notice_id),
                                                  args=[now, lease, token, notice_id, json.dumps(rendered)])
        if mode == "send":
            return Claim(mode, token, int(value), fenced=tuple(json.loads(fenced)))
        if mode == "reconcile":
            return Claim(mode, token, int(value))
        return Claim(mode, until=float(value) if value else 0.0)

    def mark_sending(self, notice_id: str, token: str, now: float, rendered: list[str]) -> bool:
        """Record, before the request leaves, that it may reach the channel. False: claim lost; don't send."""
        return bool(self._sending(keys=[self.row_key(notice_id)], args=[token, now, json.dumps(rendered)]))

    def mark_posted(self, notice_id: str, receipt: Receipt, now: float) -> str:
        return str(
            self._posted(
                keys=self._keys(notice_id),
                args=[notice_id, receipt.remote_id, receipt.url, json.dumps(receipt.extra), now],
            )
        )

    def release(
        self, notice_id: str, token: str, state: DeliveryState, now: float, next_at: float | None, error: str,
        keep_sending: bool = False, expect: DeliveryState | None = None, enqueued_at: float | None = None,
    ) -> bool:
        """Move a held row to pending/unknown (due at ``next_at``; None = wait for a person) or failed.

        With an empty ``token`` (a person, the sweeper) it moves only a row no live claim holds, only
        from ``expect`` when given, and false is returned when the row was not in that state.
        ``enqueued_at``: also record, in the same write, when the row's next task is expected (only if
        the row moved).
        """
        nxt = "inf" if next_at is None else repr(next_at)
        return bool(
            self._release(
                keys=self._keys(notice_id),
                args=[notice_id, token, state.value, now, nxt, error[:500], "1" if keep_sending else "0",
                      expect.value if expect else "", "" if enqueued_at is None else repr(enqueued_at)],
            )
        )

    def op_key(self, op: str) -> str:
        return f"{self.prefix}notice-op:{op}"

    def release_for_op(
        self, notice_id: str, state: DeliveryState, now: float, next_at: float | None, error: str, *,
        keep_sending: bool, expect: DeliveryState, op: str, result: str, ttl: int,
    ) -> bool | str:
        """``release`` without a token (a person's retry) that, when the row moved, records ``op`` ->
        ``result`` for ``ttl`` seconds in the same script: a retry of the request after a crash finds it.
        A str: ``op`` had been recorded already (by a concurrent request with it); that result, nothing moved."""
        nxt = "inf" if next_at is None else repr(next_at)
        reply = self._release_for_op(
            keys=[*self._keys(notice_id), self.op_key(op)],
            args=[notice_id, "", state.value, now, nxt, error[:500], "1" if keep_sending else "0",
                  expect.value, "", result, max(1, int(ttl))],
        )
        return reply if isinstance(reply, str) else bool(reply)

    def op_result(self, op: str, now: float) -> str | None:
        """What the request with this idempotency op answered, if its release was committed."""
        raw = self.redis.get(self.op_key(op))
        return None if raw is None else str(raw)

    def expire(self, notice_id: str, now: float) -> str:
        """Expire this row's claim if its lease ran out: '' (nothing to do), 'pending' or 'unknown'."""
        return str(self._expire(keys=self._keys(notice_id), args=[notice_id, now]) or "")

    def expire_claims(self, now: float) -> list[tuple[str, str]]:
        """Claims whose lease ran out: back to pending or to unknown. Returns (notice_id, new_state)."""
        out = []
        for notice_id in self.redis.zrangebyscore(self.claimed_key, "-inf", now, start=0, num=500):
            new_state = self._expire(keys=self._keys(notice_id), args=[notice_id, now])
            if new_state:
                out.append((notice_id, new_state))
        return out

    def due(self, now: float, limit: int = 500) -> list[str]:
        return list(self.redis.zrangebyscore(self.due_key, "-inf", now, start=0, num=limit))

    def set_deadline(self, notice_id: str, deadline: float) -> None:
        self.redis.hset(self.row_key(notice_id), "deadline", deadline)

    def task_seen(self, notice_id: str, now: float) -> None:
        self.redis.hset(self.row_key(notice_id), "task_seen_at", now)

    def touch_enqueued(self, notice_id: str, now: float, seen: float | None = None) -> None:
        mapping: dict[str, float] = {"enqueued_at": now}
        if seen is not None:
            mapping["task_seen_at"] = seen
        self.redis.hset(self.row_key(notice_id), mapping=mapping)

    def touch_enqueued_many(self, notice_ids: list[str], now: float) -> None:
        if not notice_ids:
            return
        with self.redis.pipeline(transaction=False) as pipe:
            for nid in notice_ids:
                pipe.hset(self.row_key(nid), "enqueued_at", now)
            pipe.execute()

    def rows(
        self, channel: str | None = None, state: str | None = None, update_id: str | None = None,
        incident_id: str | None = None, limit: int | None = None,
    ) -> list[LedgerRow]:
        """Newest first, filtered. Reads through a pipeline: one round trip per 200 rows."""
        ids: list[str] = self.redis.zrevrange(self.index_key, 0, -1)
        if update_id:
            ids = [i for i in ids if i.startswith(f"{update_id}:")]
        elif incident_id:
            ids = [i for i in ids if i.startswith(f"{incident_id}.")]
        out: list[LedgerRow] = []
        for start in range(0, len(ids), 200):
            pipe = self.redis.pipeline(transaction=False)
            for notice_id in ids[start : start + 200]:
                pipe.hgetall(self.row_key(notice_id))
            for data in pipe.execute():
                if not data:
                    continue
                row = LedgerRow.from_hash(data)
                if channel and row.channel != channel:
                    continue
                if state and row.state.value != state:
                    continue
                out.append(row)
                if limit and len(out) >= limit:
                    return out
        return out
