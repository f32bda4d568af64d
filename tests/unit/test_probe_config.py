"""The probes: section is validated by `config check`, every problem with its key path."""

from __future__ import annotations

import pytest

from notifier.config_loader import parse_settings
from notifier.errors import ConfigError

BASE = """
components:
  - {id: smtp, name: SMTP}
  - {id: web, name: Web}
"""


def problems(text: str, env: dict[str, str] | None = None) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        parse_settings(BASE + text, "test", env=env or {})
    return {p.path: p.message for p in info.value.problems}


def test_a_valid_section_loads_with_its_defaults() -> None:
    settings = parse_settings(BASE + """
probes:
  checks:
    - {name: smtp-25, component: smtp, type: smtp, target: "mx.example.net:25", starttls: true}
    - {name: web, component: web, type: http, target: "https://www.example.net/", slow_ms: 800, keyword: Inbox}
""", "test", env={})
    smtp = settings.probes.get("smtp-25")
    assert smtp is not None and smtp.host_port() == ("mx.example.net", 25) and smtp.retries == 2
    assert smtp.down_status.value == "major_outage" and smtp.interval == 30
    assert settings.probes.quorum == 1 and settings.probes.locations == ["local"]


def test_every_problem_is_reported_with_its_key_path() -> None:
    found = problems("""
probes:
  quorum: 3
  checks:
    - {name: a, component: nope, type: tcp, target: "db.example.net:5432"}
    - {name: b, component: web, type: http, target: "ftp://x/", interval: 0}
    - {name: c, component: web, type: smtp, target: "mx.example.net:99999"}
    - {name: d, component: web, type: ping, target: x}
    - {name: e, component: web, type: http, target: "http://x/", down_status: operational}
""")
    assert "more than the 1 locations" in found["probes.quorum"]
    assert found["probes.checks.1.interval"].startswith("Input should be greater than 0")
    assert "http:// or https://" in found["probes.checks.1.target"]
    assert "host:port" in found["probes.checks.2.target"]
    assert "probes.checks.3.type" in found
    assert "degraded_performance, partial_outage or major_outage" in found["probes.checks.4.down_status"]


def test_cross_checks_name_the_component_the_location_and_the_severity_map() -> None:
    found = problems("""
engine:
  severity: {map: {warning: degraded_performance}, default: partial_outage}
probes:
  location: fra
  locations: [ams]
  checks:
    - {name: a, component: nope, type: tcp, target: "db.example.net:5432"}
""")
    assert "unknown component 'nope'" in found["probes.checks.0.component"]
    assert "'fra' is not in probes.locations" in found["probes.location"]
    assert "major_outage" in found["probes.checks.0.down_status"]
    assert "probes.checks.0.slow_status" not in found  # warning -> degraded_performance exists


def test_a_canary_password_must_be_an_env_reference_and_never_shows() -> None:
    found = problems("""
probes:
  checks:
    - {name: imap, component: smtp, type: imap, target: "imap.example.net:143", username: canary, password: hunter2}
""")
    assert "probes.checks.0.password" in found and "probes.checks.0.username" in found
    settings = parse_settings(BASE + """
probes:
  checks:
    - {name: imap, component: smtp, type: imap, target: "imap.example.net:143",
       username: "${CANARY_USER}", password: "${CANARY_PASSWORD}"}
""", "test", env={"CANARY_USER": "canary", "CANARY_PASSWORD": "hunter2"})
    dump = str(settings.redacted())
    assert "hunter2" not in dump and "${CANARY_PASSWORD}" in dump
    probe = settings.probes.get("imap")
    assert probe is not None and probe.password is not None and probe.password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(probe)
