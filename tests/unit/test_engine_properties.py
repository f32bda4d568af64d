"""Property tests: whatever alerts arrive, in whatever order, the engine keeps its promises."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.domain.model import ComponentStatus, Impact
from notifier.engine.actions import Decision, OpenIncident, PostUpdate, ResolveIncident
from tests.unit.engine_helpers import ChannelPolicy, Sim

BUDGET = 600

fire = st.tuples(
    st.just("fire"),
    st.integers(0, 7),
    st.sampled_from(["imap", "smtp", "webmail", "dns"]),
    st.sampled_from([None, "k1", "k2"]),
    st.sampled_from(["critical", "warning", "error"]),
)
resolve = st.tuples(st.just("resolve"), st.integers(0, 7))
wait = st.tuples(st.just("wait"), st.integers(1, 900))
ops = st.lists(st.one_of(fire, resolve, wait), max_size=60)


def play(sequence: list[tuple], channels: dict[str, ChannelPolicy] | None = None) -> tuple[Sim, list[tuple]]:
    sim = Sim({"budget": {"interval_seconds": BUDGET}}, channels=channels)
    timeline: list[tuple] = []  # (time, action)
    labels: dict[int, str] = {}
    for op in sequence:
        before = len(sim.actions)
        if op[0] == "fire":
            _, fp, comp, key, sev = op
            labels[fp] = comp
            sim.fire(f"a{fp}", group_key=key, severity=sev, component=comp)
        elif op[0] == "resolve":
            sim.resolve(f"a{op[1]}", component=labels.get(op[1], "imap"))
        else:
            step = 10.0
            left = float(op[1])
            while left > 0:
                sim.clock.advance(min(step, left))
                left -= step
                before_tick = len(sim.actions)
                sim.tick()
                timeline.extend((sim.now(), a) for a in sim.actions[before_tick:])
            continue
        timeline.extend((sim.now(), a) for a in sim.actions[before:])
    sim.run(4 * 3600, step=60)  # let every timer run out
    return sim, timeline


@settings(max_examples=150, deadline=None)
@given(ops)
def test_never_more_than_one_open_incident_per_group(sequence):
    sim, _ = play(sequence)
    opened: dict[str, int] = {}
    for action in sim.actions:
        if isinstance(action, OpenIncident):
            opened[action.group] = opened.get(action.group, 0) + 1
            assert opened[action.group] == 1, "a group opened two incidents"
        if isinstance(action, ResolveIncident):
            assert opened.get(action.group) == 1, "resolved an incident that was never opened"
    # every alert is in at most one group, and the indexes agree with the documents
    seen: set[str] = set()
    for group in sim.state.groups.values():
        assert not (seen & set(group.alerts))
        seen |= set(group.alerts)
    assert set(sim.state.alert_index) == seen
    # after every timer ran out with no alert firing, everything that opened was resolved
    if not seen:
        resolved = {a.group for a in sim.actions if isinstance(a, ResolveIncident)}
        assert resolved == set(opened)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_routine_updates_respect_the_budget(sequence):
    _, timeline = play(sequence)
    # group -> (time, impact, components) of the last counted public update
    last: dict[str, tuple[float, str, dict[str, str]]] = {}
    for at, action in timeline:
        if isinstance(action, OpenIncident):
            last[action.group] = (at, action.impact, action.components)
        elif isinstance(action, PostUpdate) and action.reason in ("change", "monitoring"):
            prev_at, prev_impact, prev_comps = last[action.group]
            # worse (issue 13): a higher impact, or a component newly or more severely affected
            worse = Impact(action.impact).rank > Impact(prev_impact).rank or any(
                c not in prev_comps or ComponentStatus(s).severity > ComponentStatus(prev_comps[c]).severity
                for c, s in action.components.items()
            )
            assert worse or at - prev_at >= BUDGET or at == prev_at, (at - prev_at, action)
            last[action.group] = (at, action.impact, action.components)


@settings(max_examples=80, deadline=None)
@given(ops)
def test_approve_channels_only_ever_get_drafts(sequence):
    sim, _ = play(sequence, channels={"page": ChannelPolicy(), "x": ChannelPolicy("approve", 10)})
    for action in sim.actions:
        if isinstance(action, OpenIncident | PostUpdate) and "x" in action.channels:
            assert action.draft and action.channels == ["x"]


toggles = st.lists(st.tuples(st.integers(0, 2), st.integers(1, 400), st.integers(1, 400)), min_size=1, max_size=40)


@settings(max_examples=100, deadline=None)
@given(toggles)
def test_at_most_one_intermittent_message_per_incident(sequence):
    sim = Sim()
    for fp, down, up in sequence:
        sim.fire(f"a{fp}", group_key="svc", component="imap")
        sim.run(down, step=10)
        sim.resolve(f"a{fp}", component="imap")
        sim.run(up, step=10)
    sim.run(3 * 3600, step=60)
    per_group: dict[str, int] = {}
    for action in sim.actions:
        intermittent = (isinstance(action, PostUpdate) and action.reason == "intermittent") or (
            isinstance(action, OpenIncident) and "intermittent" in action.body["en"]
        )
        if intermittent and "x" in action.channels:
            per_group[action.group] = per_group.get(action.group, 0) + 1
    assert all(n == 1 for n in per_group.values()), per_group
    # and while a group was flapping, no per-transition change post reached a channel
    flapping: set[str] = set()
    for action in sim.actions:
        if isinstance(action, Decision) and action.kind == "flapping" and action.group:
            flapping.add(action.group)
        elif isinstance(action, Decision) and action.kind == "flapping-ended" and action.group:
            flapping.discard(action.group)
        elif isinstance(action, PostUpdate) and action.reason == "change":
            assert action.group not in flapping
