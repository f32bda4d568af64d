"""create_app wires the API from the settings it is given (not from $NOTIFIER_CONFIG)."""

from __future__ import annotations

import pytest

from notifier.api.app import app_for_config, create_app
from notifier.bootstrap import build
from notifier.config_loader import parse_settings
from workers.dispatch import CeleryDispatcher

pytestmark = pytest.mark.integration

CONFIG = """
redis: {url: "%s", key_prefix: "given:"}
components: [{id: imap, name: IMAP}]
channels: {out: {type: outbox, path: /nonexistent/outbox.jsonl}}
"""


def test_settings_given_are_the_settings_used_with_a_celery_dispatcher_for_them(redis_server, monkeypatch) -> None:
    monkeypatch.setenv("NOTIFIER_CONFIG", "/nonexistent/other.yaml")  # must not be read
    settings = parse_settings(CONFIG % redis_server.url, "given", env={})
    api = create_app(settings=settings)
    app = api.state.notifier
    assert app.settings is settings
    assert app.store.key("x") == "given:x"
    assert isinstance(app.dispatcher, CeleryDispatcher) and app.dispatcher._settings is settings


def test_an_app_given_is_served_as_it_is(redis_server) -> None:
    app = build(parse_settings(CONFIG % redis_server.url, "given", env={}))
    assert create_app(app).state.notifier is app
    with pytest.raises(ValueError, match="not an App built from other settings"):
        create_app(app, settings=parse_settings(CONFIG % redis_server.url, "other", env={}))


def test_the_factory_reads_the_config_path_it_is_given(redis_server, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NOTIFIER_CONFIG", "/nonexistent/other.yaml")
    path = tmp_path / "notifier.yaml"
    path.write_text(CONFIG % redis_server.url)
    api = app_for_config(str(path))
    assert api.state.notifier.settings.source_path == str(path)
    assert api.state.notifier.settings.redis.key_prefix == "given:"
