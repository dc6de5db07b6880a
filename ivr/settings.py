"""One typed settings object for every role.

Sources, later ones winning: defaults below, optional env files (``IVR_ENV_FILE``, default
``.env`` when present; several separated by ``:``, later ones winning), then environment
variables with the prefix ``IVR_`` and ``__`` for nesting (``IVR_AMI__SECRET``,
``IVR_WEB__PORT``). See ``docker/ivr.env.example`` for every key.

Invalid configuration raises :class:`ivr.errors.ConfigError` naming the offending key.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
from collections.abc import Mapping
from datetime import date
from ipaddress import IPv4Address, IPv4Network, IPv6Network
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from ivr.errors import ConfigError

REPO_DIR = Path(__file__).resolve().parent.parent


PLACEHOLDERS = frozenset({"change-me", "changeme", "secret", "password"})


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ListenSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)


class FastAgiSettings(ListenSettings):
    port: int = Field(default=4573, ge=1, le=65535)
    header_timeout_s: float = Field(default=5.0, gt=0)  # agi_* block must arrive within this
    header_limit_bytes: int = Field(default=64 * 1024, ge=1024)  # and be no bigger than this
    command_timeout_s: float = Field(default=120.0, gt=0)  # longest wait for one AGI reply


# An AMI account name: it becomes a section header of Asterisk's manager configuration.
AMI_ACCOUNT_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"


class AmiSettings(BaseModel):
    """Two AMI accounts, one per purpose (their classes: ivr/adapters/telephony/asterisk.py).

    The listener's (``username``/``secret``): the ami role, which reads events and asks only
    Ping, CoreShowChannels and QueueStatus. The actions account (``actions_username``/
    ``actions_secret``): ``ivr call`` and whatever places calls or moves queue members
    (Originate, PlayDTMF, QueueAdd, QueuePause). Neither may run programs or commands."""

    host: str = "127.0.0.1"
    port: int = Field(default=5038, ge=1, le=65535)
    username: str = Field(default="hotline-listener", pattern=AMI_ACCOUNT_PATTERN)
    # required by the ami role; `ivr up` generates one into run_dir/ami.secret
    secret: SecretStr | None = None
    actions_username: str = Field(default="hotline-actions", pattern=AMI_ACCOUNT_PATTERN)
    # required by `ivr call`; `ivr up` generates one into run_dir/ami-actions.secret
    actions_secret: SecretStr | None = None
    connect_timeout_s: float = Field(default=5.0, gt=0)
    ping_interval_s: float = Field(default=10.0, gt=0)
    ping_timeout_s: float = Field(default=5.0, gt=0)  # a ping unanswered this long = dead link
    backoff_initial_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0)
    event_queue_size: int = Field(default=10_000, ge=10)

    @model_validator(mode="after")
    def _two_accounts(self) -> Self:
        if self.username == self.actions_username:
            raise ValueError(
                f"username and actions_username are both {self.username!r}: the listener "
                "and the actions account are two accounts"
            )
        return self


class RedisSettings(BaseModel):
    # Credentials are not kept in the URL (it is shown in logs and `ivr status`): a URL with
    # user:password@ is split into username and password below.
    url: str = "redis://127.0.0.1:6380/0"
    username: str | None = None  # an ACL user; None: Redis's default user
    # None: `ivr up`'s Redis password is taken from run_dir/redis.secret (when present)
    password: SecretStr | None = None
    events_maxlen: int = Field(default=100_000, ge=100)  # cap of the ivr:ami:events stream
    # entries older than this leave the ivr:ami:events stream (>= metrics.replay_window_s)
    events_max_age_s: float = Field(default=86_400.0, gt=0)

    @model_validator(mode="after")
    def _credentials_apart(self) -> Self:
        parts = urlsplit(self.url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"url: {self.url!r} is not a redis://, rediss:// or unix:// URL")
        if parts.username is None and parts.password is None:
            return self
        user = unquote(parts.username) if parts.username else None
        if (user and self.username and user != self.username) or (
            parts.password is not None and self.password is not None
        ):
            raise ValueError("url: credentials both in the URL and in username/password")
        self.username = self.username or user
        if parts.password is not None:
            self.password = SecretStr(unquote(parts.password))
        host = parts.netloc.rpartition("@")[2]
        self.url = urlunsplit(parts._replace(netloc=host))
        return self


class WebSettings(ListenSettings):
    port: int = Field(default=8080, ge=1, le=65535)
    # Reverse proxies whose X-Forwarded-For is believed (addresses or networks, JSON list in
    # the environment: IVR_WEB__TRUSTED_PROXIES='["127.0.0.1"]'). Empty: the peer address is
    # the client's, and X-Forwarded-For is ignored, whoever sends it.
    trusted_proxies: list[IPv4Network | IPv6Network] = Field(default_factory=list)
    max_streams_per_user: int = Field(default=4, ge=1)  # live pages open at once per user
    # a live stream ends within about this long of its session ending (sign-out, expiry)
    stream_session_check_s: float = Field(default=5.0, gt=0)

    @field_serializer("trusted_proxies", when_used="json")
    def _proxies_as_json(self, value: list[IPv4Network | IPv6Network]) -> str:
        return _json_field([str(network) for network in value])

    # A bearer token for Prometheus on GET /metrics only (unset: a supervisor session only).
    metrics_token: SecretStr | None = Field(default=None, min_length=32)


def _networks(*addresses: str) -> list[IPv4Network | IPv6Network]:
    return [ipaddress.ip_network(address) for address in addresses]


class AsteriskSettings(BaseModel):
    root: Path = Path("/var/lib/hotline/sid-root")  # the debootstrap'ed sid root (provision)
    instance: str = Field(default="hotline", pattern=r"^[a-z][a-z0-9-]{0,30}$")
    sip_port: int = Field(default=5060, ge=1, le=65535)
    boot_timeout_s: float = Field(default=30.0, gt=0)
    # The digest realm of the agents' SIP accounts: only HA1 = MD5(工号:realm:password) is
    # stored, so changing it needs every password reset (`ivr agents set N --reset-password`).
    sip_realm: str = Field(default="hotline", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    # The carrier trunk: the only source addresses (or networks) whose SIP calls are taken
    # as the carrier's; anything else gets no endpoint (JSON list in the environment).
    trunk_addresses: list[IPv4Network | IPv6Network] = Field(
        default_factory=lambda: _networks("127.0.0.1/32"), min_length=1
    )
    # Calls from the trunk at once; the last trunk_emergency_reserve of them are kept for the
    # emergency numbers (a flood of ordinary calls cannot take the leak line's lines).
    trunk_max_calls: int = Field(default=300, ge=1)
    trunk_emergency_reserve: int = Field(default=20, ge=0)
    # Agents' phones: the address the SIP transports (UDP and TCP on sip_port) and Asterisk's
    # HTTP server (the browsers' WebSocket transport, ws://<sip_bind>:<http_port>/ws) bind to.
    sip_bind: IPv4Address = IPv4Address("127.0.0.1")
    http_port: int = Field(default=8088, ge=1, le=65535)
    # Failed SIP authentications (Asterisk's security events) from one address: after
    # sip_max_failures within sip_failure_window_s the address is refused for sip_block_s.
    # Addresses of the trunk are counted but never blocked (the emergency line comes in there).
    sip_max_failures: int = Field(default=10, ge=1)
    sip_failure_window_s: float = Field(default=300.0, gt=0)
    sip_block_s: float = Field(default=900.0, gt=0)

    @field_serializer("trunk_addresses", when_used="json")
    def _trunk_as_json(self, value: list[IPv4Network | IPv6Network]) -> str:
        return _json_field([str(network) for network in value])

    @model_validator(mode="after")
    def _reserve_below_the_limit(self) -> Self:
        if self.trunk_emergency_reserve >= self.trunk_max_calls:
            raise ValueError(
                f"trunk_emergency_reserve ({self.trunk_emergency_reserve}) must be below "
                f"trunk_max_calls ({self.trunk_max_calls})"
            )
        return self


class DatabaseSettings(BaseModel):
    # SQLAlchemy URL. Unset: sqlite:///<run_dir>/hotline.db. PostgreSQL: postgresql+psycopg://...
    url: str | None = None
    echo: bool = False  # log every SQL statement (debugging only)
    # SQLite: how long a write waits for another process's write before it fails (503)
    busy_timeout_s: float = Field(default=5.0, ge=0)


class AuthSettings(BaseModel):
    cookie_name: str = Field(default="hotline_session", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    cookie_secure: bool | None = None  # None: Secure exactly when the request came over https
    session_lifetime_s: int = Field(default=8 * 3600, ge=60)  # absolute, from sign-in
    # Optional HMAC key for the session tokens stored in SQL; changing it signs everyone out.
    session_secret: SecretStr | None = Field(default=None, min_length=16)
    # Failed sign-ins within login_window_s that cost nothing, per username and per client
    # address; each further failure doubles the wait before the next try (1 s, 2 s, 4 s ...)
    # up to login_max_delay_s. Nothing is ever locked for good.
    login_max_failures: int = Field(default=5, ge=1)
    login_max_failures_per_ip: int = Field(default=20, ge=1)
    login_window_s: int = Field(default=900, ge=1)
    login_max_delay_s: float = Field(default=300.0, gt=0)
    # Password checks (argon2: 64 MiB and a core for a moment each) running at once in one
    # web process; a sign-in waits at most password_check_wait_s for a turn, then 429.
    max_password_checks: int = Field(default=4, ge=1, le=64)
    password_check_wait_s: float = Field(default=2.0, ge=0)


class MetricsSettings(BaseModel):
    """Answer-rate metrics: written by the ami role, read by the web and `ivr metrics`."""

    timezone: str = "Asia/Shanghai"  # IANA zone of the hour/day/month buckets
    default_threshold_s: float = Field(default=60.0, gt=0)  # answered within this: answered
    # Per-queue thresholds (s); in the environment as JSON: IVR_METRICS__THRESHOLDS='{"a": 15}'
    thresholds: dict[str, float] = Field(
        default_factory=lambda: {"emergency": 15.0, "emergency-backup": 15.0}
    )
    skew_tolerance_s: float = Field(default=2.0, gt=0)  # Asterisk/app clock gap seen as skew
    # Abandons within this wait are short abandons: reported apart (docs/figures.md), and
    # still counted as offered and abandoned.
    short_abandon_s: float = Field(default=5.0, ge=0)
    # Asterisk's queue_log, read to classify calls that ended while the AMI link was down.
    queue_log_path: Path | None = None
    queue_log_lookback_s: float = Field(default=6 * 3600.0, gt=0)  # how far back to read it
    buffer_max: int = Field(default=100_000, ge=10)  # batches held while Redis is away
    replay_window_s: float = Field(default=6 * 3600.0, ge=0)  # stream replayed at start; 0: off
    hour_retention_days: int = Field(default=35, ge=1)  # hourly counters kept
    day_retention_days: int = Field(default=400, ge=1)  # daily counters kept
    month_retention_days: int = Field(default=1830, ge=1)  # monthly counters kept
    dedup_retention_days: int = Field(default=35, ge=1)  # calls remembered as counted

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name: Asia/Shanghai)") from None
        return value

    @field_validator("thresholds")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        bad = sorted(queue for queue, seconds in value.items() if not seconds > 0)
        if bad:
            raise ValueError(f"thresholds must be > 0 s: {', '.join(bad)}")
        return value

    @field_serializer("thresholds", when_used="json")
    def _thresholds_as_json(self, value: dict[str, float]) -> str:
        """One JSON string, so that the settings flatten into ONE environment variable."""
        import json

        return json.dumps(value, sort_keys=True)


ROLE_NAMES = frozenset({"qa", "supervisor", "admin"})


def _json_field(value: object) -> str:
    """One JSON string, so that a dict/list setting flattens into ONE environment variable."""
    import json

    return json.dumps(value, sort_keys=True, ensure_ascii=False)


class RecordingsSettings(BaseModel):
    """Call recordings: where they are kept, who sees numbers, how long files live."""

    dir: Path | None = None  # the catalogued stereo files; None: <run_dir>/recordings
    # Where Asterisk's MixMonitor writes the legs; None: the instance's spool/monitor.
    monitor_dir: Path | None = None
    scan_interval_s: float = Field(default=1.0, gt=0)  # the recorder looks for ended calls
    # Legs with no end-of-call marker (Asterisk died mid-call) are catalogued after this long.
    incomplete_after_s: float = Field(default=6 * 3600.0, gt=0)
    # An ended call whose facts file is missing or cut short, or whose voice message is not
    # in SQL yet, is catalogued after this long all the same.
    facts_grace_s: float = Field(default=30.0, gt=0)
    retention_days: int = Field(default=365, ge=1)  # files older than this are deleted
    # Below this much free space where recordings, the spool or the run folder live, the
    # recorder and the web role warn (logs, health, supervisor page) before the disk fills.
    min_free_mib: int = Field(default=2048, ge=0)
    retention_interval_s: float = Field(default=3600.0, gt=0)  # how often retention runs
    # Roles that see callers' numbers unmasked (everyone else sees 138******77).
    unmasked_roles: list[str] = Field(default_factory=lambda: ["admin"])
    # Searches by a number's last digits, per user and hour (only roles that see numbers
    # may make them; the others search by a whole number).
    partial_search_per_hour: int = Field(default=30, ge=1)
    conversion_dir: Path | None = None  # mp3 downloads are made here; None: <run_dir>/cache

    @field_validator("unmasked_roles")
    @classmethod
    def _known_roles(cls, value: list[str]) -> list[str]:
        bad = sorted(set(value) - ROLE_NAMES)
        if bad:
            raise ValueError(f"unknown role(s) {', '.join(bad)}; roles: qa, supervisor, admin")
        return value

    @field_serializer("unmasked_roles", when_used="json")
    def _roles_as_json(self, value: list[str]) -> str:
        return _json_field(value)


def _default_danger_words() -> dict[str, list[str]]:
    return {
        "zh": ["燃气泄漏", "漏气", "煤气味", "燃气味", "着火", "爆炸", "起火"],
        "en": ["gas leak", "smell gas", "smell of gas", "fire", "explosion"],
        "ko": ["가스", "불이", "화재", "폭발"],
    }


class SttSettings(BaseModel):
    """Offline speech-to-text (vosk) and its Redis job queue."""

    # The vosk model folder (unpacked). `ivr stt install-model ZIP` puts models under
    # models_dir; production points this at the Mandarin model.
    model_path: Path = REPO_DIR / "models" / "vosk-model-small-cn-0.22"
    models_dir: Path = REPO_DIR / "models"  # where `ivr stt install-model` unpacks
    language: str = Field(default="zh", pattern=r"^[a-z]{2}$")  # the model's language
    stream: str = "ivr:stt:jobs"  # Redis stream of jobs
    group: str = "stt-workers"  # its consumer group
    max_attempts: int = Field(default=4, ge=1)  # then the job is parked as dead
    backoff_initial_s: float = Field(default=5.0, gt=0)  # first retry after this, then doubled
    backoff_max_s: float = Field(default=300.0, gt=0)
    claim_idle_s: float = Field(default=60.0, gt=0)  # a job silent this long is taken over
    heartbeat_s: float = Field(default=10.0, gt=0)  # a running job says it lives this often
    # Longer files are refused (status "too long", dead letter): a call rarely lasts an hour.
    max_audio_s: float = Field(default=3600.0, gt=0)
    model_poll_s: float = Field(default=5.0, gt=0)  # with no model, look for one this often
    concurrency: int = Field(default=1, ge=1, le=64)  # worker processes of `ivr stt-worker`
    sweep_s: float = Field(default=5.0, gt=0)  # unsent and lost jobs are (re)sent this often
    drain_s: float = Field(default=10.0, ge=0)  # on SIGTERM a running job may finish this long
    # Words that raise a ticket's priority and flag it on the supervisor page, per language.
    danger_words: dict[str, list[str]] = Field(default_factory=_default_danger_words)
    danger_priority: int = Field(default=90, ge=1)  # a ticket's priority after a match

    @field_serializer("danger_words", when_used="json")
    def _danger_as_json(self, value: dict[str, list[str]]) -> str:
        return _json_field(value)

    @model_validator(mode="after")
    def _heartbeat_within_claim(self) -> Self:
        if self.heartbeat_s >= self.claim_idle_s:
            raise ValueError(
                f"heartbeat_s ({self.heartbeat_s:g}) must be below claim_idle_s "
                f"({self.claim_idle_s:g}), or running jobs are taken over by other workers"
            )
        return self


TicketLevel = Literal["L1", "L2", "L3", "L4"]


def _default_desk_levels() -> dict[str, TicketLevel]:
    return {"emergency": "L1", "repair": "L2", "complaints": "L3", "billing": "L3",
            "consultation": "L4"}  # fmt: skip


class TicketsSettings(BaseModel):
    """工单 deadlines (docs/tickets.md: complaint levels L1 2 h, L2 48 h, L3 4 and L4 7
    working days), counted in this time zone, Saturdays and Sundays off."""

    timezone: str = "Asia/Shanghai"
    holidays: list[date] = Field(default_factory=list)  # extra days off (public holidays)
    workdays: list[date] = Field(default_factory=list)  # weekend days worked (调休)
    # A new ticket's level by desk (emergency calls and danger words: always L1), as JSON in
    # the environment: IVR_TICKETS__DESK_LEVELS='{"repair": "L2"}'; other desks: default_level.
    desk_levels: dict[str, TicketLevel] = Field(default_factory=_default_desk_levels)
    default_level: TicketLevel = "L3"
    # 重复投诉: a complaint repeats an earlier one from the same number or account, about the
    # same matter, within this many local days (ivr.core.repeats)
    repeat_window_days: int = Field(default=30, ge=1, le=366)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return MetricsSettings._known_zone(value)

    @model_validator(mode="after")
    def _days_apart(self) -> Self:
        both = sorted(set(self.holidays) & set(self.workdays))
        if both:
            days = ", ".join(d.isoformat() for d in both)
            raise ValueError(f"days both in holidays and workdays: {days}")
        return self

    @field_serializer("holidays", "workdays", when_used="json")
    def _days_as_json(self, value: list[date]) -> str:
        return _json_field([d.isoformat() for d in value])

    @field_serializer("desk_levels", when_used="json")
    def _levels_as_json(self, value: dict[str, str]) -> str:
        return _json_field(value)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="IVR_",
        env_nested_delimiter="__",
        # several files separated by ':' (the settings, then a secrets file): later ones win
        env_file=tuple(os.environ.get("IVR_ENV_FILE", ".env").split(os.pathsep)),
        extra="forbid",
    )

    allow_public_bind: bool = False  # listening beyond loopback must be asked for
    run_dir: Path = REPO_DIR / "run"  # PID files, logs, Redis data of `ivr up`
    dialplan_dir: Path = REPO_DIR / "dialplan"
    routing_dir: Path = REPO_DIR / "routing"
    prompts_dir: Path = REPO_DIR / "prompts"  # catalog.yaml and studio recordings
    prompts_build_dir: Path = REPO_DIR / "build" / "prompts"  # what Asterisk plays
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    log_json: bool = True

    fastagi: FastAgiSettings = FastAgiSettings()
    ami: AmiSettings = AmiSettings()
    redis: RedisSettings = RedisSettings()
    web: WebSettings = WebSettings()
    asterisk: AsteriskSettings = AsteriskSettings()
    database: DatabaseSettings = DatabaseSettings()
    auth: AuthSettings = AuthSettings()
    metrics: MetricsSettings = MetricsSettings()
    recordings: RecordingsSettings = RecordingsSettings()
    stt: SttSettings = SttSettings()
    tickets: TicketsSettings = TicketsSettings()

    @model_validator(mode="after")
    def _secure_defaults(self) -> Self:
        """No built-in secrets, and nothing listens beyond loopback unless asked."""
        for key, secret in (("ami.secret", self.ami.secret),
                            ("ami.actions_secret", self.ami.actions_secret),
                            ("redis.password", self.redis.password)):  # fmt: skip
            if secret is not None and secret.get_secret_value() in PLACEHOLDERS:
                env = "IVR_" + key.upper().replace(".", "__")
                raise ValueError(f"{key}: {env} is still the example placeholder")
        if self.redis.events_max_age_s < self.metrics.replay_window_s:
            raise ValueError(
                f"redis.events_max_age_s ({self.redis.events_max_age_s:g}) is below "
                f"metrics.replay_window_s ({self.metrics.replay_window_s:g}): the ami role "
                "replays that much of the event stream at start"
            )
        if not self.allow_public_bind:
            for name, listen in (("fastagi", self.fastagi), ("web", self.web)):
                if not _is_loopback(listen.host):
                    raise ValueError(
                        f"{name}.host: {listen.host!r} is not a loopback address; set "
                        "IVR_ALLOW_PUBLIC_BIND=true to listen beyond 127.0.0.1"
                    )
        return self

    @property
    def recordings_dir(self) -> Path:
        return self.recordings.dir or self.run_dir / "recordings"

    @property
    def conversion_dir(self) -> Path:
        return self.recordings.conversion_dir or self.run_dir / "cache"

    # --- secrets: the configured value, else the file `ivr up` generated in the run dir.
    # Read when asked for, not at start: a role that never asks never reads the file.
    @property
    def ami_secret_file(self) -> Path:
        return self.run_dir / "ami.secret"

    @property
    def ami_actions_secret_file(self) -> Path:
        return self.run_dir / "ami-actions.secret"

    @property
    def redis_secret_file(self) -> Path:
        return self.run_dir / "redis.secret"

    def ami_secret(self) -> str:
        """The AMI listener's secret; there is no default: set IVR_AMI__SECRET or run `ivr up`."""
        return _secret(self.ami.secret, self.ami_secret_file, "ami.secret", "AMI listener")

    def ami_actions_secret(self) -> str:
        """The AMI actions account's secret (IVR_AMI__ACTIONS_SECRET, or `ivr up`'s file)."""
        return _secret(
            self.ami.actions_secret, self.ami_actions_secret_file, "ami.actions_secret",
            "AMI actions",
        )  # fmt: skip

    def has_ami_actions_secret(self) -> bool:
        try:
            self.ami_actions_secret()
        except ConfigError:
            return False
        return True

    def redis_password(self) -> str | None:
        """The configured Redis password, else (for Redis's default user) the one `ivr up`
        generated in run_dir/redis.secret, else None (a Redis without authentication)."""
        if self.redis.password is not None:
            return self.redis.password.get_secret_value()
        if self.redis.username is None:
            found = _read_secret_file(self.redis_secret_file)
            if found is not None:
                _refuse_placeholder(found, "redis.password")
            return found
        return None

    def redis_auth(self) -> dict[str, Any]:
        """``username``/``password`` for redis-py (``Redis.from_url(url, **auth)``)."""
        auth: dict[str, Any] = {}
        if self.redis.username is not None:
            auth["username"] = self.redis.username
        password = self.redis_password()
        if password is not None:
            auth["password"] = password
        return auth


def _read_secret_file(path: Path) -> str | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read the secret file {path}: {exc.strerror}") from None
    return text or None


def _refuse_placeholder(value: str, key: str) -> None:
    if value in PLACEHOLDERS:
        env = "IVR_" + key.upper().replace(".", "__")
        raise ConfigError(f"{key} ({env}) is still the example placeholder")


def _secret(value: SecretStr | None, file: Path, key: str, what: str) -> str:
    env = "IVR_" + key.upper().replace(".", "__")
    found = value.get_secret_value() if value is not None else _read_secret_file(file)
    if not found:
        raise ConfigError(
            f"{key} ({env}): no {what} secret configured; set it, or start the stack with "
            f"`ivr up`, which generates one in {file}"
        )
    _refuse_placeholder(found, key)
    return found


# IVR_* variables that are not settings: read by the env-file lookup and by scripts/provision.
NON_SETTING_VARIABLES = frozenset(
    {"IVR_ENV_FILE", "IVR_CACHE_DIR", "IVR_DEBIAN_MIRROR", "IVR_VENV"}
)


def known_variables() -> frozenset[str]:
    names = set(NON_SETTING_VARIABLES)
    for name, field in Settings.model_fields.items():
        names.add(f"IVR_{name.upper()}")
        model = field.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            names.update(f"IVR_{name.upper()}__{sub.upper()}" for sub in model.model_fields)
    return frozenset(names)


def _check_environment(environ: Mapping[str, str]) -> None:
    """pydantic-settings ignores unknown variables; a typo must not pass unnoticed."""
    known = known_variables()
    unknown = sorted(k for k in environ if k.upper().startswith("IVR_") and k.upper() not in known)
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name.upper(), known, n=1)
            hints.append(f"{name}" + (f" (did you mean {close[0]}?)" if close else ""))
        raise ConfigError("invalid configuration: unknown setting " + ", ".join(hints))


def load_settings(**overrides: Any) -> Settings:
    """Build the settings, turning validation errors into one ConfigError naming the keys."""
    _check_environment(os.environ)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "settings"
            env = "__".join(str(p).upper() for p in err["loc"])
            if env and not env.startswith("IVR_"):  # unknown env-file keys keep their prefix
                env = "IVR_" + env
            where = f"{key} ({env})" if env else key
            problems.append(f"{where}: {err['msg']}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
