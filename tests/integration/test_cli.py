"""The staff CLI as a person runs it: a real subprocess, a real Redis, exit codes that mean something."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import redis

from tests.support import ROOT, env_for, write_config

pytestmark = pytest.mark.integration


def run(config: Path | None, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "notifier"] + (["--config", str(config)] if config else []) + list(args)
    return subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=60,
                          env=env or env_for(config or Path("/nonexistent")))


@pytest.fixture
def config(tmp_path: Path, redis_server) -> Path:
    return write_config(tmp_path / "n.yaml", redis_server.url,
                        {"outbox": {"type": "outbox", "path": str(tmp_path / "out.jsonl")}})


def test_bad_config_lists_every_problem_and_exits_78(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("page:\n  url: nope\nchannels:\n  a: {type: outbox, pth: x}\ncomponents: [{id: imap}]\n")
    result = run(bad, "config", "check")
    assert result.returncode == 78
    assert "page.url (line 2)" in result.stderr
    assert "channels.a.pth (line 4): unknown key" in result.stderr
    assert "components.0.name" in result.stderr
    assert "notifier config check" in result.stderr  # says what to do next


def test_config_check_ok(config: Path) -> None:
    result = run(config, "config", "check")
    assert result.returncode == 0, result.stderr
    assert "OK — 2 components, 1 channels (outbox)" in result.stdout


def test_unknown_component_and_empty_message_exit_64_and_write_nothing(config: Path, redis_client: redis.Redis) -> None:
    before = set(redis_client.keys("*"))
    unknown = run(config, "incident", "open", "--name", "X", "--component", "nope", "-m", "down")
    assert unknown.returncode == 64
    assert "unknown component 'nope'; known components: imap, smtp" in unknown.stderr
    empty = run(config, "incident", "open", "--name", "X", "--component", "imap", "-m", "   ")
    assert empty.returncode == 64 and "message is empty" in empty.stderr
    bad_channel = run(config, "broadcast", "-m", "hi", "--channel", "fax")
    assert bad_channel.returncode == 64 and "unknown channel 'fax'" in bad_channel.stderr
    assert set(redis_client.keys("*")) == before, "nothing half-written"


def test_unreachable_redis_names_the_url_with_password_masked(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "n.yaml", "${REDIS_URL}", {"outbox": {"type": "outbox"}})
    env = env_for(cfg, {"REDIS_URL": "redis://:hunter2@127.0.0.1:1/0"})
    result = run(cfg, "deliveries", env=env)
    assert result.returncode == 69
    assert "redis://:***@127.0.0.1:1/0" in result.stderr and "hunter2" not in result.stderr + result.stdout


def test_open_update_list_and_deliveries_table(config: Path) -> None:
    opened = run(config, "incident", "open", "--name", "Mail delayed", "--component", "smtp=partial_outage",
                 "-m", "Outgoing mail is delayed.", "--message-de", "Ausgehende Mails verzögern sich.")
    assert opened.returncode == 0, opened.stderr
    assert "inc1 opened: Mail delayed" in opened.stdout
    assert run(config, "incident", "update", "inc1", "--status", "identified", "-m", "Found it.").returncode == 0
    listing = run(config, "incident", "list")
    assert "inc1" in listing.stdout and "identified" in listing.stdout and "smtp" in listing.stdout
    assert " major " in listing.stdout  # no --impact: a partial outage means a major incident, as on Statuspage
    table = run(config, "deliveries")  # no worker: both notices are pending
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["NOTICE", "CHANNEL", "STATE"]
    assert "inc1.2:outbox" in lines[1] and "pending" in lines[1]
    assert "2 pending" in table.stdout
    missing = run(config, "incident", "update", "inc9", "-m", "x")
    assert missing.returncode == 66 and "no incident 'inc9'" in missing.stderr


def test_dry_run_prints_renderings_and_needs_no_redis(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "n.yaml", "redis://127.0.0.1:1/0", {"outbox": {"type": "outbox"}})
    result = run(cfg, "incident", "open", "--name", "IMAP down", "--component", "imap", "-m", "Investigating.",
                 "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "── outbox (en)" in result.stdout
    assert "[Investigating] IMAP down: Investigating." in result.stdout
    broadcast = run(cfg, "broadcast", "-m", "Planned work tonight.", "--dry-run")
    assert "#BRD0·1" in broadcast.stdout  # previewed with the marker a broadcast really gets
    assert "nothing was stored or posted" in result.stdout
