"""`notifier preview` (notifier/cli/preview.py): exact texts and X weighted lengths, nothing posted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from notifier import cli
from notifier.channels.x_text import weighted_length

CONFIG = """
page: {name: Example Mail, url: "https://status.example.com/", language: en}
components: [{id: smtp, name: SMTP}]
channels:
  x: {type: x, api_base_url: "http://127.0.0.1:9", user_token: "${X_TOKEN}"}
  facebook: {type: facebook, graph_url: "http://127.0.0.1:9", page_id: "1", page_token: "${FB_TOKEN}",
             language: de}
"""


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    path = tmp_path / "notifier.yaml"
    path.write_text(CONFIG)
    monkeypatch.setenv("X_TOKEN", "t")
    monkeypatch.setenv("FB_TOKEN", "t")

    def invoke(*args: str) -> tuple[int, str, str]:
        code = cli.main(["--config", str(path), "preview", *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke


def test_preview_shows_each_channel_and_x_weighted_lengths(run) -> None:
    code, out, _ = run("--name", "Mail delayed", "-m", "Mail is slow. " * 30,
                       "--message-de", "Mails sind langsam.")
    assert code == 0
    assert "── x (en, thread of 2)" in out
    assert "── facebook (de)" in out and "Mails sind langsam." in out
    assert out.count("(weighted length ") == 2
    assert "nothing was stored or posted" in out


def test_preview_json_matches_the_channel_rendering(run) -> None:
    code, out, _ = run("--name", "Mail delayed", "-m", "短い障害 😀 https://example.com/x",
                       "--json", "--channel", "x")
    assert code == 0
    data = json.loads(out)
    assert list(data) == ["x"]
    assert data["x"]["weighted_lengths"] == [weighted_length(p) for p in data["x"]["parts"]]
    assert data["x"]["parts"][0].endswith("#INC0·1")


def test_preview_of_an_unknown_channel_is_a_usage_error(run) -> None:
    code, _, err = run("-m", "hello", "--channel", "mastodon")
    assert code == 64
    assert "no enabled channel named mastodon" in err


def test_config_check_warns_about_an_app_only_bearer_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "notifier.yaml"
    path.write_text(CONFIG.replace('user_token: "${X_TOKEN}"}', 'user_token: "${X_TOKEN}", bearer_token: "${X_B}"}'))
    for var in ("X_TOKEN", "FB_TOKEN", "X_B"):
        monkeypatch.setenv(var, "t")
    assert cli.main(["--config", str(path), "config", "check", "--strict"]) == 3
    out = capsys.readouterr().out
    assert "warning: channels.x: bearer_token: an app-only bearer token cannot post to X" in out
