"""Configuration: defaults in code ← one TOML file ← environment variables, validated when loaded.

The file is `config/gateway.toml` unless `--config` or `HELPDESK_GATEWAY_CONFIG` names another (a missing
default file is fine: the defaults run the gateway). Every key can be overridden by an environment variable
`HELPDESK_GATEWAY__SECTION__KEY` (nested sections joined by `__`, e.g. `HELPDESK_GATEWAY__EMAIL__SMTP__PORT`);
its value is read as a TOML value when it parses as one (`2525`, `true`, `["a", "b"]`) and as a string
otherwise. A bad key or value raises `ConfigError` whose message is one line naming where it came from (the
file or the variable), the key, and what is expected.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from channels.email.settings import EmailSettings
from channels.voice.settings import VoiceSettings
from channels.web.settings import WebSettings

ENV_PREFIX = "HELPDESK_GATEWAY__"
ENV_CONFIG = "HELPDESK_GATEWAY_CONFIG"
DEFAULT_CONFIG = Path("config/gateway.toml")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class StorageConfig(Section):
    data_dir: Path = Path("data")
    url: str | None = Field(None, description="SQLAlchemy URL; default: a SQLite file in data_dir")
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("sqlite", "postgresql")):
            raise ValueError("expected an SQLAlchemy URL starting with sqlite:// or postgresql://")
        return v

    def database_url(self) -> str:
        from ticketing.storage import default_url

        return self.url or default_url(self.data_dir)


class SlaEntry(Section):
    respond_minutes: int = Field(gt=0)
    resolve_minutes: int = Field(gt=0)


class TicketingConfig(Section):
    number_prefix: str = Field("HD", pattern=r"^[A-Z]{2,5}$")
    default_language: Literal["it", "fr", "en"] = "it"
    low_confidence: float = Field(0.6, ge=0, le=1, description="fields below this are flagged for the operator")
    pipeline: list[str] = Field(
        default_factory=lambda: ["clean_text", "identify_reporter", "match_asset", "extract_anomaly", "set_urgency"]
    )
    sla: dict[Literal["low", "normal", "high", "critical"], SlaEntry] = Field(
        default_factory=lambda: {
            "critical": SlaEntry(respond_minutes=15, resolve_minutes=240),
            "high": SlaEntry(respond_minutes=60, resolve_minutes=480),
            "normal": SlaEntry(respond_minutes=240, resolve_minutes=4320),
            "low": SlaEntry(respond_minutes=480, resolve_minutes=14400),
        }
    )

    # Support groups (issue 12): where an escalation goes when the ticket's asset names no group for the level.
    default_group_ii: str | None = Field(None, description="group name for level II escalations without an asset's group")
    default_group_iii: str | None = Field(None, description="group name for level III escalations without an asset's group")
    sla_check_seconds: float = Field(60.0, gt=0, description="how often the SLA warnings and breaches are looked for")
    incident_window_minutes: int = Field(120, ge=0, le=10080, description="a new ticket on the asset of an open parent incident created (or given a child) this close in time is proposed for a link")

    @field_validator("pipeline")
    @classmethod
    def _pipeline(cls, v: list[str]) -> list[str]:
        from ticketing.extraction import check_pipeline

        return list(check_pipeline(v))

    @field_validator("sla")
    @classmethod
    def _sla(cls, v: dict) -> dict:
        if "normal" not in v:
            raise ValueError("expected an entry for 'normal' urgency")
        return v


class DirectoryConfig(Section):
    assets_csv: Path | None = Path("config/assets.csv")
    users_csv: Path | None = Path("config/users.csv")
    organisations_csv: Path | None = Path("config/organisations.csv")
    groups_csv: Path | None = Path("config/groups.csv")
    seed_when_empty: bool = Field(True, description="import the CSV files at start when the tables are empty")
    reload_seconds: float = Field(60.0, gt=0)


class LoggingConfig(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = Field("text", description="json: one JSON object per line, for log shippers")


class Config(Section):
    storage: StorageConfig = Field(default_factory=StorageConfig)
    ticketing: TicketingConfig = Field(default_factory=TicketingConfig)
    directory: DirectoryConfig = Field(default_factory=DirectoryConfig)
    # One section per channel, defined beside the channel it configures.
    email: EmailSettings = Field(default_factory=EmailSettings)
    voice: VoiceSettings = Field(default_factory=VoiceSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    source: str = Field("defaults", exclude=True)


class ConfigError(Exception):
    """One line: where the bad setting came from, its key, and what is expected."""


def load_config(path: Path | str | None = None, environ: dict[str, str] | None = None) -> Config:
    environ = dict(os.environ if environ is None else environ)
    explicit = path is not None or ENV_CONFIG in environ
    path = Path(path or environ.get(ENV_CONFIG) or DEFAULT_CONFIG)
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: not valid TOML: {e}") from None
    elif explicit:
        raise ConfigError(f"{path}: no such configuration file")
    origins: dict[tuple[str, ...], str] = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        keys = tuple(k.lower() for k in name[len(ENV_PREFIX) :].split("__"))
        if not all(keys):
            raise ConfigError(f"environment {name}: expected HELPDESK_GATEWAY__SECTION__KEY")
        node = data
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"environment {name}: {'.'.join(keys[:-1])} is not a section")
        node[keys[-1]] = _env_value(raw)
        origins[keys] = f"environment {name}"
    try:
        config = Config.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = tuple(str(p) for p in err["loc"])
        where = next((origins[loc[:i]] for i in range(len(loc), 0, -1) if loc[:i] in origins), str(path))
        raise ConfigError(f"{where}: {'.'.join(loc) or '(top)'}: {_explain(err)}") from None
    config.source = str(path) if path.exists() else "defaults"
    return config


def _env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _explain(err: dict) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return f"{msg} (got {err['input']!r})" if "input" in err and not isinstance(err["input"], dict) else msg
