"""The engine: section is validated with the rest of the config, each problem with its key path."""

from __future__ import annotations

import pytest

from notifier.config_loader import parse_settings
from notifier.engine.settings import check_engine, parse_engine
from notifier.errors import ConfigError

BASE = """
components: [{id: imap, name: IMAP}]
channels:
  outbox: {type: outbox, path: var/outbox.jsonl}
engine:
"""


def problems(engine_yaml: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_settings(BASE + engine_yaml, "test", env={})
    return [f"{p.path}: {p.message}" for p in info.value.problems]


@pytest.mark.parametrize(
    ("engine_yaml", "expected"),
    [
        ("  confirm: {secondz: 3}", "engine.confirm.secondz: unknown key"),
        ("  confirm: {seconds: -1}", "engine.confirm.seconds: Input should be greater than or equal to 0"),
        ("  routing: {mode: some}", "engine.routing.mode: Input should be 'first' or 'all'"),
        (
            "  routing: {routes: [{match: {a: b}, components: [nope]}]}",
            "engine.routing.routes.0.components.0: unknown component 'nope'",
        ),
        (
            "  routing: {routes: [{match_re: {a: '('}, components: [imap]}]}",
            "engine.routing.routes.0.match_re",
        ),
        ("  routing: {routes: [{match: {a: b}, components: []}]}", "engine.routing.routes.0.components"),
        ("  severity: {map: {critical: down}}", "engine.severity.map.critical"),
        ("  flap: {high: 20, low: 30}", "flap.low must be below flap.high"),
        (
            "  channels: {twitter: {confirm_seconds: 5}}",
            "engine.channels.twitter: no channel named 'twitter'",
        ),
        ("  colour: blue", "engine.colour: unknown key"),
    ],
)
def test_bad_engine_settings_name_the_key(engine_yaml, expected):
    found = problems(engine_yaml)
    assert any(expected in p for p in found), found


def test_problem_carries_the_yaml_line():
    with pytest.raises(ConfigError) as info:
        parse_settings(BASE + "  confirm:\n    secondz: 3\n", "test", env={})
    (problem,) = info.value.problems
    assert problem.line == 7


def test_defaults_are_valid_and_documented_values():
    settings = parse_engine({})
    assert settings.confirm.seconds == 180 and settings.resolve.seconds == 300
    assert settings.routing.mode == "first" and settings.budget.interval_seconds == 900
    assert check_engine({}, set(), set()) == []
    ok = parse_settings(BASE + "  channels: {outbox: {confirm_seconds: 0}}\n", "test", env={})
    assert parse_engine(ok.engine).confirm_for("outbox") == 0
    assert parse_engine(ok.engine).confirm_for("other") == 180


def test_every_problem_at_once_even_when_the_section_is_half_broken():
    found = problems("  confirm: {secondz: 3}\n  routing: {routes: [{match: {a: b}, components: [nope]}]}\n")
    assert any(p.startswith("engine.confirm.secondz") for p in found)
    assert any(p.startswith("engine.routing.routes.0.components.0: unknown component 'nope'") for p in found)
