"""The settings models: what a valid configuration is, with no knowledge of where it comes from.

A leaf: this module imports pydantic, the domain and the sources' own settings, never the channel
registry. Reading, interpolating and validating a file (including each channel entry against its
channel type's ``settings_model``) is ``notifier.config_loader``'s job.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from notifier.domain.model import ComponentStatus
from notifier.errors import ConfigProblem
from notifier.sources.settings import SourcesSettings


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
    # The notifier's public subscribe endpoint (on the notifier host, not the page host), e.g.
    # https://notifier.example.net/subscribe: the page shows a sign-up form posting there. None: no form.
    subscribe_url: str | None = None
    # Show probe results: a response-time sparkline per probed component, failed probe runs in the bars
    probe_results: bool = False

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

    @field_validator("subscribe_url")
    @classmethod
    def _subscribe_url(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith(("http://", "https://")) or not urlsplit(value).hostname):
            raise ValueError("must be an http:// or https:// URL (the notifier's /subscribe endpoint)")
        return value.rstrip("/") if value is not None else None

    def subscribe_origin(self) -> str | None:
        """scheme://host[:port] of ``subscribe_url``: the page's CSP allows its form to post there."""
        if self.subscribe_url is None:
            return None
        parts = urlsplit(self.subscribe_url)
        return f"{parts.scheme}://{parts.netloc}"

    def incident_url(self, incident_id: str) -> str:
        return f"{self.url}incidents/{incident_id}.html"


def _sentinel_address(entry: str) -> str:
    host, sep, port = entry.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{entry!r} is not host:port (e.g. 10.0.0.1:26379)")
    return entry


class RedisSettings(_Strict):
    # None (and no sentinels): start a private redis-server with AOF under data_dir (make run, demos)
    url: SecretStr | None = None
    # Redis Sentinel: host:port of each Sentinel; the master's address is asked from them (and asked
    # again after a failover). Set master_name too; url then only may carry the master's password/db.
    sentinels: list[Annotated[str, AfterValidator(_sentinel_address)]] = []
    master_name: str | None = Field(default=None, min_length=1)
    # the password of the Redis servers behind Sentinel (and AUTH of redis.url), a ${ENV} reference
    password: SecretStr | None = None
    # Sentinel's own password (its requirepass), a ${ENV} reference; None: Sentinels without AUTH
    sentinel_password: SecretStr | None = None
    db: int = Field(default=0, ge=0)
    # Acknowledged means replicated: a webhook's 202, a staff write's 201 and a ledger 'posted' are
    # answered only after WAIT saw this many replicas take the write (0: do not wait, one-host setups)
    min_replicas: int = Field(default=0, ge=0)
    wait_timeout_ms: int = Field(default=1000, gt=0, description="how long WAIT waits for min_replicas")

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value():
            raw = value.get_secret_value()
            scheme = raw.split("://", 1)[0].lower() if "://" in raw else ""
            if not re.fullmatch(r"[a-z][a-z0-9+.-]{0,15}", scheme):  # never echo the rest: it may hold a password
                raise ValueError("not a URL; write redis://[:password@]host:port/db, rediss://... or unix://...")
            if scheme == "sentinel":
                raise ValueError("for Redis Sentinel, list the Sentinels under redis.sentinels (host:port) and "
                                 "name the master in redis.master_name; leave redis.url out")
            if scheme not in ("redis", "rediss", "unix"):
                raise ValueError(f"scheme {scheme!r} is not supported; use redis://, rediss:// or unix://, "
                                 "or redis.sentinels + redis.master_name for Sentinel")
        return value

    @property
    def private(self) -> bool:
        """Neither redis.url nor redis.sentinels: `notifier run` starts a private redis-server."""
        return self.url is None and not self.sentinels

    def sentinel_addresses(self) -> list[tuple[str, int]]:
        return [(e.rpartition(":")[0].strip("[]"), int(e.rpartition(":")[2])) for e in self.sentinels]

    def check_invariants(self) -> list[ConfigProblem]:
        problems = []
        if self.sentinels and not self.master_name:
            problems.append(ConfigProblem("redis.master_name", "required with redis.sentinels: the name the "
                                          "Sentinels monitor the master under (`sentinel monitor <name> ...`)"))
        if self.master_name and not self.sentinels:
            problems.append(ConfigProblem("redis.sentinels", "required with redis.master_name: list the "
                                          "Sentinels as host:port"))
        if self.sentinels and self.url is not None:
            problems.append(ConfigProblem("redis.url", "leave it out with redis.sentinels: the Sentinels tell "
                                          "where the master is (put its password in redis.password)"))
        return problems

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


class RelaySettings(_Strict):
    """The mail relay subscribers' mail leaves through: any provider's SMTP endpoint, sharing nothing
    with the mail servers of the service the page is about."""

    host: str = "127.0.0.1"
    port: int = Field(25, gt=0, lt=65536)
    # starttls: upgrade after EHLO (587); tls: implicit TLS from the first byte (465); none: loopback sinks only
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: SecretStr | None = None  # ${ENV} references, both or neither
    password: SecretStr | None = None
    from_address: str = "status@example.com"
    from_name: str | None = None  # default page.name
    timeout: float = Field(10, gt=0, le=120, description="seconds per SMTP command")
    # messages carried by one connection before it is closed and a new one opened (relays limit this)
    messages_per_connection: int = Field(100, ge=1, le=10000)
    verify_tls: bool = True

    @model_validator(mode="after")
    def _credentials(self) -> RelaySettings:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password: give both or neither")
        if "@" not in self.from_address or any(c in self.from_address for c in "\r\n <>"):
            raise ValueError("from_address must be a plain address like status@example.com")
        return self


class SubscribersSettings(_Strict):
    """Self-service e-mail subscribers (README "Subscribers"): sign-up on the page, double opt-in."""

    # signs confirmation, unsubscribe and manage links (HMAC-SHA256); a ${ENV} reference, 16+ characters
    secret: SecretStr | None = None
    confirm_hours: float = Field(48, gt=0, description="a confirmation link expires after this")
    relay: RelaySettings = RelaySettings()  # type: ignore[call-arg]
    # the public sign-up endpoint's limits (fixed windows): per client address and per e-mail address
    per_client: int = Field(10, ge=1, description="sign-ups one client may make per window")
    per_address: int = Field(3, ge=1, description="confirmation mails one address gets per window")
    window_seconds: float = Field(3600, gt=0)
    # webhook subscribers (README "Webhook subscribers"): private/loopback receiver URLs are refused (SSRF)
    webhook_allow_private: bool = False
    webhook_timeout: float = Field(5, gt=0, le=30, description="seconds to connect and for each read")
    webhook_max_failures: int = Field(3, ge=1, description="failed deliveries in a row that end a subscription")

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters (a random string: `openssl rand -hex 32`)")
        return value


class StaffToken(_Strict):
    name: str
    token: SecretStr  # must be a ${ENV_VAR} reference
    role: str = Field(pattern=r"^(viewer|editor|publisher)$")


class StaffSettings(_Strict):
    tokens: list[StaffToken] = []


class ChannelSettings(BaseModel):
    """Settings every channel accepts; each channel subclasses this with its own fields."""

    model_config = ConfigDict(extra="forbid")

    type: str
    enabled: bool = True
    language: str | None = None  # overrides page.language for this channel
    # auto: publish engine updates at once; approve: they become drafts a publisher approves
    approval: Literal["auto", "approve"] = "auto"
    # with approval=approve: publish anyway after this many minutes without an answer (None: never)
    auto_publish_after_minutes: float | None = None


ProbeKind = Literal["http", "tcp", "smtp", "dns", "imap", "pop3"]
_DEFAULT_PORTS = {"smtp": 25, "imap": 143, "pop3": 110}


class ProbeSettings(_Strict):
    """One outside-in check of one component (see README "Probes"); failures feed the engine as source ``probe``."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    component: str
    type: ProbeKind
    # http(s): a URL; tcp/smtp/imap/pop3: host:port (or host: the protocol's port); dns: the name to resolve
    target: str
    interval: float = Field(30, gt=0, description="seconds between two runs from one location")
    timeout: float = Field(10, gt=0, le=120, description="seconds for one run, connect to last byte")
    retries: int = Field(2, ge=0, le=20, description="failed runs tolerated before the location votes down")
    slow_ms: float | None = Field(None, gt=0, description="a run slower than this is slow (degraded)")
    down_status: ComponentStatus = ComponentStatus.MAJOR_OUTAGE
    slow_status: ComponentStatus = ComponentStatus.DEGRADED_PERFORMANCE
    # http: accepted status codes (default 200-399), a text the body must contain, TLS days-left floor
    expect_status: list[int] = []
    keyword: str | None = None
    tls_min_days: float | None = Field(None, ge=0, description="https: fewer days left on the cert is down")
    verify_tls: bool = True
    # smtp/imap/pop3: STARTTLS after the greeting; tls: implicit TLS from the first byte (465/993/995)
    starttls: bool = False
    tls: bool = False
    # imap/pop3: a canary login; both must be ${ENV} references
    username: SecretStr | None = None
    password: SecretStr | None = None
    # dns: addresses the name must resolve to (any of them); empty: resolving at all is enough
    expect_addresses: list[str] = []

    @field_validator("down_status", "slow_status")
    @classmethod
    def _problem_status(cls, value: ComponentStatus) -> ComponentStatus:
        if value in (ComponentStatus.OPERATIONAL, ComponentStatus.UNDER_MAINTENANCE):
            raise ValueError("must be degraded_performance, partial_outage or major_outage")
        return value

    @field_validator("target")
    @classmethod
    def _target_fits_type(cls, value: str, info: ValidationInfo) -> str:
        kind = info.data.get("type")
        if kind == "http":
            if not value.startswith(("http://", "https://")) or not urlsplit(value).hostname:
                raise ValueError("an http probe needs an http:// or https:// URL")
        elif kind == "dns":
            if not value or "/" in value or ":" in value:
                raise ValueError("a dns probe needs a host name, e.g. mail.example.com")
        elif kind is not None:
            host, port = _host_port(value, kind)
            if not host or port is None or not 0 < port < 65536:
                raise ValueError(f"a {kind} probe needs host:port, e.g. mail.example.com:25")
        return value

    @model_validator(mode="after")
    def _options_fit(self) -> ProbeSettings:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password: give both or neither")
        if self.username is not None and self.type not in ("imap", "pop3"):
            raise ValueError("username/password: only imap and pop3 probes log in")
        if self.starttls and self.tls:
            raise ValueError("starttls and tls: choose one (tls is implicit TLS, starttls upgrades)")
        return self

    def host_port(self) -> tuple[str, int | None]:
        return _host_port(self.target, self.type)


def _host_port(target: str, kind: str) -> tuple[str, int | None]:
    host, sep, port = target.rpartition(":")
    if not sep:
        return target, _DEFAULT_PORTS.get(kind)
    return host.strip("[]"), int(port) if port.isdigit() else None


class ProbesSettings(_Strict):
    """Outside-in probes: run on the workers (queue ``notifier.probes.<location>``) through beat."""

    # where this process probes from: each worker host sets its own (e.g. ${NOTIFIER_LOCATION:-local})
    location: str = Field("local", pattern=r"^[a-z0-9][a-z0-9_-]*$")
    # every location that probes; beat sends each its tick. A component is down once `quorum` of them agree
    locations: list[str] = ["local"]
    quorum: int = Field(1, ge=1)
    tick_seconds: float = Field(5, gt=0, le=60, description="how often beat looks for due probes")
    concurrency: int = Field(32, ge=1, le=512, description="threads one tick runs probes on")
    checks: list[ProbeSettings] = []

    @field_validator("quorum")
    @classmethod
    def _quorum_reachable(cls, value: int, info: ValidationInfo) -> int:
        locations = info.data.get("locations")
        if locations is not None and value > len(locations):
            raise ValueError(f"{value} is more than the {len(locations)} locations in probes.locations")
        return value

    @field_validator("checks")
    @classmethod
    def _unique_names(cls, value: list[ProbeSettings]) -> list[ProbeSettings]:
        names = [c.name for c in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate probe name {', '.join(dupes)}")
        return value

    def get(self, name: str) -> ProbeSettings | None:
        return next((c for c in self.checks if c.name == name), None)


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
    probes: ProbesSettings = ProbesSettings()  # type: ignore[call-arg]
    subscribers: SubscribersSettings = SubscribersSettings()  # type: ignore[call-arg]
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
