"""`notifier probe run NAME` against real loopback servers: a table of what it saw, exit 0 up / 1 down /
64 unknown probe / 78 invalid config; and the beat schedule sends each location's tick to its own queue."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from notifier.cli import main
from notifier.config_loader import parse_settings
from tests.integration.probe_servers import HttpServer, SmtpServer, free_port
from workers.setup import all_queues, make_celery, probe_queue

UNUSED = "redis://unused.invalid:1/0"  # make_celery never connects
CONFIG = """
components:
  - {{id: smtp, name: SMTP}}
  - {{id: web, name: Web}}
probes:
  checks:
    - {{name: mx, component: smtp, type: smtp, target: "{smtp}", timeout: 3}}
    - {{name: web, component: web, type: http, target: "{http}", keyword: Inbox, timeout: 3}}
    - {{name: gone, component: web, type: tcp, target: "127.0.0.1:{dead}", timeout: 3}}
    - {{name: lo, component: web, type: dns, target: localhost, expect_addresses: ["127.0.0.1", "::1"]}}
"""


@pytest.fixture
def config(tmp_path: Path) -> Iterator[Path]:
    http, smtp = HttpServer(), SmtpServer()
    path = tmp_path / "notifier.yaml"
    path.write_text(CONFIG.format(smtp=smtp.target, http=http.url, dead=free_port()))
    yield path
    http.stop()
    smtp.stop()


def run(config: Path, *argv: str) -> int:
    return main(["--config", str(config), "probe", *argv])


def test_probe_run_prints_what_it_saw_and_exits_0_when_up(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(config, "run", "mx") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["PROBE", "TYPE", "TARGET", "RESULT", "LATENCY", "COMPONENT"]
    assert " UP " in out and "EHLO ok" in out and "banner: mx.test.invalid" in out
    assert run(config, "run", "web") == 0
    assert "HTTP 200" in capsys.readouterr().out
    assert run(config, "run", "lo") == 0
    assert "127.0.0.1" in capsys.readouterr().out


def test_probe_run_exits_1_when_down_and_says_why(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(config, "run", "gone") == 1
    out = capsys.readouterr().out
    assert " DOWN " in out and "connection refused" in out and "votes down" in out


def test_unknown_probe_and_bad_config_have_their_own_exit_codes(
        config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(config, "run", "nope") == 64
    assert "no probe named 'nope'; probes: mx, web, gone, lo" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("probes:\n  checks:\n    - {name: x, component: web, type: http, target: nowhere}\n")
    assert main(["--config", str(bad), "probe", "run", "x"]) == 78
    err = capsys.readouterr().err
    assert "probes.checks.0.target" in err and "probes.checks.0.component" in err


def test_each_location_gets_its_own_tick_on_its_own_queue_and_plain_workers_skip_it() -> None:
    settings = parse_settings("""
components: [{id: web, name: Web}]
probes:
  location: fra
  locations: [fra, ams]
  quorum: 2
  tick_seconds: 3
  checks: [{name: web, component: web, type: http, target: "http://127.0.0.1:1/"}]
""", "test", env={})
    schedule = make_celery(settings, broker_url=UNUSED).conf.beat_schedule
    ticks = {k: v for k, v in schedule.items() if v["task"] == "notifier.probes.tick"}
    assert {v["options"]["queue"]: v["args"] for v in ticks.values()} == {
        "notifier.probes.fra": ["fra"], "notifier.probes.ams": ["ams"]}
    assert all(v["schedule"] == 3 for v in ticks.values())
    assert probe_queue("fra") not in all_queues(settings)  # deliveries never wait behind a probe
    no_probes = parse_settings("components: [{id: web, name: Web}]\n", "test", env={})
    plain = make_celery(no_probes, broker_url=UNUSED).conf.beat_schedule
    assert not [v for v in plain.values() if v["task"] == "notifier.probes.tick"]
