"""Issue 13's rules one at a time, on a fake clock: settle, staff auto-resolve, adoption, hidden components,
and the settings that go with them (validated with their key paths)."""

from __future__ import annotations

import pytest

from notifier.config_loader import parse_settings
from notifier.engine.actions import OpenIncident, PostUpdate, ResolveIncident, SetComponentStatus
from notifier.engine.core import ComponentInfo, Engine
from notifier.engine.settings import parse_engine
from notifier.errors import ConfigError
from tests.unit.engine_helpers import COMPONENTS, ChannelPolicy, Sim


def test_a_state_that_keeps_changing_is_posted_after_max_wait():
    sim = Sim({"settle": {"seconds": 30, "max_wait_seconds": 120}, "confirm": {"seconds": 60}})
    comps = ["imap", "smtp"]
    for i in range(30):  # a change every 20 s, never 30 s of calm
        sim.fire(f"a{i % 2}", severity="critical" if i % 2 else "warning", component=comps[(i // 2) % 2])
        sim.run(20)
        if sim.of(OpenIncident):
            break
    (opened,) = sim.of(OpenIncident)
    assert "state unchanged" in sim.decisions("opened")[0].message
    # not before max_wait after the changes began, and well before the storm ended
    first_fire = sim.decisions("joined")[0].at
    assert sim.decisions("opened")[0].at - first_fire >= 120
    assert opened.components


def test_staff_auto_resolve_after_the_longer_delay():
    sim = Sim({"resolve": {"seconds": 300, "staff_auto_resolve_seconds": 3600}, "settle": {"seconds": 30}})
    sim.fire("a")
    sim.run(200)
    (opened,) = sim.of(OpenIncident)
    sim.engine.note_staff(sim.state, opened.group, "identified", sim.now())
    sim.resolve("a")
    sim.run(3000, step=60)
    assert sim.of(ResolveIncident) == []
    sim.run(700, step=60)
    assert len(sim.of(ResolveIncident)) == 1


def test_a_staff_incident_takes_over_a_pending_group():
    sim = Sim()
    sim.fire("a", component="imap")
    sim.run(60)  # not posted yet: within the confirm delay
    gid, decisions = sim.engine.adopt(sim.state, "inc7", {"imap": "major_outage"}, "investigating", sim.now())
    assert decisions[0].kind == "joined-staff" and "inc7" in decisions[0].message
    sim.run(600)
    assert sim.of(OpenIncident) == []  # no second incident
    assert sim.state.groups[gid].incident_id == "inc7"


def test_hidden_component_maps_onto_public_ones_with_the_milder_status():
    comps = [*COMPONENTS, ComponentInfo("storage", "Storage", None, hidden=True,
                                        affects={"imap": "major_outage", "webmail": "partial_outage"})]
    engine = Engine(parse_engine({"routing": {"routes": [{"match": {"team": "storage"}, "components": ["storage"]}]}}),
                    comps, {"x": ChannelPolicy()})
    sim = Sim()
    sim.engine = engine
    sim.fire("s", severity="warning", team="storage")  # storage only degraded: so are the others
    sim.run(240)
    (opened,) = sim.of(OpenIncident)
    assert opened.components == {"imap": "degraded_performance", "webmail": "degraded_performance"}
    assert "Storage" not in opened.name and "Storage" not in opened.body["en"]
    assert {a.component for a in sim.of(SetComponentStatus)} == {"imap", "webmail"}
    # an IMAP probe alert joins the storage group: same (affected) component
    sim.fire("p", component="imap")
    assert "same component: imap" in sim.decisions("joined")[-1].message
    assert len(sim.state.groups) == 1


def test_change_post_says_what_works_again_in_both_languages():
    sim = Sim({"settle": {"seconds": 30}, "budget": {"interval_seconds": 0}})
    sim.fire("a", component="imap")
    sim.fire("b", component="smtp")
    sim.run(240)
    sim.resolve("b", component="smtp")
    sim.run(40)
    (change,) = [p for p in sim.of(PostUpdate) if p.reason == "change" and "x" in p.channels]
    assert change.status == "investigating" and change.components == {"imap": "major_outage"}
    assert "Working again: SMTP" in change.body["en"] and "Wieder in Betrieb: SMTP" in change.body["de"]


BASE = """
components:
  - {id: imap, name: IMAP}
  - {id: storage, name: Storage, hidden: true, affects: {imap: major_outage, nope: major_outage}}
  - {id: web, name: Web, affects: {imap: partial_outage}}
channels:
  outbox: {type: outbox, path: var/outbox.jsonl}
"""


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_settings(text, "test", env={})
    return [f"{p.path}: {p.message}" for p in info.value.problems]


def test_hidden_affects_are_checked_with_their_key_paths():
    found = _problems(BASE)
    assert any(p.startswith("components.1.affects.nope: 'nope' is not a public component") for p in found), found
    assert any(p.startswith("components.2.affects.imap: only a hidden component") for p in found), found


def test_tick_and_heartbeat_are_validated_against_each_other():
    text = """
components: [{id: imap, name: IMAP}]
channels:
  outbox: {type: outbox, path: var/outbox.jsonl}
page: {heartbeat_seconds: 2, stale_after_minutes: 1}
engine: {tick_seconds: 40, settle: {seconds: 30}}
"""
    found = _problems(text)
    assert any(p.startswith("engine.tick_seconds: 40s is longer than engine.settle.seconds") for p in found), found
    assert any(p.startswith("page.heartbeat_seconds: 2s is shorter than engine.tick_seconds") for p in found), found
    ok = parse_settings(text.replace("heartbeat_seconds: 2", "heartbeat_seconds: 30").replace("tick_seconds: 40",
                                                                                              "tick_seconds: 10"),
                        "test", env={})
    assert ok.page.heartbeat() == 30


def test_beat_schedule_uses_the_settings():
    from workers.setup import make_celery

    settings = parse_settings("""
components: [{id: imap, name: IMAP}]
channels:
  outbox: {type: outbox, path: var/outbox.jsonl}
page: {heartbeat_seconds: 45}
engine: {tick_seconds: 3}
""", "test", env={})
    schedule = make_celery(settings, "redis://127.0.0.1:1/0").conf.beat_schedule
    assert schedule["engine-tick"]["schedule"] == 3
    assert schedule["statuspage-heartbeat"]["schedule"] == 45
