"""The channel interface: the one thing a new channel implements.

A channel is a class with its facts declared at the top (type name, settings model, length limit,
whether it threads or can re-send safely) and three methods:

- ``render(notice) -> Rendering``: pure; the exact text(s) that would be published;
- ``send(notice, rendering) -> Receipt``: publish; raise ``Transient``/``Permanent``/``OutcomeUnknown``;
- ``reconcile(notice) -> Receipt | None``: after an unknown outcome, find the post by its marker.

Library and HTTP errors are turned into the project's error tree in one function per channel
(conventionally ``classify_error``), never scattered through ``send``.
Channels are registered explicitly in ``notifier/channels/registry.py``; nothing is discovered.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from notifier.config import ChannelSettings
from notifier.domain.model import Notice, Receipt

if TYPE_CHECKING:
    from notifier.channels.progress import ProgressStore
    from notifier.channels.x_budget import BudgetStore
    from notifier.clock import Clock
    from notifier.config import PageSettings
    from notifier.config.settings import SubscribersSettings
    from notifier.statuspage.snapshot import SnapshotReader
    from notifier.store.subscribers import RedisSubscribers
    from notifier.templating import TemplateRenderer


@dataclass(frozen=True)
class Rendering:
    """What a channel will publish for one notice. ``parts`` has one entry per post (a thread)."""

    parts: tuple[str, ...]
    language: str
    info: dict[str, Any] = field(default_factory=dict)  # e.g. {"weighted_lengths": [270, 120]}

    @property
    def text(self) -> str:
        return "\n\n".join(self.parts)


@dataclass
class ChannelContext:
    """What the composition root (``notifier.bootstrap``) hands every channel: only what channels use.

    The shared-state ports are None in pure unit tests; a channel then keeps that state in its own
    process (an in-memory budget, in-memory thread progress) or, for the status page, refuses to send.
    """

    page: PageSettings
    clock: Clock
    templates: TemplateRenderer
    http_timeout: float = 10.0
    key_prefix: str = "notifier:"  # redis.key_prefix: every shared key a channel names starts with it
    budgets: BudgetStore | None = None  # X posting budgets every worker shares
    progress: ProgressStore | None = None  # which parts of a thread are out, shared by every worker
    snapshots: SnapshotReader | None = None  # the status page's input: the store's current state
    task_time_limit: float = 60.0  # delivery.task_time_limit: a long send (e-mail) ends in time
    subscribers: RedisSubscribers | None = None  # e-mail subscribers and each notice's recipients
    mail: SubscribersSettings | None = None  # the relay and the links' secret (e-mail channel)


class Channel(ABC):
    type_name: ClassVar[str]
    settings_model: ClassVar[type[ChannelSettings]] = ChannelSettings
    max_length: ClassVar[int | None] = None
    # True: update n+1 waits until update n is posted here (replies need the parent's id)
    ordered: ClassVar[bool] = False
    # True: sending twice has no second visible effect, so an unknown outcome may simply be re-sent
    idempotent: ClassVar[bool] = False
    # True: ``reconcile`` tells exactly whether the post is out (a complete search, or the receiver's own
    # answer), so a crash right after the 'sending' fence costs a look, never a person's decision or a
    # second post.
    exact_reconcile: bool = False  # per instance where settings decide (webhook: status_url)
    # True: ``deliver`` renders first, then claims and fences in one ledger write (``Ledger.claim_sending``).
    # A crash after that write is reconciled (exactly, or by a person where reconcile cannot look), even
    # if the request had not left: the price of one write instead of two. None: as ``exact_reconcile``.
    fuse_fence: bool | None = None

    @property
    def fuses_fence(self) -> bool:
        return self.exact_reconcile if self.fuse_fence is None else self.fuse_fence

    def __init__(self, name: str, settings: ChannelSettings, context: ChannelContext) -> None:
        self.name = name
        self.settings = settings
        self.context = context

    @property
    def language(self) -> str:
        return self.settings.language or self.context.page.language

    @abstractmethod
    def render(self, notice: Notice) -> Rendering:
        """Pure: the exact text(s) this channel would publish for ``notice``."""

    @abstractmethod
    def send(self, notice: Notice, rendering: Rendering) -> Receipt:
        """Publish ``rendering``. Raise Transient, Permanent or OutcomeUnknown on failure."""

    def reconcile(self, notice: Notice, since: float | None = None) -> Receipt | None:
        """Look for ``notice``'s marker among every post since ``since`` (the row's ``sending_at``).

        None means *provably* not posted: a complete search of that range found nothing. A search that
        cannot be completed (page limit, API error, a timeline that may lag) raises ``ReconcileIncomplete``.
        """
        return None

    def describe(self) -> dict[str, Any]:
        """Settings with secrets redacted, for `notifier config show` and logs."""
        return {"name": self.name, **self.settings.model_dump(mode="json")}

    def __repr__(self) -> str:  # settings' SecretStr fields already print as '**********'
        return f"<{type(self).__name__} {self.name!r}>"
