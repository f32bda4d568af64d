"""Every store port in memory, with the Redis adapters' semantics: for unit tests and dry runs.

``MemoryStore`` mirrors ``RedisStore`` (incidents, component status, the ``op`` markers), with a
``MemoryLedger`` (the same state machine as the Lua scripts of ``ledger.py``, row for row: a row is
kept as the same string hash, so ``LedgerRow.from_hash`` reads both), a ``MemoryEngineState`` and a
``MemoryEventStream`` (one consumer group, pending entries, idle claims, trimming). Each write method is
atomic: it computes everything first, then changes the dictionaries, under one re-entrant lock.
Documents are stored serialized, so no caller can change stored state by holding on to an object.

Time (idle claims, lock expiry, op markers' TTL, stream ids) comes from the clock given, so a test on a
``FakeClock`` decides when a consumer counts as dead or a lock as expired.

``tests/integration/test_store_contract.py`` runs the same cases against this and the Redis store.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from notifier.clock import Clock, SystemClock
from notifier.domain.model import ComponentChange, ComponentStatus, DeliveryState, Incident, Receipt
from notifier.engine.state import ComponentFlap, EngineState, Group, Window
from notifier.errors import NotFound, NotifierError
from notifier.ports import GLOBAL_LOG, NewNotice, UpdateCommit
from notifier.store.events import entry_id
from notifier.store.ledger import Claim, LedgerRow


def _lua(value: float) -> str:
    """A number as Lua's ``tostring`` writes it (what the scripts store for numbers they compute)."""
    return f"{value:.14g}"


def _arg(value: float) -> str:
    """A number as redis-py sends it (what the scripts store for numbers they were given)."""
    return repr(value)


class MemoryLedger:
    """The ``DeliveryLedger`` port; each method is the Lua script of the same name in ``ledger.py``."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self.hashes: dict[str, dict[str, str]] = {}
        self.index: dict[str, float] = {}
        self.claimed: dict[str, float] = {}
        self.due_at: dict[str, float] = {}
        self.ops: dict[str, tuple[str, float]] = {}  # idempotency op -> (result, expiry)

    def create(self, n: NewNotice) -> None:
        with self._lock:
            self.hashes[n.notice_id] = {
                "notice_id": n.notice_id, "channel": n.channel, "update_id": n.update_id,
                "incident_id": n.incident_id, "state": DeliveryState.PENDING.value, "attempt": "0",
                "created_at": _arg(n.now), "updated_at": _arg(n.now), "deadline": _arg(n.deadline),
                "next_at": _arg(n.now), "lease_until": "0", "sending_at": "", "remote_id": "", "url": "",
                "extra": "{}", "last_error": "", "enqueued_at": _arg(n.now),
            }
            self.index[n.notice_id] = n.now
            self.due_at[n.notice_id] = n.now

    def get(self, notice_id: str) -> LedgerRow | None:
        data = self.hashes.get(notice_id)
        return LedgerRow.from_hash(dict(data)) if data else None

    def get_many(self, notice_ids: list[str]) -> list[LedgerRow | None]:
        return [self.get(nid) for nid in notice_ids]

    def claim(self, notice_id: str, now: float, lease: float) -> Claim:
        with self._lock:
            row = self.hashes.get(notice_id)
            if row is None or "state" not in row:
                return Claim("missing")
            state = row["state"]
            if state in ("posted", "failed"):
                return Claim(state)
            row["task_seen_at"] = _arg(now)
            if state == "claimed":
                lease_until = float(row["lease_until"])
                if lease_until > now:
                    return Claim("busy", until=lease_until)
                state = "unknown" if row.get("sending_at") else "pending"
            mode = "reconcile" if state == "unknown" else "send"
            if state in ("pending", "unknown"):
                next_at = float(row.get("next_at") or 0)  # 'inf' parses as infinity, as tonumber does
                if next_at > now:
                    return Claim("early", until=next_at)
            attempt = int(row.get("attempt", "0")) + 1
            token = secrets.token_hex(8)
            row.update(attempt=str(attempt), state="claimed", token=token, mode=mode,
                       lease_until=_lua(now + lease), updated_at=_lua(now))
            self.claimed[notice_id] = now + lease
            self.due_at.pop(notice_id, None)
            return Claim(mode, token, attempt)

    fuses_fence = True

    def claim_sending(self, notice_id: str, now: float, lease: float, rendered: list[str]) -> Claim:
        with self._lock:
            claim = self.claim(notice_id, now, lease)
            if claim.mode != "send":
                return claim
            row = self.hashes[notice_id]
            stored = row.get("rendered") or ""
            if stored in ("", "[]"):
                stored = json.dumps(rendered)
            row.update(sending_at=_arg(now), mode="send", rendered=stored)
            return replace(claim, fenced=tuple(json.loads(stored)))

    def mark_sending(self, notice_id: str, token: str, now: float, rendered: list[str]) -> bool:
        with self._lock:
            row = self.hashes.get(notice_id)
            if row is None or row.get("state") != "claimed" or row.get("token") != token:
                return False
            row.update(sending_at=_arg(now), mode="send", rendered=json.dumps(rendered), updated_at=_arg(now))
            return True

    def mark_posted(self, notice_id: str, receipt: Receipt, now: float) -> str:
        with self._lock:
            row = self.hashes.get(notice_id)
            if row is None or "state" not in row:
                return "missing"
            if row["state"] == "posted":
                return "already"
            row.update(state="posted", remote_id=receipt.remote_id, url=receipt.url,
                       extra=json.dumps(receipt.extra), posted_at=_arg(now), updated_at=_arg(now),
                       last_error="", token="")
            self.claimed.pop(notice_id, None)
            self.due_at.pop(notice_id, None)
            return "posted"

    def release(
        self, notice_id: str, token: str, state: DeliveryState, now: float, next_at: float | None, error: str,
        keep_sending: bool = False, expect: DeliveryState | None = None, enqueued_at: float | None = None,
    ) -> bool:
        with self._lock:
            row = self.hashes.get(notice_id)
            current = row.get("state") if row else None
            if row is None or current is None or current == "posted":
                return False
            if expect is not None and current != expect.value:
                return False
            if token:
                if current != "claimed" or row.get("token") != token:
                    return False
            elif current == "claimed" and float(row["lease_until"]) > now:
                return False
            nxt = "inf" if next_at is None else _arg(next_at)
            row.update(state=state.value, next_at=nxt, last_error=error[:500], updated_at=_arg(now), token="")
            if not keep_sending:
                row["sending_at"] = ""
            if enqueued_at is not None:
                row["enqueued_at"] = _arg(enqueued_at)
            self.claimed.pop(notice_id, None)
            if state in (DeliveryState.PENDING, DeliveryState.UNKNOWN) and next_at is not None:
                self.due_at[notice_id] = next_at
            else:
                self.due_at.pop(notice_id, None)
            return True

    def release_for_op(
        self, notice_id: str, state: DeliveryState, now: float, next_at: float | None, error: str, *,
        keep_sending: bool, expect: DeliveryState, op: str, result: str, ttl: int,
    ) -> bool | str:
        with self._lock:
            earlier = self.op_result(op, now)
            if earlier is not None:  # a concurrent request with the op released first: nothing moves
                return earlier
            moved = self.release(notice_id, "", state, now, next_at, error, keep_sending=keep_sending, expect=expect)
            if moved:
                self.ops[op] = (result, now + max(1, int(ttl)))
            return moved

    def op_result(self, op: str, now: float) -> str | None:
        found = self.ops.get(op)
        return found[0] if found and found[1] > now else None

    def expire(self, notice_id: str, now: float) -> str:
        with self._lock:
            row = self.hashes.get(notice_id)
            if row is None or row.get("state") != "claimed":
                self.claimed.pop(notice_id, None)
                return ""
            if float(row["lease_until"]) > now:
                return ""
            new_state = "unknown" if row.get("sending_at") else "pending"
            row.update(state=new_state, token="", next_at=_lua(now), updated_at=_lua(now),
                       last_error="worker stopped while holding the claim (lease expired)")
            self.claimed.pop(notice_id, None)
            self.due_at[notice_id] = now
            return new_state

    def expire_claims(self, now: float) -> list[tuple[str, str]]:
        out = []
        for notice_id in _by_score(self.claimed, now)[:500]:
            new_state = self.expire(notice_id, now)
            if new_state:
                out.append((notice_id, new_state))
        return out

    def due(self, now: float, limit: int = 500) -> list[str]:
        return _by_score(self.due_at, now)[:limit]

    def set_deadline(self, notice_id: str, deadline: float) -> None:
        with self._lock:
            self.hashes.setdefault(notice_id, {})["deadline"] = _arg(deadline)

    def task_seen(self, notice_id: str, now: float) -> None:
        with self._lock:
            self.hashes.setdefault(notice_id, {})["task_seen_at"] = _arg(now)

    def touch_enqueued(self, notice_id: str, now: float, seen: float | None = None) -> None:
        with self._lock:
            row = self.hashes.setdefault(notice_id, {})
            row["enqueued_at"] = _arg(now)
            if seen is not None:
                row["task_seen_at"] = _arg(seen)

    def touch_enqueued_many(self, notice_ids: list[str], now: float) -> None:
        for nid in notice_ids:
            self.touch_enqueued(nid, now)

    def rows(
        self, channel: str | None = None, state: str | None = None, update_id: str | None = None,
        incident_id: str | None = None, limit: int | None = None,
    ) -> list[LedgerRow]:
        ids = [i for i, _ in sorted(self.index.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)]
        if update_id:
            ids = [i for i in ids if i.startswith(f"{update_id}:")]
        elif incident_id:
            ids = [i for i in ids if i.startswith(f"{incident_id}.")]
        out: list[LedgerRow] = []
        for notice_id in ids:
            row = self.get(notice_id)
            if row is None:
                continue
            if channel and row.channel != channel:
                continue
            if state and row.state.value != state:
                continue
            out.append(row)
            if limit and len(out) >= limit:
                return out
        return out


def _by_score(scores: dict[str, float], upto: float) -> list[str]:
    """ZRANGEBYSCORE -inf upto: by score, then by member."""
    return [m for m, s in sorted(scores.items(), key=lambda kv: (kv[1], kv[0])) if s <= upto]


class MemoryEventStream:
    """The ``EventStream`` port: one stream, one consumer group, its pending entries list."""

    def __init__(self, clock: Clock, lock: threading.RLock) -> None:
        self._clock = clock
        self._lock = lock
        self.entries: dict[str, dict[str, str]] = {}  # insertion order is id order
        self.last_id = "0-0"
        self.seen: dict[str, float] = {}  # event id -> expiry (unix seconds)
        self.group: str | None = None  # the group's last-delivered-id, None: no group yet
        self.pel: dict[str, tuple[str, float]] = {}  # entry id -> (consumer, last delivery, unix seconds)

    def _next_id(self) -> str:
        ms = int(self._clock.timestamp() * 1000)
        last_ms, last_seq = entry_id(self.last_id)
        self.last_id = f"{ms}-0" if ms > last_ms else f"{last_ms}-{last_seq + 1}"
        return self.last_id

    def accept(self, events: list[tuple[str, str]], ttl: int) -> set[int]:
        with self._lock:
            now = self._clock.timestamp()
            fresh = set()
            for pos, (event_id, event_json) in enumerate(events, start=1):
                if self.seen.get(event_id, 0) > now:
                    continue
                self.entries[self._next_id()] = {"event": event_json}
                self.seen[event_id] = now + ttl
                fresh.add(pos)
            return fresh

    def append(self, event_json: str) -> str:
        with self._lock:
            new = self._next_id()
            self.entries[new] = {"event": event_json}
            return new

    def ensure_group(self) -> None:
        with self._lock:
            if self.group is None:
                self.group = "0-0"

    def _need_group(self) -> str:
        if self.group is None:
            raise NotifierError("NOGROUP: no consumer group for the event stream (call ensure_group)")
        return self.group

    def read(self, consumer: str, count: int, claim_idle_ms: int) -> list[tuple[str, dict[str, str]]]:
        with self._lock:
            self._need_group()
            now = self._clock.timestamp()
            mine = [i for i in sorted(self.pel, key=entry_id) if self.pel[i][0] == consumer][:count]
            if mine:
                return self._live([(i, dict(self.entries.get(i, {}))) for i in mine])
            idle = [i for i in sorted(self.pel, key=entry_id) if (now - self.pel[i][1]) * 1000 >= claim_idle_ms]
            claimed = []
            for i in idle[:count]:
                if i in self.entries:
                    self.pel[i] = (consumer, now)
                    claimed.append((i, dict(self.entries[i])))
                else:  # XAUTOCLAIM drops entries whose message was trimmed from the pending list
                    del self.pel[i]
            if claimed:
                return claimed
            last = entry_id(self.group or "0-0")
            fresh = [i for i in self.entries if entry_id(i) > last][:count]
            for i in fresh:
                self.pel[i] = (consumer, now)
            if fresh:
                self.group = fresh[-1]
            return [(i, dict(self.entries[i])) for i in fresh]

    def _live(self, entries: list[tuple[str, dict[str, str]]]) -> list[tuple[str, dict[str, str]]]:
        gone = [i for i, f in entries if not f]
        self.ack(gone)
        return [(i, f) for i, f in entries if f]

    def ack(self, ids: list[str]) -> None:
        with self._lock:
            for i in ids:
                self.pel.pop(i, None)

    def undelivered(self) -> bool:
        if self.group is None:
            return True
        return entry_id(self.last_id) > entry_id(self.group)

    def pending(self) -> int:
        return len(self.pel)

    def length(self) -> int:
        return len(self.entries)

    def trim(self, above: int) -> None:
        with self._lock:
            if len(self.entries) <= above or self.group is None:
                return
            if self.pel:
                floor = min(entry_id(i) for i in self.pel)
            else:
                ms, seq = entry_id(self.group)
                floor = (ms, seq + 1)
            for i in [i for i in self.entries if entry_id(i) < floor]:
                del self.entries[i]


class MemoryLock:
    """A token lock with a TTL on the store's clock, behaving like redis-py's ``Lock``."""

    def __init__(self, repo: MemoryEngineState, timeout: float) -> None:
        self._repo = repo
        self._timeout = timeout
        self.token = secrets.token_hex(8)

    def _owned(self) -> bool:
        holder = self._repo.lock_holder
        return holder is not None and holder[0] == self.token and holder[1] > self._repo.clock.timestamp()

    def acquire(self, blocking: bool | None = None) -> bool:
        """Never waits (one thread holds the memory store at a time): False when someone holds it."""
        with self._repo.guard:
            holder = self._repo.lock_holder
            if holder is not None and holder[1] > self._repo.clock.timestamp():
                return False
            self._repo.lock_holder = (self.token, self._repo.clock.timestamp() + self._timeout)
            return True

    def reacquire(self) -> bool:
        with self._repo.guard:
            if not self._owned():
                raise NotifierError("cannot reacquire a lock that is no longer owned")
            self._repo.lock_holder = (self.token, self._repo.clock.timestamp() + self._timeout)
            return True

    def release(self) -> None:
        with self._repo.guard:
            if not self._owned():
                raise NotifierError("cannot release a lock that is no longer owned")
            self._repo.lock_holder = None


class MemoryEngineState:
    """The ``EngineStateRepository`` port; ``commit`` acknowledges on the given event stream."""

    def __init__(self, events: MemoryEventStream, clock: Clock, lock: threading.RLock) -> None:
        self.events = events
        self.clock = clock
        self.guard = lock
        self.groups: dict[str, str] = {}
        self.components: dict[str, str] = {}
        self.windows_: dict[str, str] = {}
        self.next_id = 1
        self.version_: int | None = None
        self.journal: list[str] = []
        self.attempt: dict[str, str] = {}
        self.incidents: dict[str, str] = {}
        self.incident_groups_: dict[str, str] = {}
        self.drafts: dict[str, str] = {}
        self.logs: dict[str, list[str]] = {}
        self.lock_holder: tuple[str, float] | None = None

    def version(self) -> str | None:
        return None if self.version_ is None else str(self.version_)

    def load(self) -> EngineState:
        state = EngineState(
            groups={g: Group.from_dict(json.loads(v)) for g, v in self.groups.items()},
            components={c: ComponentFlap.from_dict(json.loads(v)) for c, v in self.components.items()},
            windows={w: Window.from_dict(json.loads(v)) for w, v in self.windows_.items()},
            next_id=self.next_id,
        )
        state.reindex()
        return state

    def commit(
        self, state: EngineState, decisions: list[tuple[str, dict[str, Any]]], journal: list[str],
        ack: list[str], global_cap: int,
    ) -> None:
        writes: list[tuple[dict[str, str], str, str]] = []
        for item in sorted(state.touched):
            kind, _, ident = item.partition(":")
            if kind == "group" and ident in state.groups:
                writes.append((self.groups, ident, json.dumps(state.groups[ident].to_dict())))
            elif kind == "component" and ident in state.components:
                writes.append((self.components, ident, json.dumps(state.components[ident].to_dict())))
            elif kind == "window" and ident in state.windows:
                writes.append((self.windows_, ident, json.dumps(state.windows[ident].to_dict())))
        lines = [(name, json.dumps(data)) for name, data in decisions]
        with self.guard:
            for target, ident, doc in writes:
                target[ident] = doc
            for gid in state.closed:
                self.groups.pop(gid, None)
            self.next_id = state.next_id
            self.version_ = (self.version_ or 0) + 1
            state.touched.clear()
            state.closed.clear()
            for name, line in lines:
                self.logs.setdefault(name, []).append(line)
            if GLOBAL_LOG in self.logs:
                self.logs[GLOBAL_LOG] = self.logs[GLOBAL_LOG][-global_cap:]
            self.journal.extend(journal)
            self.events.ack(ack)

    def save_window(self, window: Window) -> None:
        with self.guard:
            self.windows_[window.id] = json.dumps(window.to_dict())
            self.version_ = (self.version_ or 0) + 1

    def windows(self) -> list[Window]:
        return [Window.from_dict(json.loads(v)) for v in self.windows_.values()]

    def journal_head(self) -> str | None:
        return self.journal[0] if self.journal else None

    def journal_length(self) -> int:
        return len(self.journal)

    def journal_attempt(self) -> dict[str, str]:
        return dict(self.attempt)

    def mark_journal_attempt(self, digest: str, at: float) -> None:
        self.attempt = {"digest": digest, "at": _arg(at)}

    def pop_journal(self) -> None:
        with self.guard:
            if self.journal:
                self.journal.pop(0)
            self.attempt = {}

    def incident_of(self, group: str) -> str | None:
        return self.incidents.get(group)

    def group_of(self, incident_id: str) -> str | None:
        return self.incident_groups_.get(incident_id)

    def incident_groups(self) -> dict[str, str]:
        return dict(self.incident_groups_)

    def link(self, group: str, incident_id: str, draft: tuple[str, str] | None = None) -> None:
        with self.guard:
            self.incidents[group] = incident_id
            self.incident_groups_[incident_id] = group
            if draft is not None:
                self.drafts[draft[0]] = draft[1]

    def unlink(self, group: str, incident_id: str) -> None:
        with self.guard:
            self.incidents.pop(group, None)
            self.incident_groups_.pop(incident_id, None)

    def relink(self, group: str, old_incident: str, new_incident: str) -> None:
        with self.guard:
            self.incidents[group] = new_incident
            self.incident_groups_[new_incident] = group
            self.incident_groups_.pop(old_incident, None)

    def remember_draft(self, ref: str, update_id: str) -> None:
        self.drafts[ref] = update_id

    def draft(self, ref: str) -> str | None:
        return self.drafts.get(ref)

    def record(self, log: str, decision: dict[str, Any]) -> None:
        self.logs.setdefault(log, []).append(json.dumps(decision))

    def decisions(self, log: str) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.logs.get(log, [])]

    def lock(self, timeout: float, wait: float = 0) -> MemoryLock:
        return MemoryLock(self, timeout)


class MemoryStore:
    """The ``IncidentStore`` port in memory, with the ledger, engine state and event stream beside it."""

    def __init__(self, clock: Clock | None = None, prefix: str = "notifier:") -> None:
        self.clock = clock or SystemClock()
        self.prefix = prefix
        self._lock = threading.RLock()
        self.ledger = MemoryLedger(self._lock)
        self.events = MemoryEventStream(self.clock, self._lock)
        self.engine_state = MemoryEngineState(self.events, self.clock, self._lock)
        self._seq: dict[str, int] = {}
        self._incidents: dict[str, str] = {}  # id -> JSON document
        self._created: dict[str, float] = {}
        self._open: set[str] = set()
        self._ops: dict[str, tuple[str, str, float]] = {}  # op id -> (incident id, request fingerprint, expiry)
        self._records: dict[str, tuple[str, float]] = {}  # the API's idempotency records -> (value, expiry)
        self._status: dict[str, str] = {}
        self._history: dict[str, list[str]] = {}

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def next_id(self, kind: str) -> str:
        with self._lock:
            self._seq[kind] = self._seq.get(kind, 0) + 1
            return f"{kind}{self._seq[kind]}"

    def get_incident(self, incident_id: str) -> Incident:
        raw = self._incidents.get(incident_id)
        if raw is None:
            raise NotFound(f"no incident {incident_id!r}; `notifier incident list` shows the ids")
        return Incident.from_dict(json.loads(raw))

    def rows_with_incident(
        self, notice_ids: list[str], incident_id: str
    ) -> tuple[list[LedgerRow | None], Incident | None]:
        raw = self._incidents.get(incident_id)
        return self.ledger.get_many(notice_ids), (Incident.from_dict(json.loads(raw)) if raw is not None else None)

    def save_incident(self, incident: Incident) -> None:
        doc = json.dumps(incident.to_dict(), ensure_ascii=False)
        with self._lock:
            self._put(incident, doc)

    def _put(self, incident: Incident, doc: str) -> None:
        self._incidents[incident.id] = doc
        self._created[incident.id] = incident.created_at.timestamp()
        if incident.is_open:
            self._open.add(incident.id)
        else:
            self._open.discard(incident.id)

    def list_incidents(
        self, kind: str | None = None, open_only: bool = False, limit: int | None = None
    ) -> list[Incident]:
        ids = self._open if open_only else self._created.keys()
        ordered = sorted(ids, key=lambda i: (self._created[i], i), reverse=True)
        out: list[Incident] = []
        for incident_id in ordered:
            incident = self.get_incident(incident_id)
            if kind and incident.kind != kind:
                continue
            if open_only and not incident.is_open:
                continue
            out.append(incident)
            if limit and len(out) >= limit:
                return out
        return out

    def server_id(self) -> str | None:
        return None  # not Redis: a dispatcher publishes after the commit

    def commit_update(
        self, incident_id: str | None, prepare: Callable[[Incident | None], UpdateCommit],
        also_watch: Sequence[str] = (), op: str | None = None,
    ) -> UpdateCommit:
        with self._lock:  # holding the lock is what WATCH/MULTI is to the Redis store: nobody changes it meanwhile
            landed = self.op_commit(op) if op is not None else None
            if landed is not None:  # the op's one commit landed already: replay it (see RedisStore)
                raw = self._incidents.get(landed[0])
                done = Incident.from_dict(json.loads(raw)) if raw is not None else None
                update = done.update_for_op(op) if done is not None else None
                if done is not None and update is not None:
                    return UpdateCommit(done, update, already=True, op_fp=landed[1])
            incident = self.get_incident(incident_id) if incident_id else None
            commit = prepare(incident)
            if commit.already:
                return commit
            doc = json.dumps(commit.incident.to_dict(), ensure_ascii=False)
            changes = [json.dumps(c.to_dict()) for c in commit.changes]
            if commit.op is not None:
                self._ops[commit.op] = (commit.incident.id, commit.op_fp, self.clock.timestamp() + commit.op_ttl)
            if commit.record is not None:  # kept like the Redis store keeps it; nothing here reads it back
                self._records[commit.record[0]] = (commit.record[1], self.clock.timestamp() + commit.op_ttl)
            for change, line in zip(commit.changes, changes, strict=True):
                self._status[change.component_id] = change.status.value
                self._history.setdefault(change.component_id, []).append(line)
            for notice in commit.notices:
                self.ledger.create(notice)
            others = [(o, json.dumps(o.to_dict(), ensure_ascii=False)) for o in commit.also]
            self._put(commit.incident, doc)
            for other, other_doc in others:
                self._put(other, other_doc)
            return commit

    def op_incident(self, op: str) -> str | None:
        found = self.op_commit(op)
        return found[0] if found is not None else None

    def op_commit(self, op: str) -> tuple[str, str] | None:
        found = self._ops.get(op)
        return (found[0], found[1]) if found and found[2] > self.clock.timestamp() else None

    def component_status(self, component_id: str) -> ComponentStatus:
        raw = self._status.get(component_id)
        return ComponentStatus(raw) if raw else ComponentStatus.OPERATIONAL

    def component_statuses(self, component_ids: Iterable[str] | None = None) -> dict[str, ComponentStatus]:
        ids = list(component_ids) if component_ids is not None else sorted(self._status)
        return {c: self.component_status(c) for c in ids}

    def set_component_status(
        self, component_id: str, status: ComponentStatus, at: datetime, incident_id: str | None = None
    ) -> bool:
        with self._lock:
            if self.component_status(component_id) == status:
                return False
            change = ComponentChange(component_id, status, at, incident_id)
            self._status[component_id] = status.value
            self._history.setdefault(component_id, []).append(json.dumps(change.to_dict()))
            return True

    def component_history(self, component_id: str, since: datetime | None = None) -> list[ComponentChange]:
        changes = [ComponentChange.from_dict(json.loads(r)) for r in self._history.get(component_id, [])]
        if since is None:
            return changes
        before = [c for c in changes if c.at < since]
        return before[-1:] + [c for c in changes if c.at >= since]

    def ping(self) -> bool:
        return True
