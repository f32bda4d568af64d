"""The step context the engine's modules share: the catalog's view of components and channels, and what a
step marks for saving."""

from __future__ import annotations

import pytest

from notifier.engine.actions import Decision, SetComponentStatus
from notifier.engine.context import Catalog, ChannelPolicy, ComponentInfo, Step
from notifier.engine.settings import parse_engine
from notifier.engine.state import EngineState, Group

CATALOG = Catalog(
    [
        ComponentInfo("imap", "IMAP", "Mail"),
        ComponentInfo("webmail", "Webmail", "Web"),
        ComponentInfo(
            "storage", "Storage", hidden=True, affects={"imap": "degraded_performance", "webmail": "major_outage"}
        ),
    ],
    {"statuspage": ChannelPolicy(), "x": ChannelPolicy("approve"), "fb": ChannelPolicy("approve", 5)},
)


@pytest.mark.parametrize(
    ("comps", "shown"),
    [
        (["imap"], ["imap"]),
        (["storage"], ["imap", "webmail"]),  # a hidden component shows on what it affects
        (["storage", "imap"], ["imap", "webmail"]),
        (["unknown"], ["unknown"]),
        ([], []),
    ],
)
def test_catalog_public_components(comps: list[str], shown: list[str]) -> None:
    assert CATALOG.public(comps) == shown


def test_catalog_splits_channels_by_approval_in_their_order() -> None:
    assert CATALOG.split(["fb", "statuspage", "x"]) == (["statuspage"], ["fb", "x"])
    assert CATALOG.split([]) == ([], [])


def test_catalog_component_groups_skip_unknown_and_ungrouped() -> None:
    assert CATALOG.component_groups(["imap", "webmail", "storage", "unknown"]) == {"Mail", "Web"}


def test_step_stamps_decisions_and_marks_the_groups_its_actions_name() -> None:
    state = EngineState()
    state.groups["g1"] = Group(id="g1", key="k", created=0.0, last_alert_at=0.0)
    step = Step(parse_engine({}), CATALOG, state, now=42.0)
    step.decide("g1", "held", "waiting", alert="am:a")
    step.decide("g9", "closed", "no such group any more")  # a closed group is not saved again
    step.emit(SetComponentStatus("imap", "operational"))
    step.touch("window", "w1")
    out = step.finish()
    assert out[0] == Decision("g1", 42.0, "held", "waiting", alert="am:a")
    assert len(out) == 3
    assert state.touched == {"group:g1", "window:w1"}
