"""The layering is a contract, not a hope: the import contracts in ``.importlinter`` (also ``make check``).

The contracts (drawn in docs/architecture.md): entry points above the composition root above the services
above the adapters above the pure core; nothing below the entry points imports Celery; the domain and the
engine core do no I/O; services reach storage only through ``notifier.ports``; no cycles between the
packages of ``notifier``; the domain uses the standard library only.
"""

from __future__ import annotations

import configparser
import os

import pytest

from tests.support import ROOT

CONTRACTS = ROOT / ".importlinter"


def contract_ids() -> list[str]:
    parser = configparser.ConfigParser()
    parser.read(CONTRACTS)
    return [s.split(":", 2)[2] for s in parser.sections() if s.startswith("importlinter:contract:")]


def test_the_contract_file_states_every_rule_the_architecture_promises() -> None:
    assert set(contract_ids()) >= {"layers", "no-celery-below-the-entry-points", "pure-core",
                                   "services-speak-ports", "acyclic", "domain-stdlib-only"}


@pytest.mark.parametrize("contract", contract_ids())
def test_the_code_keeps_the_import_contract(contract: str, capsys: pytest.CaptureFixture[str]) -> None:
    from importlinter.cli import lint_imports

    cwd = os.getcwd()
    os.chdir(ROOT)  # import-linter reads .importlinter and builds the graph from the working directory
    try:
        code = lint_imports(config_filename=str(CONTRACTS), limit_to_contracts=(contract,), no_cache=True,
                            no_logo=True)
    finally:
        os.chdir(cwd)
    report = capsys.readouterr().out
    assert code == 0, f"import contract {contract!r} is broken:\n{report[report.find('Broken contracts'):]}"
