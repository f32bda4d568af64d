"""deploy/three-hosts parsed as its readers parse it: compose YAML, systemd units (INI), the Redis and
Sentinel config files (one directive a line), and the README's config snippet, all telling one story."""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path

import yaml

from notifier.cli import build_parser
from notifier.config_loader import parse_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "three-hosts"
README = DEPLOY.parents[1] / "README.md"


def directives(path: Path) -> dict[str, list[list[str]]]:
    """A redis.conf / sentinel.conf as Redis reads it: directive -> each line's arguments."""
    out: dict[str, list[list[str]]] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, *args = shlex.split(line)
            if name == "sentinel":
                name, *args = f"sentinel {args[0]}", *args[1:]
            out.setdefault(name.lower(), []).append(args)
    return out


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string(path.read_text(), source=str(path))
    return parser


def readme_redis() -> dict[str, object]:
    section = README.read_text().split("**Three hosts (Redis Sentinel).**", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block, "the Three hosts section shows the redis config"
    return dict(yaml.safe_load(block.group(1)))


def test_the_redis_and_sentinel_files_match_compose_and_the_config() -> None:
    redis_conf = directives(DEPLOY / "redis.conf")
    sentinel = directives(DEPLOY / "sentinel.conf")
    assert redis_conf["appendonly"] == [["yes"]] and redis_conf["appendfsync"] == [["always"]]
    assert redis_conf["maxmemory-policy"] == [["noeviction"]] and redis_conf["min-replicas-to-write"] == [["1"]]
    assert "requirepass" in redis_conf and "masterauth" in redis_conf
    [[name, _host, port, quorum]] = sentinel["sentinel monitor"]
    assert (port, quorum) == (redis_conf["port"][0][0], "2")
    assert sentinel["sentinel auth-pass"][0][0] == name and sentinel["sentinel down-after-milliseconds"][0][0] == name
    down_after = sentinel["sentinel down-after-milliseconds"][0][1]

    compose = yaml.safe_load((DEPLOY / "compose.yml").read_text())
    services = compose["services"]
    redis_cmd = services["redis"]["command"][0]
    for flag in ("--appendonly yes", "--appendfsync always", "--maxmemory-policy noeviction",
                 "--min-replicas-to-write 1"):
        assert flag in redis_cmd, flag
    sentinel_cmd = services["sentinel"]["command"][0]
    assert f'"sentinel monitor {name} $$REDIS_MASTER_IP {port} {quorum}"' in sentinel_cmd
    assert f'"sentinel down-after-milliseconds {name} {down_after}"' in sentinel_cmd

    config = readme_redis()
    redis = config["redis"]
    assert isinstance(redis, dict) and redis["master_name"] == name
    sentinels = redis["sentinels"]
    assert isinstance(sentinels, list) and len(sentinels) == 3 and int(quorum) == len(sentinels) // 2 + 1
    assert {s.rsplit(":", 1)[1] for s in sentinels} == {sentinel["port"][0][0]}
    settings = parse_settings(yaml.safe_dump({**config, "channels": {"o": {"type": "outbox"}}}), "README",
                              {"REDIS_PASSWORD": "r", "SENTINEL_PASSWORD": "s"})
    assert settings.redis.min_replicas >= 1 and settings.redis.master_name == name


def test_every_notifier_process_runs_on_each_host_and_its_command_parses() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yml").read_text())
    services = compose["services"]
    assert {"redis", "sentinel", "worker", "beat", "api"} <= set(services)
    parser = build_parser()
    for name in ("worker", "beat", "api"):
        service = services[name]
        assert service["restart"] == "unless-stopped" and service["network_mode"] == "host", name
        assert parser.parse_args(service["command"]).command == name

    units = {p.stem: unit(p) for p in (DEPLOY / "systemd").glob("*.service")}
    assert set(units) == {f"notifier-{n}" for n in ("redis", "sentinel", "worker", "beat", "api")}
    for name, u in units.items():
        assert u["Service"]["Restart"] == "always" and u["Install"]["WantedBy"] == "multi-user.target", name
        argv = shlex.split(u["Service"]["ExecStart"])
        if name in ("notifier-redis", "notifier-sentinel"):
            conf = DEPLOY / Path(argv[1]).name  # /etc/notifier/<file> is the file shipped here
            assert argv[0].endswith("/redis-server") and conf.exists(), argv
            assert ("--sentinel" in argv) == (name == "notifier-sentinel"), argv
        else:
            assert argv[0].endswith("/notifier") and u["Service"]["EnvironmentFile"] == "/etc/notifier/env"
            assert parser.parse_args(argv[1:]).command == name.removeprefix("notifier-"), argv
            assert "notifier-sentinel.service" in u["Unit"]["After"], name
