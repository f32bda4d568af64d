"""The project's own error tree. Library errors are translated into it at one boundary per adapter.

    NotifierError
    ├── ConfigError            bad configuration; carries every problem with its key path
    ├── UsageError             bad input from a person (CLI, API): unknown component, empty message
    ├── StoreUnavailable       Redis could not be reached (its URL is shown with the password masked)
    │   └── NotReplicated      a write on the master that too few replicas confirmed (WAIT): not acknowledged
    └── DeliveryError          raised by a channel's send/reconcile
        ├── Transient          provably did not take effect; retry after ``retry_after`` seconds (with
        │                      ``grows``: at least that long, the wait doubling per attempt)
        ├── Permanent          will not succeed without a person fixing something (``reason`` says what)
        └── OutcomeUnknown     the request may have reached the channel; reconcile before any retry
            └── ReconcileIncomplete  a reconcile could not search the whole range: still unknown, look later
"""

from __future__ import annotations

from dataclasses import dataclass


class NotifierError(Exception):
    """Base of every error this project raises on purpose."""

    exit_code = 1


@dataclass(frozen=True)
class ConfigProblem:
    path: str  # dotted key path, e.g. "channels.chatops.url"
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.path}" + (f" (line {self.line})" if self.line else "")
        return f"{where}: {self.message}"


class ConfigError(NotifierError):
    exit_code = 78  # EX_CONFIG

    def __init__(self, problems: list[ConfigProblem], source: str = "config") -> None:
        self.problems = problems
        self.source = source
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s)\n{lines}")


class UsageError(NotifierError):
    exit_code = 64  # EX_USAGE


class NotFound(UsageError):
    exit_code = 66  # EX_NOINPUT


class StoreUnavailable(NotifierError):
    exit_code = 69  # EX_UNAVAILABLE


class NotReplicated(StoreUnavailable):
    """The write is on the master, but fewer than ``redis.min_replicas`` replicas confirmed it within
    ``redis.wait_timeout_ms``: not acknowledged (the API answers 503 with Retry-After; a delivery whose
    'sending' fence falls short sends nothing and comes back in seconds). Every write behind it was one
    MULTI or one script, so it is whole on the master or (after a failover that lost it) wholly absent;
    the client's retry finds it (a duplicate, the same Idempotency-Key) or makes it. ``retry_after``:
    when the ledger has made the notice due again (a fence that fell short), else None."""

    retry_after: float | None = None


class DeliveryError(NotifierError):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class Transient(DeliveryError):
    """Did not take effect (connection refused, 429, a documented transient API code).

    ``retry_after`` is when it will work (a rate limit's reset: retry then, not later) unless ``grows``:
    then it is only the least wait (a refusal's Retry-After, a fallback for a 429 without a reset), and
    the row's retries still grow exponentially from it, so a channel refusing everything gets about one
    request per notice per backoff step.
    """

    def __init__(self, reason: str, retry_after: float | None = None, *, grows: bool = False) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        self.grows = grows


class Permanent(DeliveryError):
    """Will not work until a person acts; ``reason`` names what to fix."""


class OutcomeUnknown(DeliveryError):
    """The request may have taken effect (timeout after sending, 5xx): reconcile, never re-post blind."""


class DuplicateRefused(OutcomeUnknown):
    """The platform refused the post as duplicate content and the post could not be looked up. The
    refusal is evidence that it is out there: the row is marked posted-unverified, never re-sent."""


class CannotReconcile(DeliveryError):
    """The channel has no way to look up whether a post exists; a person must decide (retry --force)."""


class ReconcileIncomplete(OutcomeUnknown):
    """Reconcile could not cover the whole time range since the send (page limit, API error, a lagging
    timeline): the post may exist. The row stays unknown and is looked at again after ``retry_after``."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
