"""`notifier probe run NAME | list`: run one probe once from here, or show every probe's last results.

`probe run` exits 0 when the probe is up (also when merely slow: it answered), 1 when it is down,
64 for an unknown probe name, 78 for an invalid configuration. It never writes to Redis or the engine:
it shows what this host sees, nothing more.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from notifier.cli.common import add_command, local_app, settings_for
from notifier.cli.format import ago, table
from notifier.errors import UsageError


def cmd_probe_run(args: argparse.Namespace) -> int:
    from notifier.probes import checks

    settings = settings_for(args)
    probe = settings.probes.get(args.name)
    if probe is None:
        names = ", ".join(c.name for c in settings.probes.checks) or "none configured (see README, Probes)"
        raise UsageError(f"no probe named {args.name!r}; probes: {names}")
    result = checks.run(probe)
    outcome = result.outcome(probe.slow_ms)
    latency = "-" if result.latency_ms is None else f"{result.latency_ms:.0f} ms"
    print(table(["probe", "type", "target", "result", "latency", "component"],
                [[probe.name, probe.type, probe.target, outcome.upper(), latency, probe.component]], max_width=80))
    print(f"\n{result.detail}")
    for key, value in sorted(result.facts.items()):
        print(f"  {key}: {value}")
    if outcome == "slow":
        print(f"  slower than slow_ms={probe.slow_ms:g}: would count towards {probe.slow_status.value}")
    elif outcome == "down":
        print(f"  after {probe.retries + 1} such runs in a row this location votes down "
              f"({probe.down_status.value} once {settings.probes.quorum} location(s) agree)")
    return 1 if outcome == "down" else 0


def cmd_probe_list(args: argparse.Namespace) -> int:
    from notifier.probes.runner import snapshot

    settings = settings_for(args)
    if not settings.probes.checks:
        print("no probes configured (add a probes: section, see README, Probes)")
        return 0
    app = local_app(settings)
    now = time.time()
    rows: list[list[Any]] = []
    for entry in snapshot(app):
        probe = entry["probe"]
        state = entry["state"]
        if not entry["locations"]:
            rows.append([probe.name, probe.component, probe.type, state.state, "-", "never ran", "-", ""])
        for loc, ls in sorted(entry["locations"].items()):
            latency = "-" if ls.last_latency_ms is None else f"{ls.last_latency_ms:.0f} ms"
            rows.append([probe.name, probe.component, probe.type, state.state, loc,
                         f"{ls.vote} ({ls.last_outcome}, {ago(now - ls.last_run)} ago)", latency, ls.last_detail])
    print(table(["probe", "component", "type", "agreed", "location", "vote", "latency", "detail"], rows))
    return 0


def register(subparsers: Any) -> None:
    grp = subparsers.add_parser("probe", help="run a probe once, or list the probes' last results").add_subparsers(
        dest="sub", required=True)
    run = add_command(grp, "run", cmd_probe_run, "run one probe once from this host and print what it saw "
                                                 "(exit 0 up, 1 down)")
    run.add_argument("name", help="the probe's name in probes.checks")
    add_command(grp, "list", cmd_probe_list, "every probe's agreed state and each location's last run")
