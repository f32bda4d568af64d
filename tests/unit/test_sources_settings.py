"""The ``sources:`` section: secrets only as ${ENV} references, a credential for the chosen auth."""

from __future__ import annotations

import pytest

from notifier.config_loader import parse_settings
from notifier.errors import ConfigError

ENV = {"AM_TOKEN": "s3cret", "HMAC": "k3y"}


def test_references_resolve_and_are_redacted():
    settings = parse_settings(
        "sources:\n  alertmanager: {token: '${AM_TOKEN}'}\n"
        "  uptime-kuma: {auth: hmac, secret: '${HMAC}', tolerance_seconds: 60}\n", env=ENV)
    am = settings.sources.get("alertmanager")
    kuma = settings.sources.get("uptime-kuma")
    assert am is not None and am.token is not None and am.token.get_secret_value() == "s3cret"
    assert kuma is not None and kuma.auth == "hmac" and kuma.tolerance_seconds == 60
    assert settings.sources.get("grafana") is None
    assert "s3cret" not in repr(settings) and "k3y" not in str(settings.redacted())


def test_disabled_source_is_not_served():
    settings = parse_settings("sources:\n  generic: {token: '${AM_TOKEN}', enabled: false}\n", env=ENV)
    assert settings.sources.get("generic") is None


@pytest.mark.parametrize(("text", "path", "words"), [
    ("sources:\n  alertmanager: {token: literal-token}\n", "sources.alertmanager.token", "${ENV_VAR}"),
    ("sources:\n  generic: {auth: hmac, secret: plain}\n", "sources.generic.secret", "${ENV_VAR}"),
    ("sources:\n  alertmanager: {}\n", "sources.alertmanager", "needs token"),
    ("sources:\n  grafana: {auth: hmac, token: '${AM_TOKEN}'}\n", "sources.grafana", "needs secret"),
    ("sources:\n  nagios: {token: '${AM_TOKEN}'}\n", "sources.nagios", "unknown key"),
    ("sources:\n  generic: {auth: basic, token: '${AM_TOKEN}'}\n", "sources.generic.auth", "bearer"),
    ("sources:\n  generic: {auth: hmac, secret: '${HMAC}', tolerance_seconds: 0}\n",
     "sources.generic.tolerance_seconds", "greater than 0"),
])
def test_problems_name_the_key(text, path, words):
    with pytest.raises(ConfigError) as info:
        parse_settings(text, env=ENV)
    assert any(p.path == path and words in p.message for p in info.value.problems), info.value.problems


def test_literal_secret_under_an_aliased_key_is_caught():
    with pytest.raises(ConfigError) as info:
        parse_settings("sources:\n  uptime-kuma: {token: literal}\n", env=ENV)
    assert [p.path for p in info.value.problems] == ["sources.uptime-kuma.token"]
