from __future__ import annotations

import pytest

from notifier.config import mask_url
from notifier.config_loader import load_settings, parse_settings
from notifier.errors import ConfigError

BAD = """\
page:
  name: Mail
  url: ftp://nope
  colour: blue
channels:
  hook:
    type: webhook
    secret: literal-secret
  x:
    type: carrier-pigeon
  out:
    type: outbox
    path: 42
    bogus: true
delivery:
  lease_seconds: 10
  task_time_limit: 30
components:
  - {id: imap, name: IMAP}
  - {id: imap, name: IMAP again}
  - {id: "Bad Id", name: X}
"""


def problems(text: str, env: dict[str, str] | None = None) -> dict[str, ConfigError]:
    with pytest.raises(ConfigError) as info:
        parse_settings(text, "test.yaml", env or {})
    return {p.path: p for p in info.value.problems}  # type: ignore[misc]


def test_every_problem_is_reported_with_its_key_path_and_line() -> None:
    found = problems(BAD)
    assert found["page.url"].line == 3 and "http" in found["page.url"].message
    assert found["page.colour"].line == 4 and "unknown key" in found["page.colour"].message
    assert found["channels.hook.url"].message == "Field required"
    assert "${ENV_VAR}" in found["channels.hook.secret"].message and found["channels.hook.secret"].line == 8
    assert "carrier-pigeon" in found["channels.x.type"].message and "outbox" in found["channels.x.type"].message
    assert found["channels.out.bogus"].line == 14
    assert "channels.out.path" in found
    assert "delivery.lease_seconds" in found
    assert "duplicate" in found["components.1.id"].message
    assert "components.2.id" in found
    assert len(found) >= 10


def test_secrets_come_from_the_environment_and_are_redacted() -> None:
    text = "channels:\n  hook: {type: webhook, url: 'http://h/', secret: '${HOOK_SECRET}'}\n"
    settings = parse_settings(text, "t", {"HOOK_SECRET": "s3cr3t-value"})
    hook = settings.channels["hook"]
    assert hook.secret.get_secret_value() == "s3cr3t-value"  # type: ignore[attr-defined]
    assert "s3cr3t-value" not in repr(settings) and "s3cr3t-value" not in str(settings.redacted())
    missing = problems(text, {})
    assert "HOOK_SECRET is not set" in missing["channels.hook.secret"].message


def test_yaml_syntax_error_has_a_line() -> None:
    found = problems("page:\n  name: [unclosed\n")
    assert found["(yaml)"].line is not None


def test_embedded_defaults_load_and_redis_password_is_masked(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NOTIFIER_CONFIG", raising=False)
    settings = load_settings()
    assert settings.source_path == "<embedded defaults>" and "outbox" in settings.channels
    assert mask_url("redis://:hunter2@db:6379/0") == "redis://:***@db:6379/0"
    assert mask_url("redis://user:hunter2@db/0") == "redis://user:***@db/0"
    assert mask_url("redis://u:p@ss@db/0") == "redis://u:***@db/0"  # an @ inside the password
    assert mask_url("redis://db/0?password=hunter2&db=1") == "redis://db/0?password=***&db=1"
    assert mask_url("redis://db:6379/0") == "redis://db:6379/0"


def test_missing_file_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "nope.yaml")
    assert "cannot read" in str(info.value)


def test_example_config_is_valid() -> None:
    from pathlib import Path

    env = {name: "x" for name in ("REDIS_URL", "WEBHOOK_SECRET", "STAFF_TOKEN_ALICE")}
    env["REDIS_URL"] = "redis://127.0.0.1:6379/0"
    text = (Path(__file__).parents[2] / "config" / "notifier.example.yaml").read_text()
    settings = parse_settings(text, "example", {**env, **_example_env(text)})
    assert settings.channels


def _example_env(text: str) -> dict[str, str]:
    import re

    return {name: "placeholder-value-16+" for name in re.findall(r"\$\{([A-Z0-9_]+)", text) if name != "REDIS_URL"}


def test_a_default_inside_a_reference_cannot_smuggle_a_literal_secret() -> None:
    text = "channels:\n  hook: {type: webhook, url: 'http://h/', secret: '${HOOK_SECRET:-literal-in-file}'}\n"
    found = problems(text, {})
    assert "${ENV_VAR}" in found["channels.hook.secret"].message


def test_a_redis_password_in_the_query_must_be_a_reference() -> None:
    found = problems("redis: {url: 'redis://db/0?password=hunter2'}\n")
    assert "redis.url" in found


def test_config_show_prints_references_not_the_values_they_resolve_to() -> None:
    text = ("channels:\n  hook: {type: webhook, url: '${CHAT_URL}', headers: {X-Api-Key: '${CHAT_KEY}'}}\n"
            "page: {name: 'Mail ${ENV_NAME}'}\n")
    settings = parse_settings(text, "t", {"CHAT_URL": "https://hooks.example/T0/B0/credential",
                                         "CHAT_KEY": "key-123456", "ENV_NAME": "prod"})
    shown = str(settings.redacted())
    assert "credential" not in shown and "key-123456" not in shown and "prod" not in shown
    assert "${CHAT_URL}" in shown and "Mail ${ENV_NAME}" in shown
    assert settings.channels["hook"].url == "https://hooks.example/T0/B0/credential"  # type: ignore[attr-defined]


def test_webhook_header_values_are_secrets() -> None:
    found = problems("channels:\n  hook: {type: webhook, url: 'http://h/', headers: {X-Api-Key: literal}}\n")
    assert "channels.hook.headers.X-Api-Key" in found
