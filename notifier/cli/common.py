"""What every command needs: the settings named by ``--config`` and an App from the composition root."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from notifier.bootstrap import App, build
from notifier.config import Settings
from notifier.config_loader import load_settings


def settings_for(args: argparse.Namespace) -> Settings:
    """The settings of ``--config`` ($NOTIFIER_CONFIG, config/notifier.yaml, else the defaults)."""
    return load_settings(getattr(args, "config", None))


def app_for(args: argparse.Namespace, settings: Settings | None = None) -> App:
    """The App a command works with: real store, system clock, work sent through Celery."""
    from workers.dispatch import CeleryDispatcher  # entry points compose; notifier/ core never imports Celery

    settings = settings or settings_for(args)
    return build(settings, dispatcher=CeleryDispatcher(settings))


def local_app(settings: Settings) -> App:
    """An App that enqueues nothing: for commands that do all their work in this process."""
    return build(settings)


def dry_app(args: argparse.Namespace) -> App:
    """An App that never talks to Redis or Celery: rendering needs neither."""
    return offline_app(settings_for(args))


def offline_app(settings: Settings) -> App:
    """An App whose Redis client points nowhere (never connected): for rendering only."""
    import redis

    return build(settings, redis_client=redis.Redis(host="unused.invalid"))


def add_command(subparsers: Any, name: str, fn: Callable[[argparse.Namespace], int],
                help_: str) -> argparse.ArgumentParser:
    """A subcommand whose help is also its description, run by ``fn(args)``."""
    cmd: argparse.ArgumentParser = subparsers.add_parser(name, help=help_, description=help_)
    cmd.set_defaults(func=fn)
    return cmd
