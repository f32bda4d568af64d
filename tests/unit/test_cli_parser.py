"""The CLI package: each command group is a module registered explicitly by notifier.cli.build_parser."""

from __future__ import annotations

import argparse

import pytest

from notifier import cli
from notifier.cli import (
    api,
    config,
    deliveries,
    engine,
    incident,
    preview,
    probe,
    run,
    status,
    statuspage,
    subscribers,
)

EXPECTED = {
    config: ["config"],
    status: ["status"],
    incident: ["incident", "broadcast"],
    deliveries: ["deliveries"],
    run: ["worker", "beat", "run"],
    preview: ["preview"],
    statuspage: ["statuspage"],
    engine: ["maintenance", "engine"],
    probe: ["probe"],
    subscribers: ["subscribers"],
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
    group.register(parser.add_subparsers())
    assert sorted(_commands(parser)) == sorted(EXPECTED[group])


def test_the_incident_group_holds_every_incident_command_show_included() -> None:
    incident_parser = _commands(cli.build_parser())["incident"]
    assert sorted(_commands(incident_parser)) == ["approve", "list", "merge", "open", "resolve", "show", "update"]


def test_a_command_runs_the_function_of_its_group_module() -> None:
    parser = cli.build_parser()
    assert parser.parse_args(["config", "check"]).func is config.cmd_config_check
    assert parser.parse_args(["deliveries", "retry", "n1"]).func is deliveries.cmd_deliveries_retry
    assert parser.parse_args(["run", "--demo"]).func is run.cmd_run
    assert parser.parse_args(["engine", "status"]).func is engine.cmd_engine_status
    assert parser.parse_args(["incident", "show", "inc1"]).func is incident.cmd_incident_show
