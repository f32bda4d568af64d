"""The incident engine's state in Redis: its documents, journal, maps, decision logs and run lock.

Keys, under ``redis.key_prefix``:

    engine:groups               hash  group id -> JSON (one document per group)
    engine:components           hash  component id -> JSON (flap history)
    engine:windows              hash  maintenance id -> JSON
    engine:meta                 hash  next_id, version (bumped by every commit: cached states compare it)
    engine:journal              list  actions decided but not yet applied (JSON)
    engine:journal-attempt      hash  digest, at: the journal head an application was started for
    engine:incidents            hash  group id -> incident id
    engine:incident-groups      hash  incident id -> group id
    engine:drafts               hash  draft ref -> update id
    engine:decisions:<id>       list  decision log of a group, or of a maintenance (JSON lines)
    engine:decisions:_global    list  decisions tied to no group (unrouted alerts), capped
    engine:lock                 the lock every run holds, so two workers never decide twice

``commit`` is the one MULTI/EXEC of an engine run: the touched documents, the decisions, the journal's
new actions and the XACK of the events that were decided on (``store/events.py``) go together.
"""

from __future__ import annotations

import json
from typing import Any

from notifier.engine.state import ComponentFlap, EngineState, Group, Window
from notifier.ports import GLOBAL_LOG
from notifier.store.events import CONSUMER_GROUP, stream_key


class RedisEngineState:
    """The ``EngineStateRepository`` port on Redis hashes and lists."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.redis: Any = client
        self.prefix = prefix

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(("engine", *parts))

    # ---- documents -------------------------------------------------------------------------------
    def version(self) -> str | None:
        return self.redis.hget(self.key("meta"), "version")

    def load(self) -> EngineState:
        r = self.redis
        state = EngineState(
            groups={g: Group.from_dict(json.loads(v)) for g, v in r.hgetall(self.key("groups")).items()},
            components={
                c: ComponentFlap.from_dict(json.loads(v)) for c, v in r.hgetall(self.key("components")).items()
            },
            windows={w: Window.from_dict(json.loads(v)) for w, v in r.hgetall(self.key("windows")).items()},
            next_id=int(r.hget(self.key("meta"), "next_id") or 1),
        )
        state.reindex()
        return state

    def commit(
        self, state: EngineState, decisions: list[tuple[str, dict[str, Any]]], journal: list[str],
        ack: list[str], global_cap: int,
    ) -> None:
        """One transaction: the touched documents, decision log lines, journal entries and event acks."""
        with self.redis.pipeline(transaction=True) as pipe:
            for item in sorted(state.touched):
                kind, _, ident = item.partition(":")
                if kind == "group" and ident in state.groups:
                    pipe.hset(self.key("groups"), ident, json.dumps(state.groups[ident].to_dict()))
                elif kind == "component" and ident in state.components:
                    pipe.hset(self.key("components"), ident, json.dumps(state.components[ident].to_dict()))
                elif kind == "window" and ident in state.windows:
                    pipe.hset(self.key("windows"), ident, json.dumps(state.windows[ident].to_dict()))
            for gid in state.closed:
                pipe.hdel(self.key("groups"), gid)
            pipe.hset(self.key("meta"), "next_id", state.next_id)
            pipe.hincrby(self.key("meta"), "version", 1)
            state.touched.clear()
            state.closed.clear()
            for name, data in decisions:
                pipe.rpush(self.key("decisions", name), json.dumps(data))
            pipe.ltrim(self.key("decisions", GLOBAL_LOG), -global_cap, -1)
            for entry in journal:
                pipe.rpush(self.key("journal"), entry)
            if ack:
                pipe.xack(stream_key(self.prefix), CONSUMER_GROUP, *ack)
            pipe.execute()

    def save_window(self, window: Window) -> None:
        with self.redis.pipeline() as pipe:
            pipe.hset(self.key("windows"), window.id, json.dumps(window.to_dict()))
            pipe.hincrby(self.key("meta"), "version", 1)  # invalidates cached states
            pipe.execute()

    def windows(self) -> list[Window]:
        return [Window.from_dict(json.loads(v)) for v in self.redis.hgetall(self.key("windows")).values()]

    # ---- journal ---------------------------------------------------------------------------------
    def journal_head(self) -> str | None:
        return self.redis.lindex(self.key("journal"), 0)

    def journal_length(self) -> int:
        return int(self.redis.llen(self.key("journal")))

    def journal_attempt(self) -> dict[str, str]:
        return dict(self.redis.hgetall(self.key("journal-attempt")))

    def mark_journal_attempt(self, digest: str, at: float) -> None:
        self.redis.hset(self.key("journal-attempt"), mapping={"digest": digest, "at": at})

    def pop_journal(self) -> None:
        with self.redis.pipeline() as pipe:
            pipe.lpop(self.key("journal"))
            pipe.delete(self.key("journal-attempt"))
            pipe.execute()

    # ---- incident <-> group maps and drafts --------------------------------------------------------
    def incident_of(self, group: str) -> str | None:
        return self.redis.hget(self.key("incidents"), group)

    def group_of(self, incident_id: str) -> str | None:
        return self.redis.hget(self.key("incident-groups"), incident_id)

    def incident_groups(self) -> dict[str, str]:
        return dict(self.redis.hgetall(self.key("incident-groups")))

    def link(self, group: str, incident_id: str, draft: tuple[str, str] | None = None) -> None:
        """Map a group and its incident both ways (and a draft ref to its update), in one transaction."""
        with self.redis.pipeline() as pipe:
            pipe.hset(self.key("incidents"), group, incident_id)
            pipe.hset(self.key("incident-groups"), incident_id, group)
            if draft is not None:
                pipe.hset(self.key("drafts"), *draft)
            pipe.execute()

    def unlink(self, group: str, incident_id: str) -> None:
        with self.redis.pipeline() as pipe:
            pipe.hdel(self.key("incidents"), group)
            pipe.hdel(self.key("incident-groups"), incident_id)
            pipe.execute()

    def relink(self, group: str, old_incident: str, new_incident: str) -> None:
        """The group now stands for ``new_incident``; ``old_incident`` maps to no group."""
        with self.redis.pipeline() as pipe:
            pipe.hset(self.key("incidents"), group, new_incident)
            pipe.hset(self.key("incident-groups"), new_incident, group)
            pipe.hdel(self.key("incident-groups"), old_incident)
            pipe.execute()

    def remember_draft(self, ref: str, update_id: str) -> None:
        self.redis.hset(self.key("drafts"), ref, update_id)

    def draft(self, ref: str) -> str | None:
        return self.redis.hget(self.key("drafts"), ref)

    # ---- decision logs and lock ------------------------------------------------------------------
    def record(self, log: str, decision: dict[str, Any]) -> None:
        self.redis.rpush(self.key("decisions", log), json.dumps(decision))

    def decisions(self, log: str) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.redis.lrange(self.key("decisions", log), 0, -1)]

    def lock(self, timeout: float, wait: float = 0) -> Any:
        """redis-py's token lock: ``acquire(blocking=)``, ``reacquire()``, ``release()``."""
        return self.redis.lock(self.key("lock"), timeout=timeout, blocking_timeout=wait)
