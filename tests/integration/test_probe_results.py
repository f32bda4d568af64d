"""Probe results made visible: real probe runs against loopback servers, counted in a real Redis, shown on
``/console/probes`` (over real HTTP) and on the status page built by the statuspage channel.

The app clock is a FakeClock moved 30 s a round (no sleeping); the HTTP and SMTP servers are real and are
stopped for real, so a failed run is a refused connection, not a stub.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import redis

from notifier.bootstrap import App, build
from notifier.clock import FakeClock
from notifier.config_loader import parse_settings
from notifier.ports import NullDispatcher
from notifier.probes.history import DAY_TTL_SECONDS, ProbeHistory, day_of
from notifier.probes.runner import ProbeRunner
from tests.console_support import TOKENS, Served, web_app
from tests.integration.engine_fixtures import redis_url_fixture  # noqa: F401 - registers the fixture
from tests.integration.probe_servers import HttpServer, SmtpServer

pytestmark = pytest.mark.integration

HOSTILE = "<script>alert(1)</script>"
CONFIG = """
page: {{name: Example Mail, url: "http://127.0.0.1:8081/", probe_results: {probe_results}, languages: [en]}}
components:
  - {{id: smtp, name: SMTP, group: Mail}}
  - {{id: webmail, name: Webmail, group: Web}}
  - {{id: dns, name: DNS, group: Web}}
channels:
  page-local: {{type: statuspage, target: directory, path: "{dir}/site"}}
probes:
  checks:
    - {{name: mx, component: smtp, type: smtp, target: "{smtp}", interval: 30, timeout: 3, retries: 1}}
    - {{name: web, component: webmail, type: http, target: "{http}", interval: 30, timeout: 3, retries: 0}}
    - {{name: web-login, component: webmail, type: http, target: "{http}login", interval: 30, timeout: 3,
       keyword: "{hostile}"}}
staff:
  tokens:
    - {{name: Vi Viewer, token: "${{CONSOLE_VIEWER}}", role: viewer}}
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


def make(redis_url: str, tmp: Path, request: pytest.FixtureRequest, smtp: SmtpServer, http: HttpServer,
         probe_results: bool = True) -> App:
    text = CONFIG.format(dir=tmp, smtp=smtp.target, http=http.url, hostile=HOSTILE,
                         probe_results="true" if probe_results else "false")
    settings = parse_settings(text, "test", env=TOKENS)
    settings.redis.key_prefix = f"pr{abs(hash(request.node.name))}:"
    return build(settings, dispatcher=NullDispatcher(), clock=FakeClock(),
                 redis_client=redis.Redis.from_url(redis_url, decode_responses=True))


@pytest.fixture
def cleanup() -> Iterator[list[App]]:
    apps: list[App] = []
    yield apps
    for app in apps:
        for key in app.require_redis().scan_iter(app.settings.redis.key_prefix + "*"):
            app.require_redis().delete(key)


def probed(app: App, smtp: SmtpServer, good: int, refused: int) -> ProbeRunner:
    """``good`` rounds with every server up, then the SMTP server stopped for ``refused`` rounds."""
    runner = ProbeRunner(app)
    rounds(app, runner, good)
    smtp.stop()
    rounds(app, runner, refused)
    return runner


def rounds(app: App, runner: ProbeRunner, n: int) -> None:
    for _ in range(n):
        app.clock.advance(30)  # type: ignore[attr-defined]
        report = runner.run_due(lambda events: None)
        assert sorted(report.ran) == ["mx", "web", "web-login"]


def test_runs_are_counted_per_day_with_latency_and_a_ttl(
        redis_url: str, tmp_path: Path, request: pytest.FixtureRequest, smtp: SmtpServer, http: HttpServer,
        cleanup: list[App]) -> None:
    app = make(redis_url, tmp_path, request, smtp, http)
    cleanup.append(app)
    runner = probed(app, smtp, good=3, refused=2)
    today = day_of(app.clock.now(), app.settings)
    history = ProbeHistory(app.require_redis(), app.settings)
    days = history.days(["mx", "web", "web-login"], today - timedelta(days=1), today)
    mx_yesterday, mx = days["mx"]
    assert (mx_yesterday.runs, mx_yesterday.failed) == (0, 0)  # a day without runs reads as empty
    assert (mx.runs, mx.failed, mx.answered) == (5, 2, 3)
    assert mx.mean_ms is not None and mx.max_ms is not None and 0 < mx.mean_ms <= mx.max_ms
    web = days["web"][-1]
    assert (web.runs, web.failed, web.answered) == (5, 0, 5)
    login = days["web-login"][-1]  # it answers (HTTP 200) but the keyword is missing: failed, with a latency
    assert (login.runs, login.failed, login.answered) == (5, 5, 5)
    key = app.key("probe", "mx", "day", today.isoformat())
    assert DAY_TTL_SECONDS - 60 < app.require_redis().ttl(key) <= DAY_TTL_SECONDS

    recent = history.recent(["mx"])["mx"]
    assert [r.outcome for r in recent] == ["up"] * 3 + ["down"] * 2
    assert [r.latency_ms is None for r in recent] == [False] * 3 + [True] * 2
    assert [r.at for r in recent] == sorted(r.at for r in recent)

    app.clock.advance(86400)  # type: ignore[attr-defined]
    rounds(app, runner, 1)
    tomorrow = day_of(app.clock.now(), app.settings)
    assert tomorrow != today
    (_, mx_today, mx_tomorrow) = history.days(["mx"], today - timedelta(days=1), tomorrow)["mx"]
    assert (mx_today.runs, mx_tomorrow.runs, mx_tomorrow.failed) == (5, 1, 1)  # a new day, a new counter


def test_the_console_shows_each_probes_last_result_and_latency_history_escaped(
        redis_url: str, tmp_path: Path, request: pytest.FixtureRequest, smtp: SmtpServer, http: HttpServer,
        cleanup: list[App]) -> None:
    app = make(redis_url, tmp_path, request, smtp, http)
    cleanup.append(app)
    probed(app, smtp, good=3, refused=2)
    with Served(web_app(app)) as served:
        anonymous = httpx.get(f"{served.url}/console/probes", follow_redirects=False)
        assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/console/login")
        with httpx.Client(base_url=served.url, follow_redirects=True) as client:
            login = client.get("/console/login")
            csrf = re.search(r'name="csrf" value="([^"]+)"', login.text)
            assert csrf
            signed = client.post("/console/login", data={"csrf": csrf.group(1), "token": TOKENS["CONSOLE_VIEWER"]})
            assert signed.status_code == 200 and 'href="/console/probes"' in signed.text  # in the nav
            page = client.get("/console/probes")
    assert page.status_code == 200
    text = page.text
    assert HOSTILE not in text and html.escape(HOSTILE, quote=False) in text  # the error text, escaped
    sections = {m.group(1): m.group(0) for m in re.finditer(
        r'<section class="card probe" id="probe-([a-z-]+)".*?</section>', text, re.S)}
    assert list(sections) == ["mx", "web", "web-login"]
    mx = sections["mx"]
    assert 'data-state="down"' in mx  # two refused runs with retries: 1
    assert "connection refused" in mx and "SMTP" in mx
    assert "last 5 runs:" in mx and "2 failed" in mx
    assert mx.count('<rect class="f"') == 2 and "<polyline" in mx  # the sparkline: 3 answers, 2 failures
    today = day_of(app.clock.now(), app.settings).isoformat()
    row = re.search(rf'<tr class="probe-day" data-day="{today}">(.*?)</tr>', mx, re.S)
    assert row and re.findall(r"<td>(\d+)</td>", row.group(1)) == ["5", "2", "0"]
    web = sections["web"]
    assert 'data-state="up"' in web and "HTTP 200" in web and "0 failed" in web
    assert "<script" not in text.split("</head>")[1]  # no script in the body at all (the page needs none)


def test_the_status_page_shows_a_sparkline_and_counts_failed_runs_in_the_bars(
        redis_url: str, tmp_path: Path, request: pytest.FixtureRequest, smtp: SmtpServer, http: HttpServer,
        cleanup: list[App]) -> None:
    app = make(redis_url, tmp_path, request, smtp, http)
    cleanup.append(app)
    probed(app, smtp, good=4, refused=3)
    app.channels["page-local"].publish()  # type: ignore[attr-defined]
    index = (tmp_path / "site" / "index.html").read_text()
    comps = {m.group(1): m.group(0) for m in re.finditer(r'<li class="comp" id="c-([a-z]+)">.*?</li>', index, re.S)}
    smtp_html = comps["smtp"]
    assert 'class="spark"' in smtp_html and smtp_html.count('<rect class="f"') == 3
    assert "3 of 7 probe runs failed over 90 days" in smtp_html  # the bars' summary
    assert re.search(r'<i class="o pf" title="[0-9-]+: 3 of 7 probe runs failed"></i>', smtp_html)
    assert "Response time of the last 7 probe runs" in smtp_html and "3 failed" in smtp_html
    webmail = comps["webmail"]  # two probes: the bars count both, the sparkline shows the first (web)
    assert "7 of 14 probe runs failed over 90 days" in webmail
    assert "<rect class=\"f\"" not in webmail and "Response time of the last 7 probe runs" in webmail
    dns = comps["dns"]  # no probe: no sparkline, no probe counts
    assert "spark" not in dns and "probe runs" not in dns
    assert "<script>alert" not in index

    off = make(redis_url, tmp_path, request, smtp, http, probe_results=False)  # the same Redis, the key off
    off.clock.set(app.clock.now() + timedelta(seconds=1))  # type: ignore[attr-defined] # a newer release
    off.channels["page-local"].publish()  # type: ignore[attr-defined]
    plain = (tmp_path / "site" / "index.html").read_text()
    assert 'class="spark"' not in plain and "probe runs" not in plain


def test_statuspage_build_from_the_cli_reads_the_probe_results(
        redis_url: str, tmp_path: Path, smtp: SmtpServer, http: HttpServer, cleanup: list[App],
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from notifier.cli import main
    from notifier.config_loader import load_settings

    for name, value in TOKENS.items():
        monkeypatch.setenv(name, value)
    text = CONFIG.format(dir=tmp_path, smtp=smtp.target, http=http.url, hostile=HOSTILE, probe_results="true")
    path = tmp_path / "notifier.yaml"
    path.write_text(text + f"redis: {{url: \"{redis_url}\", key_prefix: \"cli{tmp_path.name}:\"}}\n")
    app = build(load_settings(path), dispatcher=NullDispatcher(), redis_client=redis.Redis.from_url(
        redis_url, decode_responses=True))  # the system clock, as the CLI's
    cleanup.append(app)
    ProbeRunner(app).run_due(lambda events: None)
    assert main(["--config", str(path), "statuspage", "build", "--out", str(tmp_path / "built")]) == 0
    index = (tmp_path / "built" / "index.html").read_text()
    assert "0 of 1 probe runs failed over 90 days" in index and 'class="spark"' in index
