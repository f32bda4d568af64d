"""Probes against real servers on loopback, through the real event stream and engine on a real Redis.

The engine is driven by the app's FakeClock (``advance``), not by sleeping: a stopped SMTP server opens
an incident only once the confirm delay has passed; a slow HTTP server makes its component
degraded_performance; one of two vantage points failing opens nothing while the quorum is two.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from notifier.bootstrap import App, build
from notifier.clock import FakeClock
from notifier.config.settings import ProbeSettings
from notifier.config_loader import parse_settings
from notifier.domain.events import AlertEvent
from notifier.domain.model import ComponentStatus
from notifier.ports import NullDispatcher
from notifier.probes import checks
from notifier.probes.runner import ProbeRunner
from notifier.probes.verdict import Result
from notifier.services import engine_runner as engine
from notifier.services.ingest import accept_events
from tests.integration.engine_app import advance
from tests.integration.engine_fixtures import redis_url_fixture  # noqa: F401 - registers the fixture
from tests.integration.probe_servers import HttpServer, SmtpServer, free_port

pytestmark = pytest.mark.integration

CONFIG = """
page: {{name: Example Mail, url: "http://127.0.0.1:8081/"}}
components:
  - {{id: smtp, name: SMTP, group: Mail}}
  - {{id: webmail, name: Webmail, group: Web}}
channels:
  outbox: {{type: outbox, path: "{dir}/outbox.jsonl"}}
engine:
  confirm: {{seconds: 120, component_status_seconds: 30}}
  settle: {{seconds: 10}}
probes:
  location: {location}
  locations: {locations}
  quorum: {quorum}
  checks:
    - {{name: mx, component: smtp, type: smtp, target: "{smtp}", interval: 30, timeout: 3, retries: 1}}
    - {{name: web, component: webmail, type: http, target: "{http}", interval: 30, timeout: 3, retries: 0,
       slow_ms: 150, keyword: Inbox}}
"""


@pytest.fixture
def http() -> Iterator[HttpServer]:
    server = HttpServer()
    yield server
    server.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    yield server
    server.stop()


def make(redis_url: str, tmp: Path, request: pytest.FixtureRequest, smtp_target: str, http_url: str,
         locations: str = "[local]", quorum: int = 1) -> App:
    text = CONFIG.format(dir=tmp, smtp=smtp_target, http=http_url, locations=locations, quorum=quorum,
                         location=locations.strip("[]").split(",")[0].strip())
    settings = parse_settings(text, "test", env={})
    settings.redis.key_prefix = f"p{abs(hash(request.node.name))}:"
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    return build(settings, dispatcher=NullDispatcher(), clock=FakeClock(), redis_client=client)


@pytest.fixture
def cleanup() -> Iterator[list[App]]:
    apps: list[App] = []
    yield apps
    for app in apps:
        for key in app.require_redis().scan_iter(app.settings.redis.key_prefix + "*"):
            app.require_redis().delete(key)


class Feed:
    """What the worker task does with a tick's events: accept them into the stream. ``events`` keeps the
    ones the stream took as new (a probe that stays down repeats its firing event: a duplicate)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.events: list[AlertEvent] = []

    def __call__(self, events: list[AlertEvent]) -> None:
        accepted = set(accept_events(self.app, events).accepted)
        self.events.extend(e for e in events if e.id in accepted)


def probe_round(app: App, runners: list[ProbeRunner], feed: Feed, seconds: float = 30) -> None:
    """One interval passes on the app clock: every location runs its due probes, the engine reads."""
    advance(app, seconds, step=seconds)
    for runner in runners:
        runner.run_due(feed)
    engine.process_events(app)


def test_a_stopped_smtp_server_opens_an_incident_after_the_confirm_delay(
        redis_url: str, tmp_path: Path, request: pytest.FixtureRequest, smtp: SmtpServer, http: HttpServer,
        cleanup: list[App]) -> None:
    app = make(redis_url, tmp_path, request, smtp.target, http.url)
    cleanup.append(app)
    runner, feed = ProbeRunner(app), Feed(app)
    probe_round(app, [runner], feed)
    assert feed.events == [] and app.store.component_status("smtp") == ComponentStatus.OPERATIONAL
    smtp.stop()
    probe_round(app, [runner], feed)  # first failure: within retries (1)
    assert feed.events == []
    probe_round(app, [runner], feed)  # second failure: this location votes down
    assert [(e.source, e.status, e.labels["component"]) for e in feed.events] == [("probe", "firing", "smtp")]
    assert "refused" in feed.events[0].summary
    advance(app, 60)
    assert app.store.list_incidents() == []  # nothing public before the confirm delay (120 s)
    probe_round(app, [runner], feed)  # still down: the repeated event is a duplicate the stream drops
    assert len(feed.events) == 1
    advance(app, 60)
    (incident,) = app.store.list_incidents()
    assert incident.components == ["smtp"]
    assert app.store.component_status("smtp") == ComponentStatus.MAJOR_OUTAGE
    assert app.store.component_status("webmail") == ComponentStatus.OPERATIONAL

    restarted = SmtpServer.__new__(SmtpServer)  # the same port again: the service is back
    restarted.port = smtp.port
    from aiosmtpd.controller import Controller

    restarted.controller = Controller(object(), hostname="127.0.0.1", port=smtp.port)
    restarted.controller.start()
    try:
        probe_round(app, [runner], feed)
        assert [e.status for e in feed.events][-1] == "resolved"
        advance(app, 600)
        assert app.store.component_status("smtp") == ComponentStatus.OPERATIONAL
    finally:
        restarted.controller.stop()


def test_a_slow_http_server_makes_its_component_degraded_performance(
        redis_url: str, tmp_path: Path, request: pytest.FixtureRequest, smtp: SmtpServer, http: HttpServer,
        cleanup: list[App]) -> None:
    app = make(redis_url, tmp_path, request, smtp.target, http.url)
    cleanup.append(app)
    runner, feed = ProbeRunner(app), Feed(app)
    probe_round(app, [runner], feed)
    assert feed.events == []
    http.delay = 0.4  # slower than slow_ms=150
    probe_round(app, [runner], feed)
    assert [(e.fingerprint, e.status) for e in feed.events] == [("probe:web:slow", "firing")]
    advance(app, 180)
    assert app.store.component_status("webmail") == ComponentStatus.DEGRADED_PERFORMANCE
    assert app.store.component_status("smtp") == ComponentStatus.OPERATIONAL


def test_one_of_two_vantage_points_failing_opens_nothing_with_a_quorum_of_two(
        redis_url: str, tmp_path: Path, request: pytest.FixtureRequest, smtp: SmtpServer, http: HttpServer,
        cleanup: list[App]) -> None:
    app = make(redis_url, tmp_path, request, smtp.target, http.url, locations="[fra, ams]", quorum=2)
    cleanup.append(app)
    dead = f"127.0.0.1:{free_port()}"  # nothing listens: ams's network cannot reach the mail server

    def ams_check(probe: ProbeSettings, now: float) -> Result:
        return checks.run(probe.model_copy(update={"target": dead}) if probe.type == "smtp" else probe, now)

    fra, ams, feed = ProbeRunner(app, "fra"), ProbeRunner(app, "ams", check=ams_check), Feed(app)
    for _ in range(4):
        probe_round(app, [fra, ams], feed)
    votes = app.require_redis().hgetall(app.key("probe", "mx", "votes"))
    assert sorted((loc, v.split('"')[1]) for loc, v in votes.items()) == [("ams", "down"), ("fra", "up")]
    advance(app, 300)
    assert feed.events == [] and app.store.list_incidents() == []
    smtp.stop()  # now both locations agree
    for _ in range(2):
        probe_round(app, [fra, ams], feed)
    assert [(e.fingerprint, e.status) for e in feed.events] == [("probe:mx:down", "firing")]
    advance(app, 150)
    (incident,) = app.store.list_incidents()
    assert incident.components == ["smtp"]


def test_due_probes_run_concurrently_and_a_locked_probe_is_not_run_twice(
        redis_url: str, tmp_path: Path, request: pytest.FixtureRequest, smtp: SmtpServer, http: HttpServer,
        cleanup: list[App]) -> None:
    text = CONFIG.format(dir=tmp_path, smtp=smtp.target, http=http.url, locations="[local]", quorum=1,
                         location="local")
    extra = "".join(f"    - {{name: w{i}, component: webmail, type: http, target: \"{http.url}\"}}\n"
                    for i in range(12))
    settings = parse_settings(text + extra, "test", env={})
    settings.redis.key_prefix = f"p{abs(hash(request.node.name))}:"
    app = build(settings, dispatcher=NullDispatcher(), clock=FakeClock(),
                redis_client=redis.Redis.from_url(redis_url, decode_responses=True))
    cleanup.append(app)
    http.delay = 0.2
    runner = ProbeRunner(app)
    app.require_redis().set(app.key("probe", "w0", "lock", "local"), "another-run", px=60_000)
    seen: list[Any] = []
    report = runner.run_due(seen.extend)
    assert report.skipped_locked == ["w0"]
    assert sorted(report.ran) == sorted(["mx", "web"] + [f"w{i}" for i in range(1, 12)])
    assert http.requests == 12 and http.peak > 1  # one thread pool, not one probe after another
    assert app.require_redis().get(app.key("probe", "w0", "lock", "local")) == "another-run"  # not ours to free
    assert not app.require_redis().exists(app.key("probe", "w1", "lock", "local"))  # ours are released
    assert runner.run_due(seen.extend).ran == []  # nothing is due again before its interval


def test_probe_list_shows_the_agreed_state_and_each_locations_last_run(
        redis_url: str, tmp_path: Path, smtp: SmtpServer, http: HttpServer, capsys: pytest.CaptureFixture[str],
        cleanup: list[App]) -> None:
    from notifier.cli import main
    from notifier.config_loader import load_settings

    text = CONFIG.format(dir=tmp_path, smtp=smtp.target, http=http.url, locations="[local]", quorum=1,
                         location="local")
    path = tmp_path / "notifier.yaml"
    path.write_text(text + f"redis: {{url: \"{redis_url}\", key_prefix: \"list{tmp_path.name}:\"}}\n")
    app = build(load_settings(path), dispatcher=NullDispatcher(), clock=FakeClock(),
                redis_client=redis.Redis.from_url(redis_url, decode_responses=True))
    cleanup.append(app)
    assert main(["--config", str(path), "probe", "list"]) == 0
    assert "never ran" in capsys.readouterr().out
    smtp.stop()
    ProbeRunner(app).run_due(Feed(app))
    assert main(["--config", str(path), "probe", "list"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "up (up," in rows["web"] and "HTTP 200" in rows["web"]
    assert "up (down," in rows["mx"] and "connection refused" in rows["mx"]  # one failure: within retries


def test_a_tick_starts_each_probe_at_its_own_due_time_on_the_schedule(
        redis_url: str, tmp_path: Path, request: pytest.FixtureRequest, smtp: SmtpServer, http: HttpServer,
        cleanup: list[App]) -> None:
    from notifier.probes import schedule

    app = make(redis_url, tmp_path, request, smtp.target, http.url)
    cleanup.append(app)
    started: dict[str, float] = {}
    waits: list[float] = []

    def check(probe: ProbeSettings, now: float) -> Result:
        started[probe.name] = now  # the runner passes the run's due time
        return checks.run(probe, now)

    runner = ProbeRunner(app, check=check, sleep=waits.append)  # record the waits instead of waiting
    t0, tick = app.clock.timestamp(), app.settings.probes.tick_seconds
    assert sorted(runner.run_due(Feed(app)).ran) == ["mx", "web"]
    firsts = {name: schedule.first_due(name, t0, tick) for name in ("mx", "web")}
    assert started == pytest.approx(firsts)  # never ran: spread over this tick, by name
    offsets = sorted(at - t0 for at in firsts.values())  # each wait: until that due time, from the tick's start
    assert 1 <= len(waits) <= 2 and waits == sorted(waits)  # 2 unless the tick's setup outlasted the first
    assert all(0 < w <= o for w, o in zip(reversed(waits), reversed(offsets), strict=False))
    started.clear()
    app.clock.advance(30)  # type: ignore[attr-defined]
    assert sorted(runner.run_due(Feed(app)).ran) == ["mx", "web"]
    assert started == pytest.approx({name: schedule.next_due(name, 30, t0, tick) for name in ("mx", "web")})
    assert all(abs((at - schedule.phase(n, 30)) % 30) < 1e-6 or abs((at - schedule.phase(n, 30)) % 30 - 30) < 1e-6
               for n, at in started.items())  # on the probe's grid
