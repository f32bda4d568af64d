"""`notifier`: the staff command line. Every command builds the App and calls a service function.

Exit codes (also in the README):
    0   done
    1   unexpected error (a bug: please report it with the output); `probe run`: the probe is down
    2   the command line itself is wrong (argparse)
    3   `config check`/`deliveries` found problems (failed or unknown deliveries)
    64  bad input: unknown component or channel, empty message, wrong status
    66  no such incident, update or notice
    69  Redis (or another service we need) cannot be reached
    78  the configuration is invalid (every problem is listed with its key path)
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

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
from notifier.errors import ConfigError, NotifierError

# One module per command group, in the order of `notifier --help`; each has register(subparsers).
COMMAND_GROUPS = (config, status, incident, deliveries, run, preview, statuspage, engine, probe, subscribers, api)


def build_parser() -> argparse.ArgumentParser:
    doc = __doc__ or ""
    parser = argparse.ArgumentParser(prog="notifier", description=doc.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=doc.split("\n", 2)[2])
    parser.add_argument("--config", help="config file (default: $NOTIFIER_CONFIG, config/notifier.yaml, "
                                         "else the embedded defaults)")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"error: invalid configuration in {exc.source}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        print("fix these keys (see the configuration reference in README.md) and run "
              "`notifier config check` again", file=sys.stderr)
        return exc.exit_code
    except NotifierError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        import redis

        if isinstance(exc, redis.RedisError):
            print(f"error: lost the connection to Redis ({exc.__class__.__name__}: {exc}); check that it "
                  "is running, then try again", file=sys.stderr)
            return 69
        raise


if __name__ == "__main__":
    sys.exit(main())
