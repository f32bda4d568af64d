"""Configuration: one YAML file validated into typed settings.

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
from urllib.parse import parse_qs, parse_qsl, urlsplit, urlunsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError, field_validator

from notifier.channels.base import ChannelSettings
from notifier.domain.model import ComponentStatus
from notifier.errors import ConfigError, ConfigProblem
from notifier.sources.settings import SourcesSettings

M = typing.TypeVar("M", bound=BaseModel)
DEFAULTS_FILE = Path(__file__).parent / "defaults.yaml"
DEFAULT_PATH = Path("config/notifier.yaml")
_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PageSettings(_Strict):
    id: str = "status"
    name: str = "Example Service"
    url: str = Field("http://127.0.0.1:8081/", description="public base URL of the status page")
    language: str = "en"
    languages: list[str] = ["en", "de"]
    time_zone: str = "UTC"
    # The page warns visitors when it was last published longer ago than this
    stale_after_minutes: float = 15
    # Seconds between republishing the page's heartbeat; None: a third of stale_after_minutes (5..300 s)
    heartbeat_seconds: float | None = Field(None, gt=0)

    def heartbeat(self) -> float:
        if self.heartbeat_seconds is not None:
            return self.heartbeat_seconds
        return max(min(self.stale_after_minutes * 60 / 3, 300.0), 5.0)

    @field_validator("url")
    @classmethod
    def _slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value if value.endswith("/") else value + "/"

    def incident_url(self, incident_id: str) -> str:
        return f"{self.url}incidents/{incident_id}.html"


class RedisSettings(_Strict):
    # None: start a private redis-server with AOF under data_dir (make run, demos)
    url: SecretStr | None = None

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value():
            raw = value.get_secret_value()
            scheme = raw.split("://", 1)[0].lower() if "://" in raw else ""
            if not re.fullmatch(r"[a-z][a-z0-9+.-]{0,15}", scheme):  # never echo the rest: it may hold a password
                raise ValueError("not a URL; write redis://[:password@]host:port/db, rediss://... or unix://...")
            if scheme not in ("redis", "rediss", "unix"):
                raise ValueError(f"scheme {scheme!r} is not supported; use redis://, rediss:// or unix:// "
                                 "(Sentinel is not supported yet: give the primary's address)")
        return value
    data_dir: str = "var/redis"
    key_prefix: str = "notifier:"


class ComponentSettings(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    name: str
    group: str | None = None
    description: str = ""
    # the name in other page languages, e.g. {de: Startseite}; ``name`` is the fallback
    names: dict[str, str] = {}
    # an internal system: alerts may route to it, it is never shown or named; see docs/engine.md
    hidden: bool = False
    # public component id -> the status an outage of this (hidden) component causes there
    affects: dict[str, ComponentStatus] = {}

    def name_in(self, language: str) -> str:
        return self.names.get(language) or self.name


class DeliverySettings(_Strict):
    lease_seconds: float = Field(120, gt=0, description="a claim older than this is presumed dead")
    task_time_limit: float = Field(60, gt=0, description="hard limit for one send, HTTP included")
    http_timeout: float = Field(10, gt=0)
    deadline_hours: float = Field(24, gt=0, description="after this a notice becomes failed")
    backoff_base: float = Field(2, gt=0)
    backoff_max: float = Field(600, gt=0, description="longest wait between two tries")
    sweep_interval: float = Field(15, gt=0, description="seconds between ledger sweeps (beat)")
    visibility_timeout: float = Field(7200, gt=0, description="Redis broker redelivery timeout")
    requeue_after: float = Field(30, gt=0, description="sweeper re-enqueues a due notice untouched this long")

    def check_invariants(self) -> list[ConfigProblem]:
        problems = []
        if self.lease_seconds <= self.task_time_limit:
            problems.append(
                ConfigProblem(
                    "delivery.lease_seconds",
                    "must exceed delivery.task_time_limit, or a live send could be presumed dead",
                )
            )
        if self.http_timeout >= self.task_time_limit:
            problems.append(ConfigProblem("delivery.http_timeout", "must be below delivery.task_time_limit"))
        if self.visibility_timeout <= self.backoff_max + self.task_time_limit:
            problems.append(
                ConfigProblem(
                    "delivery.visibility_timeout",
                    "must exceed delivery.backoff_max + delivery.task_time_limit, or Redis redelivers "
                    "tasks that are merely waiting for their countdown",
                )
            )
        return problems


class ApiSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = 8080
    # Behind a TLS-terminating proxy: believe its X-Forwarded-Proto/-For, so console cookies are Secure
    # and the sign-in limit counts real clients, not the proxy. Only the proxy's own addresses count.
    trust_proxy: bool = False
    forwarded_allow_ips: list[str] = ["127.0.0.1"]


class StaffToken(_Strict):
    name: str
    token: SecretStr  # must be a ${ENV_VAR} reference
    role: str = Field(pattern=r"^(viewer|editor|publisher)$")


class StaffSettings(_Strict):
    tokens: list[StaffToken] = []


class Settings(_Strict):
    page: PageSettings = PageSettings()  # type: ignore[call-arg]
    redis: RedisSettings = RedisSettings()
    components: list[ComponentSettings] = []
    channels: dict[str, ChannelSettings] = {}
    delivery: DeliverySettings = DeliverySettings()  # type: ignore[call-arg]
    api: ApiSettings = ApiSettings()
    templates_dir: str | None = None
    # Sections owned by other parts (sources, engine) validate themselves;
    # unknown top-level keys are still an error.
    sources: SourcesSettings = SourcesSettings()  # type: ignore[call-arg]
    engine: dict[str, Any] = {}
    staff: StaffSettings = StaffSettings()
    source_path: str = "<embedded defaults>"
    _references: dict[tuple[str, ...], str] = PrivateAttr(default_factory=dict)

    def component(self, component_id: str) -> ComponentSettings | None:
        return next((c for c in self.components if c.id == component_id), None)

    def redacted(self) -> dict[str, Any]:
        """A dump safe to print: SecretStr fields come out as '**********', and every value that came
        from the environment as its ${VAR} reference, never the value (it may hold a credential)."""
        data = self.model_dump(mode="json", exclude={"source_path"}, by_alias=True)
        data["channels"] = {n: c.model_dump(mode="json") for n, c in self.channels.items()}
        for path, text in self._references.items():
            node: Any = data
            for key in path[:-1]:
                node = node.get(key) if isinstance(node, dict) else (
                    node[int(key)] if isinstance(node, list) and key.isdigit() and int(key) < len(node) else None)
                if node is None:
                    break
            if isinstance(node, dict) and path[-1] in node:
                node[path[-1]] = text
            elif isinstance(node, list) and path[-1].isdigit() and int(path[-1]) < len(node):
                node[int(path[-1])] = text
        return data


# --------------------------------------------------------------------------------------------------
# Loading


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
    from notifier.channels import CHANNEL_TYPES  # registry imports channel modules; keep lazy

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
    if settings is not None:
        from notifier.engine.settings import check_timers

        problems.extend(check_timers(raw.get("engine"), settings.page.heartbeat(), settings.page.stale_after_minutes))

    if problems or settings is None:
        raise ConfigError(problems, label)
    settings.channels = channels
    settings._references = {path: text for path, text in _reference_texts(raw_text_tree, ()).items()}
    return settings


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


def mask_url(url: str) -> str:
    """redis://:s3cret@host:6379/0 -> redis://:***@host:6379/0; a ?password=... is masked too."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{hostport}"
    query = "&".join(
        f"{k}=***" if k.lower() == "password" else f"{k}={v}" for k, v in parse_qsl(parts.query, keep_blank_values=True)
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
