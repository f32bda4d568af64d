"""The CLI package: each command group is a module registered explicitly by notifier.cli.build_parser."""

from __future__ import annotations

import argparse

import pytest

from notifier import cli
from notifier.cli import api, config, deliveries, engine, incident, preview, run, statuspage

EXPECTED = {
    config: ["config"],
    incident: ["incident", "broadcast"],
    deliveries: ["deliveries"],
    run: ["worker", "beat", "run"],
    preview: ["preview"],
    statuspage: ["statuspage"],
    engine: ["maintenance", "engine"],
    api: ["api"],
}


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_group_module_is_registered_in_help_order() -> None:
    assert list(cli.COMMAND_GROUPS) == list(EXPECTED)
    assert list(_commands(cli.build_parser())) == [name for names in EXPECTED.values() for name in names]


@pytest.mark.parametrize("group", list(EXPECTED), ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_each_group_adds_exactly_its_own_commands(group) -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    if group is engine:
        incident.register(sub)  # `incident show` joins the incident group
        before = set(_commands(parser))
    else:
        before = set()
    group.register(sub)
    assert sorted(set(_commands(parser)) - before) == sorted(EXPECTED[group])


def test_incident_show_from_the_engine_group_joins_the_incident_group() -> None:
    incident_parser = _commands(cli.build_parser())["incident"]
    assert sorted(_commands(incident_parser)) == ["approve", "list", "merge", "open", "resolve", "show", "update"]


def test_a_command_runs_the_function_of_its_group_module() -> None:
    parser = cli.build_parser()
    assert parser.parse_args(["config", "check"]).func is config.cmd_config_check
    assert parser.parse_args(["deliveries", "retry", "n1"]).func is deliveries.cmd_deliveries_retry
    assert parser.parse_args(["run", "--demo"]).func is run.cmd_run
    assert parser.parse_args(["engine", "status"]).func is engine.cmd_engine_status
