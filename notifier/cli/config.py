"""`notifier config check|show`: validate the configuration, print it with secrets redacted."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from notifier.cli.common import add_command, settings_for


def cmd_config_check(args: argparse.Namespace) -> int:
    settings = settings_for(args)  # raises ConfigError -> exit 78 with every problem listed
    if settings.redis.sentinels:  # ask the Sentinels: a wrong master name or a dead Sentinel, one line each
        from notifier.errors import ConfigError
        from notifier.store.redis_store import sentinel_problems

        problems = sentinel_problems(settings)
        if problems:
            raise ConfigError(problems, settings.source_path)
    warnings: list[str] = []
    for name, channel in settings.channels.items():
        from notifier.channels.registry import CHANNEL_TYPES

        check = getattr(sys.modules[CHANNEL_TYPES[channel.type].__module__], "config_warnings", None)
        if check is not None:
            warnings.extend(f"channels.{name}: {w}" for w in check(channel))
    print(f"{settings.source_path}: OK — {len(settings.components)} components, "
          f"{len(settings.channels)} channels ({', '.join(settings.channels) or 'none'})")
    for w in warnings:
        print(f"warning: {w}")
    return 3 if warnings and args.strict else 0


def cmd_config_show(args: argparse.Namespace) -> int:
    print(json.dumps(settings_for(args).redacted(), indent=2))
    return 0


def register(subparsers: Any) -> None:
    cfg = subparsers.add_parser("config", help="check or show the configuration").add_subparsers(
        dest="sub", required=True)
    check = add_command(cfg, "check", cmd_config_check, "validate the config; list every problem with its key path")
    check.add_argument("--strict", action="store_true", help="exit 3 on warnings too")
    add_command(cfg, "show", cmd_config_show, "print the effective config, secrets redacted")
