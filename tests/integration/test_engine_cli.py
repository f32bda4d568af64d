"""The engine's CLI against a real redis-server, as a user runs it (real clock, zero confirm delay)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from notifier import cli
from notifier.cli import engine as engine_commands
from notifier.domain.events import AlertEvent
from notifier.domain.model import utcnow
from notifier.store.local_redis import LocalRedis

pytestmark = pytest.mark.integration

CONFIG = """
redis: {{url: "{url}", key_prefix: "cli:"}}
components:
  - {{id: imap, name: IMAP, group: Mail}}
  - {{id: dns, name: DNS}}
channels:
  outbox: {{type: outbox, path: "{dir}/outbox.jsonl"}}
engine:
  confirm: {{seconds: 0, component_status_seconds: 0}}
  settle: {{seconds: 0}}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("engine-cli")
    server = LocalRedis(tmp / "redis").start()
    path = tmp / "notifier.yaml"
    path.write_text(CONFIG.format(url=server.url, dir=tmp))
    yield path, server
    server.stop()


@pytest.fixture
def config(server, monkeypatch: pytest.MonkeyPatch):
    import redis

    redis.Redis.from_url(server[1].url).flushdb()
    assert engine_commands in cli.COMMAND_GROUPS
    return server


def run(config: Path, *argv: str) -> int:
    return cli.main(["--config", str(config), *argv])


def test_incident_show_prints_why_alerts_joined(config, capsys):
    path, server = config
    import redis

    r = redis.Redis.from_url(server.url, decode_responses=True)
    now = utcnow()
    for i in range(3):
        event = AlertEvent(
            "alertmanager",
            f"fp{i}",
            "firing",
            {"component": "imap"},
            now,
            now,
            group_key='{}:{alertname="ImapDown"}',
            severity="critical",
            summary="IMAP down",
        )
        r.xadd("cli:events", {"event": json.dumps(event.to_dict())})
    assert run(path, "engine", "run-once") == 0
    assert "processed 3 event(s)" in capsys.readouterr().out
    assert run(path, "incident", "list") == 0
    incident_id = capsys.readouterr().out.split("\n")[1].split()[0]
    assert run(path, "incident", "show", incident_id) == 0
    out = capsys.readouterr().out
    assert "DECISION" in out and "joined" in out and "opened" in out
    assert 'same source group key: {}:{alertname="ImapDown"}' in out
    assert "alertmanager:fp2" in out
    assert run(path, "engine", "status") == 0
    assert "g1" in capsys.readouterr().out
    assert run(path, "engine", "log") == 0
    assert "no unrouted alerts" in capsys.readouterr().out


def test_engine_log_shows_unrouted_alerts(config, capsys):
    path, server = config
    import redis

    now = utcnow()
    event = AlertEvent("grafana", "x1", "firing", {"team": "billing"}, now, now, summary="Invoices slow")
    redis.Redis.from_url(server.url).xadd("cli:events", {"event": json.dumps(event.to_dict())})
    assert run(path, "engine", "run-once") == 0
    capsys.readouterr()
    assert run(path, "engine", "log") == 0
    out = capsys.readouterr().out
    assert "unrouted" in out and "no route matched labels team=billing" in out and "grafana:x1" in out


def test_maintenance_schedule_list_cancel(config, capsys):
    path, _ = config
    assert (
        run(
            path,
            "maintenance",
            "schedule",
            "--name",
            "Disk swap",
            "--component",
            "imap",
            "--start",
            "+1h",
            "--duration",
            "30m",
            "-m",
            "New disks.",
            "--announce",
            "",
        )
        == 0
    )
    mnt = capsys.readouterr().out.split()[0]
    assert mnt.startswith("mnt")
    assert run(path, "maintenance", "list") == 0
    out = capsys.readouterr().out
    assert mnt in out and "scheduled" in out and "imap" in out
    assert run(path, "maintenance", "cancel", mnt) == 0
    capsys.readouterr()
    assert run(path, "maintenance", "list") == 0
    assert "no maintenance scheduled" in capsys.readouterr().out
    assert run(path, "incident", "show", mnt) == 0
    assert "cancelled" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--start", "tomorrow", "--duration", "1h"], "--start: 'tomorrow' is not a time"),
        (["--start", "2026-11-24T22:00", "--duration", "1h"], "has no time zone"),
        (["--start", "+1h", "--duration", "forever"], "--duration: 'forever' is not a duration"),
        (["--start", "+1h", "--end", "+30m"], "scheduled_until: must be after scheduled_for"),
        (["--start", "+1h", "--duration", "1h", "--announce", "tweet"], "announce: unknown value(s) tweet"),
    ],
)
def test_maintenance_schedule_bad_input_names_the_field(config, capsys, argv, message):
    path, _ = config
    code = run(path, "maintenance", "schedule", "--name", "X", "--component", "imap", "-m", "m", *argv)
    assert code == 64
    assert message in capsys.readouterr().err


def test_unknown_component_is_a_usage_error(config, capsys):
    path, _ = config
    assert (
        run(
            path,
            "maintenance",
            "schedule",
            "--name",
            "X",
            "--component",
            "nope",
            "-m",
            "m",
            "--start",
            "+1h",
            "--duration",
            "1h",
        )
        == 64
    )
    assert "unknown component 'nope'" in capsys.readouterr().err
