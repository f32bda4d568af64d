"""The incident engine on a simulated clock: storms, spikes, relapses, budget, approval."""

from __future__ import annotations

from notifier.engine.actions import (
    ApproveDraft,
    OpenIncident,
    PostUpdate,
    ResolveIncident,
    SetComponentStatus,
)
from tests.unit.engine_helpers import ChannelPolicy, Sim


def test_storm_of_thousands_of_alerts_is_one_incident_with_one_post_per_channel():
    sim = Sim()
    for i in range(3000):
        sim.fire(f"disk{i}", group_key='{}:{alertname="DiskFailing"}', component="imap" if i % 2 else "smtp")
    sim.run(600)
    opens = sim.of(OpenIncident)
    assert len(opens) == 1
    assert opens[0].components == {"imap": "major_outage", "smtp": "major_outage"}
    assert len(sim.public("x")) == 1 and len(sim.public("statuspage")) == 1
    assert len(sim.state.groups) == 1
    # per-alert detail is capped; the rest is counted per reason
    assert len(sim.decisions("joined")) == 50
    assert "same source group key x2999" in sim.decisions("opened")[0].message


def test_storm_resolving_gives_one_resolution():
    sim = Sim()
    for i in range(500):
        sim.fire(f"a{i}", group_key="gk")
    sim.run(240)
    for i in range(500):
        sim.resolve(f"a{i}")
    sim.run(400)
    assert [type(a) for a in sim.public()] == [OpenIncident, ResolveIncident]
    assert sim.state.groups == {}
    assert sim.of(SetComponentStatus)[-1].status == "operational"


def test_spike_shorter_than_confirm_delay_posts_nothing():
    sim = Sim({"confirm": {"seconds": 180, "component_status_seconds": 60}})
    for _ in range(4):  # a few spikes, far apart (a busy day)
        sim.fire("load")
        sim.run(20)
        sim.resolve("load")
        sim.run(3 * 3600, step=60)
    assert sim.public() == []
    assert sim.of(SetComponentStatus) == []
    assert (
        sim.decisions("suppressed") and "before the confirm delay" in sim.decisions("suppressed")[0].message
    )
    assert sim.state.groups == {}


def test_confirm_delay_per_channel_status_page_first():
    sim = Sim({"confirm": {"seconds": 300}, "channels": {"statuspage": {"confirm_seconds": 30}}})
    sim.fire("a")
    sim.run(60)
    assert [a.channels for a in sim.public()] == [["statuspage"]]
    sim.run(300)
    assert [a.channels for a in sim.public()] == [["statuspage"], ["x"]]
    assert isinstance(sim.public()[1], PostUpdate) and sim.public()[1].reason == "catch-up"
    assert "told x: the problem has lasted 300s" in sim.decisions("published")[0].message
    # the status page took the component status before any social post
    first_status = sim.actions.index(sim.of(SetComponentStatus)[0])
    assert first_status < sim.actions.index(sim.public()[1])


def test_relapse_within_resolve_delay_keeps_one_incident():
    sim = Sim({"resolve": {"seconds": 300}})
    sim.fire("a")
    sim.run(200)
    sim.resolve("a")
    sim.run(120)
    sim.fire("a")
    sim.run(200)
    sim.resolve("a")
    sim.run(400)
    assert len(sim.of(OpenIncident)) == 1
    assert len(sim.of(ResolveIncident)) == 1
    assert sim.decisions("relapse")


def test_relapse_after_resolve_delay_is_a_new_incident():
    sim = Sim({"resolve": {"seconds": 300}, "flap": {"enabled": False}})
    for _ in range(2):
        sim.fire("a")
        sim.run(200)
        sim.resolve("a")
        sim.run(400)
    assert len(sim.of(OpenIncident)) == 2


def test_update_budget_holds_improvements_but_not_a_newly_affected_component():
    # issue 13: a new component at the same impact level used to wait for the budget ("routine");
    # more affected components is worse, posted once the settle window passed
    sim = Sim({"budget": {"interval_seconds": 900}, "grouping": {"related": "group"}, "settle": {"seconds": 30}})
    sim.fire("a", severity="warning", component="imap")
    sim.run(200)
    assert len(sim.public("x")) == 1
    sim.fire("b", severity="warning", component="smtp")  # same impact, new component: worse
    sim.run(25)
    assert len(sim.public("x")) == 1  # still settling
    sim.run(10)
    assert len(sim.public("x")) == 2
    assert sim.public("x")[1].components == {"imap": "degraded_performance", "smtp": "degraded_performance"}
    sim.fire("c", severity="critical", component="imap")  # worse impact: once settled, not held
    sim.run(35)
    assert len(sim.public("x")) == 3
    sim.resolve("c")
    sim.run(60)
    assert len(sim.public("x")) == 3  # the improvement waits for the budget
    assert "update budget" in sim.decisions("held")[0].message
    sim.run(900)
    assert len(sim.public("x")) == 4  # flushed once the interval passed


def test_approval_draft_then_auto_publish_after_n_minutes():
    channels = {"statuspage": ChannelPolicy(), "x": ChannelPolicy("approve", auto_publish_after_minutes=10)}
    sim = Sim(channels=channels)
    sim.fire("a")
    sim.run(200)
    opened, draft = sim.public()
    assert opened.channels == ["statuspage"] and not opened.draft
    assert draft.channels == ["x"] and draft.draft
    sim.run(9 * 60)
    assert sim.of(ApproveDraft) == []
    sim.run(60)
    assert [a.ref for a in sim.of(ApproveDraft)] == [draft.ref]
    assert "auto-published" in [d.kind for d in sim.decisions()]


def test_approval_without_auto_publish_waits_for_a_person():
    sim = Sim(channels={"x": ChannelPolicy("approve")})
    sim.fire("a")
    sim.run(3 * 3600, step=60)
    (opened,) = sim.public()
    assert opened.draft and opened.channels == ["x"]
    assert sim.of(ApproveDraft) == []


def test_routing_first_match_wins_vs_all_matches():
    routes = [
        {"name": "storage", "match": {"team": "storage"}, "components": ["imap"]},
        {
            "name": "mail",
            "match_re": {"service": "mail|smtp"},
            "components": ["smtp"],
            "status": "degraded_performance",
        },
    ]
    first = Sim({"routing": {"mode": "first", "routes": routes}})
    first.fire("a", team="storage", service="mail")
    every = Sim({"routing": {"mode": "all", "routes": routes}})
    every.fire("a", team="storage", service="mail")
    first.run(200)
    every.run(200)
    assert first.of(OpenIncident)[0].components == {"imap": "major_outage"}
    assert every.of(OpenIncident)[0].components == {"imap": "major_outage", "smtp": "degraded_performance"}
    assert "route storage (first match)" in first.decisions("joined")[0].message


def test_unrouted_alert_is_logged_and_ignored():
    sim = Sim()
    sim.fire("a", team="nobody")
    sim.run(600)
    assert sim.public() == []
    (decision,) = sim.decisions("unrouted")
    assert "team=nobody" in decision.message


def test_unrelated_components_open_separate_incidents():
    sim = Sim()
    sim.fire("a", component="imap")
    sim.fire("b", component="dns")
    sim.fire("c", component="smtp")  # related to imap: same component group "Mail"
    sim.run(200)
    opens = sim.of(OpenIncident)
    assert sorted(tuple(sorted(o.components)) for o in opens) == [("dns",), ("imap", "smtp")]
