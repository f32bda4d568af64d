"""Flap damping and maintenance windows on a simulated clock."""

from __future__ import annotations

from notifier.engine import flap
from notifier.engine.actions import MaintenanceUpdate, OpenIncident, PostUpdate, ResolveIncident
from notifier.engine.settings import FlapSettings
from notifier.engine.state import ComponentFlap, Window
from tests.unit.engine_helpers import Sim


def _toggle(sim: Sim, times: int, up: float, down: float, fp: str = "a") -> None:
    for _ in range(times):
        sim.fire(fp)
        sim.run(down)
        sim.resolve(fp)
        sim.run(up)


def test_flap_score_weights_recent_changes_more_and_forgets_old_ones():
    settings = FlapSettings()
    assert flap.score([], 0, settings) == 0
    assert flap.score([0.0] * 20, 0, settings) == 100.0
    one = flap.score([100.0], 100, settings)
    assert one == 6.0  # the newest slot weighs 1.2 of 20
    assert flap.score([100.0], 100 + settings.window_seconds + 1, settings) == 0


def test_flap_hysteresis():
    settings = FlapSettings(high=40, low=20)
    comp = ComponentFlap("imap")
    started = [flap.observe(comp, i % 2 == 0, float(i), settings) for i in range(8)]
    assert started[-1] is True and comp.flapping
    # falls back only below low, not merely below high
    assert flap.observe(comp, None, 3600 + 3.5, settings) is None and comp.flapping
    assert flap.observe(comp, None, 3600 + 8, settings) is False and not comp.flapping


def test_flapping_service_gives_one_intermittent_update_not_a_post_per_transition():
    sim = Sim({"confirm": {"seconds": 180}, "resolve": {"seconds": 300}})
    _toggle(sim, 3, up=60, down=240)  # long enough to be confirmed: opens an incident
    assert len(sim.of(OpenIncident)) == 1
    _toggle(sim, 20, up=60, down=60)
    updates = [a for a in sim.of(PostUpdate) if "x" in a.channels]
    intermittent = [u for u in updates if u.reason == "intermittent"]
    assert len(intermittent) == 1
    assert "intermittent" in intermittent[0].body["en"]
    assert updates == intermittent  # no per-transition posts
    assert sim.of(ResolveIncident) == []  # never resolved while flapping
    assert sim.decisions("flapping")
    # once stable, the score decays below low and the incident resolves, once
    sim.run(2 * 3600, step=60)
    assert len(sim.of(ResolveIncident)) == 1
    assert sim.decisions("flapping-ended")


def test_flapping_short_spikes_open_one_intermittent_incident():
    sim = Sim()
    _toggle(sim, 10, up=30, down=10)  # each spike far shorter than the confirm delay
    opens = sim.of(OpenIncident)
    assert len(opens) == 1 and "intermittent" in opens[0].body["en"]
    assert len(sim.public("x")) == 1


def _window(sim: Sim, start: float, end: float, comps: list[str], announce: list[str]) -> Window:
    win = Window("mnt1", "Storage upgrade", comps, sim.now() + start, sim.now() + end, announce)
    sim.state.windows[win.id] = win
    return win


def test_maintenance_suppresses_alerts_and_moves_components():
    sim = Sim()
    _window(sim, 60, 3600, ["imap"], ["start", "end"])
    sim.run(120)
    (start,) = sim.of(MaintenanceUpdate)
    assert start.status == "in_progress" and start.components == {"imap": "under_maintenance"}
    for i in range(100):
        sim.fire(f"a{i}", component="imap")
    sim.run(1200)
    for i in range(100):
        sim.resolve(f"a{i}")
    sim.run(3000)
    assert sim.public() == []
    assert sim.decisions("maintenance")
    end = sim.of(MaintenanceUpdate)[-1]
    assert end.status == "completed" and end.components == {"imap": "operational"} and end.channels is None


def test_maintenance_reminder_goes_out_before_start():
    sim = Sim({"maintenance": {"remind_before_minutes": 30}})
    _window(sim, 3600, 7200, ["imap"], ["before"])
    sim.run(1700, step=60)
    assert sim.of(MaintenanceUpdate) == []
    sim.run(200, step=60)
    (reminder,) = sim.of(MaintenanceUpdate)
    assert reminder.status == "scheduled" and reminder.channels is None
    sim.run(1800, step=60)
    assert sim.of(MaintenanceUpdate)[-1].channels == []  # start not announced: status page record only


def test_component_still_down_when_window_ends_opens_a_real_incident():
    sim = Sim()
    _window(sim, 0, 1800, ["imap"], [])
    sim.run(10)
    sim.fire("a", component="imap")
    sim.run(1700)
    assert sim.of(OpenIncident) == []
    sim.run(200)
    (opened,) = sim.of(OpenIncident)
    assert opened.components == {"imap": "major_outage"}
    assert sim.of(MaintenanceUpdate)[-1].components == {}  # imap is not declared operational
    assert any("still down" in d.message for d in sim.decisions("maintenance"))


def test_maintenance_only_covers_its_components():
    sim = Sim()
    _window(sim, 0, 7200, ["imap"], [])
    sim.run(10)
    sim.fire("a", component="imap")
    sim.fire("b", component="dns")
    sim.run(300)
    (opened,) = sim.of(OpenIncident)
    assert opened.components == {"dns": "major_outage"}
