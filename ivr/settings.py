"""One typed settings object for every role.

Sources, later ones winning: defaults below, an optional env file (``IVR_ENV_FILE``, default
``.env`` when present), then environment variables with the prefix ``IVR_`` and ``__`` for
nesting (``IVR_AMI__SECRET``, ``IVR_WEB__PORT``). See ``docker/ivr.env.example`` for every key.

Invalid configuration raises :class:`ivr.errors.ConfigError` naming the offending key.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

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


class AmiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=5038, ge=1, le=65535)
    username: str = "hotline"
    secret: SecretStr | None = None  # required; `ivr up` generates one into run_dir/ami.secret
    connect_timeout_s: float = Field(default=5.0, gt=0)
    ping_interval_s: float = Field(default=10.0, gt=0)
    ping_timeout_s: float = Field(default=5.0, gt=0)  # a ping unanswered this long = dead link
    backoff_initial_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0)
    event_queue_size: int = Field(default=10_000, ge=10)


class RedisSettings(BaseModel):
    url: str = "redis://127.0.0.1:6380/0"
    events_maxlen: int = Field(default=100_000, ge=100)  # cap of the ivr:ami:events stream


class WebSettings(ListenSettings):
    port: int = Field(default=8080, ge=1, le=65535)


class AsteriskSettings(BaseModel):
    root: Path = Path("/var/lib/hotline/sid-root")  # the debootstrap'ed sid root (provision)
    instance: str = Field(default="hotline", pattern=r"^[a-z][a-z0-9-]{0,30}$")
    sip_port: int = Field(default=5060, ge=1, le=65535)
    boot_timeout_s: float = Field(default=30.0, gt=0)


class DatabaseSettings(BaseModel):
    # SQLAlchemy URL. Unset: sqlite:///<run_dir>/hotline.db. PostgreSQL: postgresql+psycopg://...
    url: str | None = None
    echo: bool = False  # log every SQL statement (debugging only)


class AuthSettings(BaseModel):
    cookie_name: str = Field(default="hotline_session", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    cookie_secure: bool | None = None  # None: Secure exactly when the request came over https
    session_lifetime_s: int = Field(default=8 * 3600, ge=60)  # absolute, from sign-in
    # Optional HMAC key for the session tokens stored in SQL; changing it signs everyone out.
    session_secret: SecretStr | None = Field(default=None, min_length=16)
    login_max_failures: int = Field(default=5, ge=1)  # per username within login_window_s
    login_max_failures_per_ip: int = Field(default=20, ge=1)  # per client address, same window
    login_window_s: int = Field(default=900, ge=1)


class MetricsSettings(BaseModel):
    """Answer-rate metrics: written by the ami role, read by the web and `ivr metrics`."""

    timezone: str = "Asia/Shanghai"  # IANA zone of the hour/day/month buckets
    default_threshold_s: float = Field(default=60.0, gt=0)  # answered within this: answered
    # Per-queue thresholds (s); in the environment as JSON: IVR_METRICS__THRESHOLDS='{"a": 15}'
    thresholds: dict[str, float] = Field(
        default_factory=lambda: {"emergency": 15.0, "emergency-backup": 15.0}
    )
    skew_tolerance_s: float = Field(default=2.0, gt=0)  # Asterisk/app clock gap seen as skew
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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="IVR_",
        env_nested_delimiter="__",
        env_file=os.environ.get("IVR_ENV_FILE", ".env"),
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

    @model_validator(mode="after")
    def _secure_defaults(self) -> Self:
        """No built-in secrets, and nothing listens beyond loopback unless asked."""
        if self.ami.secret is None and self.ami_secret_file.exists():
            self.ami.secret = SecretStr(self.ami_secret_file.read_text().strip())
        if self.ami.secret is not None and self.ami.secret.get_secret_value() in PLACEHOLDERS:
            raise ValueError("ami.secret: IVR_AMI__SECRET is still the example placeholder")
        if not self.allow_public_bind:
            for name, listen in (("fastagi", self.fastagi), ("web", self.web)):
                if not _is_loopback(listen.host):
                    raise ValueError(
                        f"{name}.host: {listen.host!r} is not a loopback address; set "
                        "IVR_ALLOW_PUBLIC_BIND=true to listen beyond 127.0.0.1"
                    )
        return self

    @property
    def ami_secret_file(self) -> Path:
        return self.run_dir / "ami.secret"

    def ami_secret(self) -> str:
        """The AMI secret; there is no default: set IVR_AMI__SECRET or run `ivr up`."""
        if self.ami.secret is None or not self.ami.secret.get_secret_value():
            raise ConfigError(
                "ami.secret (IVR_AMI__SECRET): no AMI secret configured; set it, or start the "
                f"stack with `ivr up`, which generates one in {self.ami_secret_file}"
            )
        return self.ami.secret.get_secret_value()


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
