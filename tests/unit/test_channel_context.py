"""Channels get narrow things injected (a key prefix, shared-state stores, a snapshot reader), never the
whole Settings or a Redis handle; without the stores they keep their state in their own process."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from notifier.channels.base import ChannelContext
from notifier.channels.progress import ProgressStore
from notifier.channels.statuspage import StatuspageChannel, StatuspageSettings
from notifier.channels.x import XChannel, XSettings
from notifier.channels.x_budget import BudgetStore, LocalBudget
from notifier.clock import FakeClock
from notifier.errors import Permanent
from notifier.statuspage.snapshot import Snapshot
from notifier.templating import TemplateRenderer
from tests.fakes.statuspage_model import NOW, sample_snapshot


class RecordingReader:
    """A hand-written SnapshotReader: hands out one snapshot and remembers who asked."""

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap
        self.asked: list[str | None] = []

    def read(self, channel: str | None = None) -> Snapshot:
        self.asked.append(channel)
        return self.snap


class NoRedis:
    """Stands in for a Redis client where only the key naming is under test (nothing is sent)."""

    def register_script(self, script: str) -> object:
        return object()


def _context(**kw: object) -> ChannelContext:
    snap = sample_snapshot()
    return ChannelContext(page=snap.page, clock=FakeClock(NOW), templates=TemplateRenderer(), **kw)  # type: ignore[arg-type]


def _x(context: ChannelContext) -> XChannel:
    return XChannel("x", XSettings(type="x", user_token=SecretStr("token")), context)


def test_x_without_a_budget_store_keeps_its_budget_in_this_process() -> None:
    chan = _x(_context())
    assert isinstance(chan.budget, LocalBudget)
    assert chan.progress.redis is None and chan.progress.key("n1") == "notifier:progress:x:x:n1"


def test_x_takes_its_budget_and_progress_from_the_stores_under_their_prefix() -> None:
    redis = NoRedis()
    chan = _x(_context(key_prefix="site-a:", budgets=BudgetStore(redis, "site-a:"),
                       progress=ProgressStore(redis, "site-a:")))
    assert not isinstance(chan.budget, LocalBudget) and chan.budget.key == "site-a:x:x:budget"
    assert chan.progress.redis is redis and chan.progress.key("n1") == "site-a:progress:x:x:n1"


def test_the_statuspage_channel_reads_its_own_view_from_the_reader(tmp_path: Path) -> None:
    snap = sample_snapshot()
    reader = RecordingReader(snap)
    settings = StatuspageSettings(type="statuspage", target="directory", path=str(tmp_path / "site"))
    chan = StatuspageChannel("page", settings, _context(snapshots=reader))
    assert chan.snapshot() is snap and reader.asked == ["page"]


def test_the_statuspage_channel_without_a_reader_refuses_and_says_how_to_build_it(tmp_path: Path) -> None:
    settings = StatuspageSettings(type="statuspage", target="directory", path=str(tmp_path / "site"))
    chan = StatuspageChannel("page", settings, _context())
    with pytest.raises(Permanent, match="snapshot reader.*notifier.bootstrap.build"):
        chan.snapshot()
