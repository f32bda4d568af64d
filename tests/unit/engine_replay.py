"""A realistic outage day, replayed through the pure engine core on a fake clock (issue 13).

The day, in UTC (times are offsets from a midnight computed from the FakeClock, never literals):

    01:00-03:00  planned maintenance of Webmail; Webmail's probe fails 01:10-01:40 during it
    09:12, 10:03 latency spikes (SMTP 40 s, Webmail 25 s)
    11:00        the storage cluster (internal: ``hidden``) fails; it takes IMAP, POP3 and Webmail with it,
                 and their probes fire over the next 40 s
    11:20        the fallback storage takes over: storage alerts clear, POP3 and Webmail recover over 14 s;
                 IMAP stays down (its index is rebuilt)
    11:30        a relapse: the fallback fails as well; POP3, Webmail, SMTP, Homepage and Calendar go down
                 together (12 s burst)
    12:00        staff: "identified", a storage controller failed
    12:40        recovery: every alert clears in a 25 s burst
    14:30        staff verify every system and resolve the incident with their closing words
    16:00        one more spike (DNS, 30 s)

``python -m tests.unit.engine_replay`` prints the posts and the decision log (docs/engine.md shows it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from notifier.clock import FakeClock
from notifier.domain.events import AlertEvent
from notifier.domain.model import ComponentStatus, Impact, Incident, IncidentUpdate
from notifier.engine.actions import (
    Action,
    Decision,
    MaintenanceUpdate,
    OpenIncident,
    PostUpdate,
    ResolveIncident,
    SetComponentStatus,
)
from notifier.engine.core import ChannelPolicy, ComponentInfo, Engine
from notifier.engine.settings import parse_engine
from notifier.engine.state import EngineState, Window
from notifier.templating import TemplateRenderer

COMPONENTS = [
    ComponentInfo("imap", "IMAP", "Mail"),
    ComponentInfo("pop3", "POP3", "Mail"),
    ComponentInfo("smtp", "SMTP", "Mail"),
    ComponentInfo("webmail", "Webmail", "Web"),
    ComponentInfo("homepage", "Homepage", "Web", names={"de": "Startseite"}),
    ComponentInfo("calendar", "Calendar", "Web", names={"de": "Kalender"}),
    ComponentInfo("dns", "DNS", None),
    ComponentInfo(
        "storage",
        "Storage cluster",
        None,
        names={"de": "Speichercluster"},
        hidden=True,
        affects={"imap": "major_outage", "pop3": "major_outage", "webmail": "partial_outage"},
    ),
]
SETTINGS = {
    "routing": {"routes": [{"name": "storage", "match": {"team": "storage"}, "components": ["storage"]}]},
    "settle": {"seconds": 30},
    "budget": {"interval_seconds": 900},
    "confirm": {"seconds": 180, "component_status_seconds": 60},
    "resolve": {"seconds": 300, "component_seconds": 120},
}
CHANNELS = ("statuspage", "x", "facebook")
SEVERITY = {"critical": "major_outage", "error": "partial_outage", "warning": "degraded_performance"}
STAFF_IDENTIFIED = {
    "en": "A storage controller failed; we are moving the mailboxes to the standby system.",
    "de": "Eine Steuereinheit des Speichers ist ausgefallen; wir verlegen die Postfächer auf das Ersatzsystem.",
}
STAFF_RESOLVED = {
    "en": "All systems are checked and working again. We apologise for the disruption.",
    "de": "Alle Systeme sind geprüft und laufen wieder. Wir entschuldigen uns für die Störung.",
}


def hms(text: str) -> float:
    h, m, *s = (int(x) for x in text.split(":"))
    return h * 3600 + m * 60 + (s[0] if s else 0)


@dataclass
class Alert:
    fp: str
    labels: dict[str, str]
    severity: str


def _alerts() -> dict[str, Alert]:
    out = {
        f"storage{i}": Alert(f"storage{i}", {"alertname": "StorageNodeDown", "team": "storage", "instance": f"st{i}"},
                             "critical")
        for i in (1, 2, 3)
    }
    for comp, sev in (("imap", "critical"), ("pop3", "critical"), ("webmail", "error"), ("smtp", "critical"),
                      ("homepage", "error"), ("calendar", "critical"), ("dns", "critical")):
        out[comp] = Alert(comp, {"alertname": "ProbeFailed", "component": comp}, sev)
    out["smtp-latency"] = Alert("smtp-latency", {"alertname": "HighLatency", "component": "smtp"}, "warning")
    out["webmail-latency"] = Alert("webmail-latency", {"alertname": "HighLatency", "component": "webmail"}, "warning")
    return out


ALERTS = _alerts()

# (time of day, "fire" | "resolve", alert)
EVENTS = [
    ("01:10:00", "fire", "webmail"), ("01:40:00", "resolve", "webmail"),
    ("09:12:00", "fire", "smtp-latency"), ("09:12:40", "resolve", "smtp-latency"),
    ("10:03:00", "fire", "webmail-latency"), ("10:03:25", "resolve", "webmail-latency"),
    ("11:00:00", "fire", "storage1"), ("11:00:04", "fire", "storage2"), ("11:00:09", "fire", "storage3"),
    ("11:00:20", "fire", "imap"), ("11:00:25", "fire", "pop3"), ("11:00:40", "fire", "webmail"),
    ("11:20:00", "resolve", "storage1"), ("11:20:03", "resolve", "storage2"), ("11:20:06", "resolve", "storage3"),
    ("11:20:10", "resolve", "pop3"), ("11:20:14", "resolve", "webmail"),
    ("11:30:00", "fire", "storage1"), ("11:30:02", "fire", "storage2"), ("11:30:05", "fire", "smtp"),
    ("11:30:08", "fire", "homepage"), ("11:30:12", "fire", "calendar"),
    ("12:40:00", "resolve", "storage1"), ("12:40:02", "resolve", "storage2"), ("12:40:06", "resolve", "smtp"),
    ("12:40:11", "resolve", "homepage"), ("12:40:15", "resolve", "calendar"), ("12:40:25", "resolve", "imap"),
    ("16:00:00", "fire", "dns"), ("16:00:30", "resolve", "dns"),
]
STAFF = [("12:00:00", "identified", STAFF_IDENTIFIED), ("14:30:00", "resolved", STAFF_RESOLVED)]
MAINTENANCE = ("01:00:00", "03:00:00", ["webmail"])


@dataclass
class Post:
    at: float  # seconds after midnight
    channel: str
    author: str  # "engine" | "staff"
    status: str
    body: dict[str, str]
    components: dict[str, str] | None  # the public state the post describes (None: maintenance / staff)
    kind: str  # open, change, monitoring, resolved, maintenance, staff


@dataclass
class Replay:
    midnight: datetime
    posts: list[Post] = field(default_factory=list)
    actions: list[tuple[float, Action]] = field(default_factory=list)
    page: dict[str, str] = field(default_factory=dict)
    page_at: dict[float, dict[str, str]] = field(default_factory=dict)  # sampled every tick
    truth: list[tuple[float, dict[str, str]]] = field(default_factory=list)  # (time, public state from then)
    incident_names: dict[str, str] = field(default_factory=dict)
    engine: Engine | None = None

    def decisions(self, kind: str | None = None) -> list[tuple[float, Decision]]:
        return [(t, a) for t, a in self.actions if isinstance(a, Decision) and (kind is None or a.kind == kind)]

    def page_state(self, when: str) -> dict[str, str]:
        """The status page's component states just after ``when`` (time of day)."""
        t = hms(when)
        keys = [k for k in self.page_at if k <= t]
        return self.page_at[max(keys)] if keys else {}

    def true_state(self, t: float) -> dict[str, str]:
        current: dict[str, str] = {}
        for at, state in self.truth:
            if at <= t:
                current = state
        return current

    def channel_posts(self, channel: str) -> list[Post]:
        return [p for p in self.posts if p.channel == channel]


def _truth(active: set[str], in_maintenance: set[str]) -> dict[str, str]:
    """The public state from the alerts alone: the test's own oracle, independent of the engine."""
    out: dict[str, str] = {}
    info = {c.id: c for c in COMPONENTS}

    def put(comp: str, status: str) -> None:
        if comp in in_maintenance:
            return
        if comp not in out or ComponentStatus(status).severity > ComponentStatus(out[comp]).severity:
            out[comp] = status

    for name in active:
        alert = ALERTS[name]
        status = SEVERITY[alert.severity]
        if alert.labels.get("team") == "storage":
            for comp, caused in info["storage"].affects.items():
                milder = min(caused, status, key=lambda s: ComponentStatus(s).severity)
                put(comp, milder)
        else:
            put(alert.labels["component"], status)
    return out


def run_day() -> Replay:
    clock = FakeClock()
    start = clock.now()
    midnight = datetime(start.year, start.month, start.day, tzinfo=start.tzinfo) + timedelta(days=1)
    clock.set(midnight)
    engine = Engine(parse_engine(SETTINGS), COMPONENTS, {c: ChannelPolicy() for c in CHANNELS})
    state = EngineState()
    rep = Replay(midnight, engine=engine)
    m_start, m_end, m_comps = MAINTENANCE
    state.windows["mnt1"] = Window("mnt1", "Webmail 5.2", m_comps, midnight.timestamp() + hms(m_start),
                                   midnight.timestamp() + hms(m_end), ["start", "end"])
    events = sorted([(hms(t), "alert", (what, name)) for t, what, name in EVENTS]
                    + [(hms(t), "staff", (status, body)) for t, status, body in STAFF], key=lambda e: e[0])
    active: set[str] = set()
    group_of_incident: str | None = None
    staff_done = False

    def day() -> float:
        return clock.timestamp() - midnight.timestamp()

    def maint() -> set[str]:
        return set(m_comps) if hms(m_start) <= day() < hms(m_end) else set()

    def record(out: list[Action]) -> None:
        nonlocal group_of_incident
        for action in out:
            rep.actions.append((day(), action))
            if isinstance(action, SetComponentStatus):
                rep.page[action.component] = action.status
            elif isinstance(action, MaintenanceUpdate):
                rep.page.update(action.components)
                if action.channels is None:
                    for ch in CHANNELS:
                        rep.posts.append(Post(day(), ch, "engine", action.status, action.body, None, "maintenance"))
            elif isinstance(action, OpenIncident | PostUpdate | ResolveIncident):
                if isinstance(action, OpenIncident):
                    group_of_incident = action.group
                    rep.incident_names = action.names
                kind = (
                    "open" if isinstance(action, OpenIncident)
                    else "resolved" if isinstance(action, ResolveIncident)
                    else "monitoring" if action.reason == "monitoring" else action.reason
                )
                comps = None if isinstance(action, ResolveIncident) else dict(action.components)
                status = "resolved" if isinstance(action, ResolveIncident) else action.status
                for ch in action.channels:
                    rep.posts.append(Post(day(), ch, "engine", status, action.body, comps, kind))

    end = hms("23:59:55")
    i = 0
    while day() <= end:
        while i < len(events) and events[i][0] <= day():
            _, what, payload = events[i]
            i += 1
            if what == "alert":
                verb, name = payload
                alert = ALERTS[name]
                (active.add if verb == "fire" else active.discard)(name)
                event = AlertEvent(
                    source="alertmanager", fingerprint=alert.fp, status="firing" if verb == "fire" else "resolved",
                    labels=alert.labels, starts_at=clock.now(), received_at=clock.now(),
                    group_key="{}:{alertname=\"" + alert.labels["alertname"] + "\"}", severity=alert.severity,
                    summary=f"{alert.labels['alertname']} {name}",
                )
                record(engine.handle(state, event, clock.timestamp()))
            else:  # staff post in the open incident: what the service layer tells the core
                status, body = payload
                for ch in CHANNELS:
                    rep.posts.append(Post(day(), ch, "staff", status, body, None, "staff"))
                assert group_of_incident is not None
                if status == "resolved":
                    record(engine.detach(state, group_of_incident, clock.timestamp(), "resolved by a person"))
                    staff_done = True
                else:
                    record(engine.note_staff(state, group_of_incident, status, clock.timestamp()))
        truth = _truth(active, maint())
        if not rep.truth or rep.truth[-1][1] != truth:
            rep.truth.append((day(), truth))
        record(engine.tick(state, clock.timestamp()))
        rep.page_at[day()] = dict(rep.page)
        clock.advance(5)
    assert staff_done
    return rep


# ---- reading what a subscriber sees ------------------------------------------------------------------------

_renderer = TemplateRenderer(None, "en")


def render(post: Post, lang: str, names: dict[str, str]) -> str:
    """The post as the channel's real template writes it in ``lang`` (X and Facebook templates)."""
    kind = "maintenance" if post.kind == "maintenance" else "incident"
    name = "Webmail 5.2" if kind == "maintenance" else names["en"]
    incident = Incident(id="inc1", name=name, status=post.status, impact=Impact.MAJOR,
                        created_at=datetime.now().astimezone(), kind=kind,
                        names={} if kind == "maintenance" else names)
    update = IncidentUpdate(id="inc1.1", incident_id="inc1", number=1, status=post.status, body=post.body,
                            created_at=incident.created_at)
    channel_type = "facebook" if post.channel == "facebook" else "x"
    return _renderer.render(channel_type, "update", lang, incident=incident, update=update,
                            text=update.text(lang), url="", marker="")


WORD = re.compile(r"[A-Za-zÄÖÜäöüß]+")


def words(text: str) -> set[str]:
    return {w.lower() for w in WORD.findall(text)}


def when(rep: Replay, seconds: float) -> str:
    return str(timedelta(seconds=int(seconds))).rjust(8, "0")


def main() -> None:
    rep = run_day()
    print("posts on x (German):")
    for post in rep.channel_posts("x"):
        print(f"  {when(rep, post.at)}  [{post.author}] {render(post, 'de', rep.incident_names)}")
    print("posts on x (English):")
    for post in rep.channel_posts("x"):
        print(f"  {when(rep, post.at)}  [{post.author}] {render(post, 'en', rep.incident_names)}")
    print("decision log:")
    for at, d in rep.decisions():
        if d.kind == "joined":
            continue  # one line per alert; counted in "opened"
        print(f"  {when(rep, at)}  {d.group or '-':4} {d.kind:14} {d.message}")


if __name__ == "__main__":
    main()


__all__: list[Any] = ["run_day", "render", "words", "Replay", "Post", "hms"]
