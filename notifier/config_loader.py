"""Loading the configuration: one YAML file validated into typed settings.

Where the file comes from: ``--config PATH``, else ``$NOTIFIER_CONFIG``, else ``config/notifier.yaml``
when it exists, else the embedded defaults (``notifier/defaults.yaml``: an outbox channel and a private
Redis under ``./var``), so that ``make run`` needs no file at all.

Secrets are never literal: a field typed ``SecretStr`` must be written as a ``${ENV_VAR}`` reference.
Any string may use ``${VAR}`` (or ``${VAR:-default}``). Every problem is reported at once, each with
its dotted key path and, where the YAML has one, its line.
"""

from __future__ import annotations

import os
import re
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml
from pydantic import BaseModel, SecretStr, ValidationError

from notifier.channels.registry import CHANNEL_TYPES
from notifier.config.settings import ChannelSettings, DeliverySettings, RedisSettings, Settings
from notifier.errors import ConfigError, ConfigProblem

M = typing.TypeVar("M", bound=BaseModel)
DEFAULTS_FILE = Path(__file__).parent / "defaults.yaml"
DEFAULT_PATH = Path("config/notifier.yaml")
_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def resolve_path(explicit: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None) -> Path | None:
    """The config file to read, or None for the embedded defaults."""
    env = os.environ if env is None else env
    if explicit:
        return Path(explicit)
    if env.get("NOTIFIER_CONFIG"):
        return Path(env["NOTIFIER_CONFIG"])
    return DEFAULT_PATH if DEFAULT_PATH.exists() else None


def load_settings(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read, interpolate and validate; raise ConfigError listing every problem."""
    env = os.environ if env is None else env
    chosen = resolve_path(path, env)
    file = chosen or DEFAULTS_FILE
    label = str(chosen) if chosen else "<embedded defaults>"
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            [ConfigProblem("(file)", f"cannot read {file}: {exc.strerror}; pass --config PATH")], label
        ) from exc
    return parse_settings(text, label, env)


def parse_settings(text: str, label: str = "config", env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise ConfigError([ConfigProblem("(yaml)", str(exc).splitlines()[0], line)], label) from exc
    lines = _line_map(node) if node is not None else {}
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([ConfigProblem("(root)", "must be a mapping of sections", 1)], label)

    problems: list[ConfigProblem] = []
    referenced: set[str] = set()
    raw_text_tree = raw
    raw = _interpolate(raw, (), env, problems, referenced, lines)

    channels_raw = raw.get("channels") or {}
    settings: Settings | None = None
    try:
        settings = Settings.model_validate({**raw, "channels": {}, "source_path": label})
    except ValidationError as exc:
        problems.extend(_problems(exc, (), lines))

    channels: dict[str, ChannelSettings] = {}
    if not isinstance(channels_raw, dict):
        problems.append(ConfigProblem("channels", "must be a mapping of channel name to settings"))
        channels_raw = {}
    for name, body in channels_raw.items():
        base = ("channels", str(name))
        if not isinstance(body, dict):
            problems.append(ConfigProblem(_dotted(base), "must be a mapping", lines.get(base)))
            continue
        kind = body.get("type")
        if kind not in CHANNEL_TYPES:
            known = ", ".join(sorted(CHANNEL_TYPES))
            problems.append(
                ConfigProblem(
                    _dotted((*base, "type")),
                    f"unknown channel type {kind!r}; choose one of: {known}",
                    lines.get((*base, "type"), lines.get(base)),
                )
            )
            continue
        try:
            channels[str(name)] = CHANNEL_TYPES[kind].settings_model.model_validate(body)
        except ValidationError as exc:
            problems.extend(_problems(exc, base, lines))

    delivery = settings.delivery if settings is not None else _try(DeliverySettings, raw.get("delivery"))
    if delivery is not None:  # checked even when other sections are broken: report everything at once
        problems.extend(delivery.check_invariants())
    redis_conf = settings.redis if settings is not None else _try(RedisSettings, raw.get("redis"))
    if redis_conf is not None:
        problems.extend(ConfigProblem(p.path, p.message, lines.get(tuple(p.path.split(".")), lines.get(("redis",))))
                        for p in redis_conf.check_invariants())
    seen: set[str] = set()
    for i, comp in enumerate(raw.get("components") or []):
        comp_id = comp.get("id") if isinstance(comp, dict) else None
        if comp_id in seen:
            problems.append(ConfigProblem(f"components.{i}.id", f"duplicate component id {comp_id!r}",
                                          lines.get(("components", str(i), "id"))))
        if isinstance(comp_id, str):
            seen.add(comp_id)
    for path in _secret_paths(Settings, raw, ()):
        _require_reference(path, referenced, problems, lines, raw)
    for name, body in channels_raw.items():
        if isinstance(body, dict) and body.get("type") in CHANNEL_TYPES:
            model = CHANNEL_TYPES[body["type"]].settings_model
            for path in _secret_paths(model, body, ("channels", str(name))):
                _require_reference(path, referenced, problems, lines, raw)
    from notifier.engine.settings import check_engine  # the engine validates its own section; keep lazy

    comp_ids = {str(c.get("id")) for c in raw.get("components") or [] if isinstance(c, dict)}
    problems.extend(check_engine(raw.get("engine"), comp_ids, set(channels_raw), lines))
    problems.extend(_check_hidden(raw.get("components") or [], lines))
    problems.extend(_check_probes(raw, lines))
    if settings is not None:
        from notifier.engine.settings import check_timers

        problems.extend(check_timers(raw.get("engine"), settings.page.heartbeat(), settings.page.stale_after_minutes))

    if problems or settings is None:
        raise ConfigError(problems, label)
    settings.channels = channels
    settings._references = {path: text for path, text in _reference_texts(raw_text_tree, ()).items()}
    return settings


def _check_probes(raw: dict[str, Any], lines: dict[tuple[str, ...], int]) -> list[ConfigProblem]:
    """Each probe names a configured component, and the engine maps some severity to its statuses.

    Reads the raw sections, so these are reported together with the probes' own field errors."""
    from notifier.domain.model import ComponentStatus
    from notifier.engine.settings import parse_engine
    from notifier.probes.verdict import severity_for

    section = raw.get("probes")
    if not isinstance(section, dict):
        return []
    problems: list[ConfigProblem] = []
    found = section.get("checks")
    probes = found if isinstance(found, list) else []
    location, locations = section.get("location", "local"), section.get("locations", ["local"])
    if probes and isinstance(locations, list) and location not in locations:
        loc_path: tuple[str, ...] = ("probes", "location")
        problems.append(ConfigProblem(".".join(loc_path), f"{location!r} is not in probes.locations "
                                      f"({', '.join(map(str, locations))}); add it there", lines.get(loc_path)))
    try:
        smap = parse_engine(raw.get("engine")).severity.map
    except ValidationError:
        smap = {}  # the engine section's own problems are reported by check_engine
    ids = {str(c.get("id")) for c in raw.get("components") or [] if isinstance(c, dict)}
    defaults = {"down_status": "major_outage", "slow_status": "degraded_performance"}
    for i, probe in enumerate(probes):
        if not isinstance(probe, dict):
            continue
        base = ("probes", "checks", str(i))
        if "component" in probe and str(probe["component"]) not in ids:
            path: tuple[str, ...] = (*base, "component")
            problems.append(ConfigProblem(".".join(path), f"unknown component {probe['component']!r}; "
                                          f"components: {', '.join(sorted(ids)) or 'none'}", lines.get(path)))
        for key, default in defaults.items():
            try:
                status = ComponentStatus(probe.get(key, default))
            except ValueError:
                continue  # reported by the model
            if status in (ComponentStatus.OPERATIONAL, ComponentStatus.UNDER_MAINTENANCE):
                continue  # reported by the model: not a problem status
            if smap and severity_for(status, smap) is None:
                path = (*base, key)
                problems.append(ConfigProblem(".".join(path), f"no severity in engine.severity.map gives "
                                              f"{status.value}; add one (e.g. probe_{status.value}: "
                                              f"{status.value})", lines.get(path)))
    return problems


def _check_hidden(components: list[Any], lines: dict[tuple[str, ...], int]) -> list[ConfigProblem]:
    """``affects`` names public components only, and only a hidden component affects others."""
    comps = [c for c in components if isinstance(c, dict)]
    public = {str(c.get("id")) for c in comps if not c.get("hidden")}
    problems: list[ConfigProblem] = []
    for i, comp in enumerate(components):
        if not isinstance(comp, dict) or not isinstance(comp.get("affects"), dict):
            continue
        for target in comp["affects"]:
            path = ("components", str(i), "affects", str(target))
            if not comp.get("hidden"):
                problems.append(ConfigProblem(".".join(path), "only a hidden component (hidden: true) affects "
                                              "others; a public one is shown itself", lines.get(path)))
            elif target not in public:
                problems.append(ConfigProblem(".".join(path), f"{target!r} is not a public component; "
                                              f"public components: {', '.join(sorted(public))}", lines.get(path)))
    return problems


def _reference_texts(value: Any, path: tuple[str, ...]) -> dict[tuple[str, ...], str]:
    """Paths whose value in the file uses ${...}, with the text as written."""
    out: dict[tuple[str, ...], str] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            out.update(_reference_texts(v, (*path, str(k))))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.update(_reference_texts(v, (*path, str(i))))
    elif isinstance(value, str) and "${" in value:
        out[path] = value
    return out


def _try(model: type[M], raw: Any) -> M | None:
    try:
        return model.model_validate(raw or {})
    except ValidationError:
        return None


def _secret_paths(model: type[BaseModel], raw: Any, prefix: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    """Paths of the SecretStr fields that ``raw`` fills in, through nested models and lists of them."""
    if not isinstance(raw, dict):
        return
    for field_name, info in model.model_fields.items():
        name = info.alias or field_name  # the key as written in the file (sources: uptime-kuma)
        if raw.get(name) in (None, ""):
            continue
        kinds = _flatten(info.annotation)
        if SecretStr in kinds:
            value = raw[name]
            if isinstance(value, dict):  # dict[str, SecretStr]: each value is its own secret
                yield from ((*prefix, name, str(k)) for k, v in value.items() if v not in (None, ""))
            else:
                yield (*prefix, name)
            continue
        for kind in kinds:
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                value = raw[name]
                if isinstance(value, list):
                    for i, item in enumerate(value):
                        yield from _secret_paths(kind, item, (*prefix, name, str(i)))
                else:
                    yield from _secret_paths(kind, value, (*prefix, name))


def _flatten(annotation: Any) -> set[Any]:
    args = typing.get_args(annotation)
    if not args:
        return {annotation}
    out: set[Any] = set()
    for arg in args:
        out |= _flatten(arg)
    return out


def _require_reference(
    path: tuple[str, ...], referenced: set[Any], problems: list[ConfigProblem], lines: dict[tuple[str, ...], int],
    raw: dict[str, Any],
) -> None:
    if path in referenced:
        return
    if path == ("redis", "url") and not _has_password(str(raw.get("redis", {}).get("url", ""))):
        return  # a Redis URL without a password holds no secret
    problems.append(
        ConfigProblem(_dotted(path), "secrets must be ${ENV_VAR} references, never literal values in the file",
                      lines.get(path))
    )


def _has_password(url: str) -> bool:
    parts = urlsplit(url)
    return bool(parts.password) or "password" in parse_qs(parts.query)


def _interpolate(
    value: Any,
    path: tuple[str, ...],
    env: Mapping[str, str],
    problems: list[ConfigProblem],
    referenced: set[tuple[str, ...]] | set[Any],
    lines: dict[tuple[str, ...], int],
) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, (*path, str(k)), env, problems, referenced, lines) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*path, str(i)), env, problems, referenced, lines) for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:
        whole = _REF.fullmatch(value.strip())
        if whole and not whole.group(2):  # "${X:-literal}" would smuggle a literal secret into the file
            referenced.add(path)

        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.append(
                ConfigProblem(_dotted(path), f"environment variable {name} is not set; export it", lines.get(path))
            )
            return ""

        return _REF.sub(sub, value)
    return value


def _problems(
    exc: ValidationError, base: tuple[str, ...], lines: dict[tuple[str, ...], int]
) -> list[ConfigProblem]:
    out = []
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        path = (*base, *loc)
        line = None
        for cut in range(len(path), 0, -1):  # the deepest node that exists in the file
            if path[:cut] in lines:
                line = lines[path[:cut]]
                break
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling against the configuration reference)"
        out.append(ConfigProblem(_dotted(path), msg, line))
    return out


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(path) if path else "(root)"


def _line_map(node: yaml.Node, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], int]:
    lines = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, child in node.value:
            child_path = (*path, str(key.value))
            lines[child_path] = key.start_mark.line + 1
            for sub, line in _line_map(child, child_path).items():
                lines.setdefault(sub, line)
    elif isinstance(node, yaml.SequenceNode):
        for i, child in enumerate(node.value):
            lines.update(_line_map(child, (*path, str(i))))
    return lines
