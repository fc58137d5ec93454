"""The one typed settings model of linetwin.

Every subcommand of ``twin`` reads its configuration from here: defaults in the models below, overridden
by a TOML file (``--config`` or ``LINETWIN_CONFIG``), overridden by ``LINETWIN_*`` environment variables
(nested fields with ``__``, e.g. ``LINETWIN_INFLUX__URL``), overridden by command-line flags. The sample
file ``linetwin.example.toml`` documents every option; a unit test keeps it in step with this module.
Secrets (``SecretStr`` fields) come from the environment, or from a settings file only its owner can read
(``core.secretfiles``).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from core.errors import ConfigError
from core.secretfiles import check_private
from core.uns import Namespace

CONFIG_ENV = "LINETWIN_CONFIG"
DEFAULT_CONFIG_FILE = Path("linetwin.toml")


class Section(BaseModel):
    """A settings section: unknown keys are errors, so a typo in the file never passes silently."""

    model_config = ConfigDict(extra="forbid")


class MqttSettings(Section):
    """The plant's MQTT broker: cyclers publish on it, connectors and the twin read from it."""

    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    tls: bool = False
    ca_file: Path | None = None
    client_id_prefix: str = "linetwin"
    keepalive_s: int = Field(30, ge=5)
    #: first topic level of what linetwin derives (plant bus, retained state, alerts): ``core.uns``
    topic_root: str = Field("linetwin", pattern=r"^[^/+#]+$")


class InfluxSettings(Section):
    """InfluxDB, spoken to through what every generation serves: line protocol writes, InfluxQL queries."""

    url: str = "http://127.0.0.1:8086"
    database: str = "linetwin"
    retention_policy: str = "autogen"
    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = Field(None, description="InfluxDB 2.x/3.x API token (v1 compatibility API)")
    batch_size: int = Field(5000, ge=1)
    flush_interval_ms: int = Field(500, ge=10)
    spool_dir: Path = Path("var/spool")
    timeout_s: float = Field(10.0, gt=0)
    retry_max_s: float = Field(5.0, gt=0, description="longest wait between write retries")


class PlantSettings(Section):
    """The simulated pilot line (``twin sim``)."""

    opcua_endpoint: str = "opc.tcp://127.0.0.1:4840/linetwin"
    scenario: str = "nominal"
    seed: int = 1
    speed: float = Field(1.0, gt=0, le=3600, description="plant seconds per wall-clock second")
    tick_s: float = Field(1.0, gt=0, description="plant seconds between coater/calender samples")
    cycler_channels: int = Field(16, ge=1, le=256)
    cycler_rate_hz: float = Field(1.0, gt=0, description="cycler samples per plant second per channel")
    payload: Literal["json", "sparkplug"] = "json"
    ground_truth_file: Path = Path("var/ground_truth.jsonl")
    duration_s: float | None = Field(None, gt=0, description="stop after this much plant time")
    realistic: bool = Field(
        False, description="a real line's in-control disturbances (plant.disturbances), not clean noise"
    )
    health_port: int | None = Field(None, ge=1, le=65535, description="serve /health and /metrics here")
    opcua_history_s: float | None = Field(
        None,
        gt=0,
        description="keep each OPC UA node's changes this many seconds, so that ingest reads a network cut "
        "or its own downtime back (HistoryRead); unset: no history, as many machines have none",
    )
    #: the OPC UA endpoints offered: Basic256Sha256 Sign and/or SignAndEncrypt, and None (no signing, no
    #: encryption) only when listed (``twin demo`` lists only None)
    opcua_security_modes: list[Literal["None", "Sign", "SignAndEncrypt"]] = Field(
        ["SignAndEncrypt"], min_length=1
    )
    #: own/: the server's certificate and key (made on first start); trusted/: the client certificates
    #: it accepts; rejected/: those it refused (``twin certs`` with ``LINETWIN_OPCUA__PKI_DIR`` set to it)
    opcua_pki_dir: Path = Path("var/pki-sim")
    opcua_pair_with_ingest: bool = Field(
        True,
        description="trust the client certificate of these settings' [opcua] and put the server's into "
        "opcua.pki_dir/trusted, so twin sim and twin ingest of one configuration trust each other",
    )


class OpcUaSettings(Section):
    """The OPC UA client side of ``twin ingest``."""

    endpoints: list[str] = ["opc.tcp://127.0.0.1:4840/linetwin"]
    security_policy: Literal["None", "Basic256Sha256"] = "Basic256Sha256"
    security_mode: Literal["None", "Sign", "SignAndEncrypt"] = "SignAndEncrypt"
    #: the client's identity; unset: pki_dir/own/linetwin-ingest.der and .pem, made on the first start
    certificate: Path | None = None
    private_key: Path | None = None
    server_certificate: Path | None = None
    #: trusted/ and rejected/ server certificates, checked when server_certificate pins none (twin certs)
    pki_dir: Path = Path("var/pki")
    username: str | None = None
    password: SecretStr | None = None
    sampling_interval_ms: float = Field(0.0, ge=0)
    queue_size: int = Field(1000, ge=1)
    deadband_abs: float = Field(0.0, ge=0)
    publishing_interval_ms: float = Field(100.0, gt=0)
    reconnect_min_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)


class IngestSettings(Section):
    """``twin ingest``: which sources to read and how samples are judged."""

    tag_map: Path | None = None
    opcua_enabled: bool = True
    mqtt_enabled: bool = True
    partition: int = Field(0, ge=0, description="this process's share of the MQTT sources")
    partitions: int = Field(1, ge=1, description="how many ingest processes split the MQTT sources")
    max_future_skew_s: float = Field(86400.0, gt=0)
    max_past_age_s: float = Field(30 * 86400.0, gt=0)
    max_payload_bytes: int = Field(256 * 1024, ge=64)
    metrics_port: int | None = 9108
    accounting_interval_s: float = Field(10.0, gt=0, description="how often counters go to InfluxDB")
    bus_enabled: bool = Field(True, description="republish samples on the plant bus")


class ModelSettings(Section):
    """The line model the twin runs (and ``twin backtest`` replays): calibration and alarm limits.

    Limits come from a target in-control average run length (ARL₀), never from per-scenario tuning.
    """

    #: arcusum: the CUSUM on prewhitened features with limits from held-out data (models.prewhitened)
    detector: Literal["twoscale", "cusum", "ewma", "shewhart", "arcusum"] = "twoscale"
    arl0: float = Field(1e6, ge=10, description="in-control average run length per process detector, samples")
    cell_arl0: float = Field(1e4, ge=10, description="in-control average run length per cell detector, cells")
    calibration_s: float = Field(2700.0, gt=0, description="plant seconds each machine calibrates on")
    calibration_cells: int = Field(48, ge=8, description="formed cells the cell models calibrate on")
    memory_s: float = Field(3600.0, gt=0, description="feature history kept for root cause, plant seconds")
    confirm_s: float = Field(
        120.0, ge=0, description="a cause found only by elimination waits this long for a specific one"
    )
    realarm_s: float = Field(8 * 3600.0, gt=0, description="one finding per signal and cause in this window")
    k_mad: float = Field(5.0, gt=0, description="K-value batch threshold: median + k·MAD")
    pca_findings: bool = Field(False, description="PCA T²/SPE alarms become findings, not only a status")
    settle_s: float = Field(
        900.0, ge=0, description="after a setpoint or declared lot change, a step's detectors wait this long"
    )
    rebase_s: float = Field(
        600.0, gt=0, description="then its features take their new in-control mean over this long"
    )
    on_delay_s: float = Field(
        0.0, ge=0, description="ISA-18.2 on-delay: an alarm waits this long, dropped if the setpoints moved"
    )


#: what an API token may do: read state and history, acknowledge and shelve alerts, save what-if runs,
#: push setpoints to the plant, re-baseline a step's model
Scope = Literal["read", "acknowledge", "whatif", "push", "rebaseline"]
SCOPES: tuple[Scope, ...] = ("read", "acknowledge", "whatif", "push", "rebaseline")


class ApiToken(Section):
    """A token kept as its SHA-256 only (``twin token`` makes one), with what it may do."""

    name: str = Field(min_length=1, description="who holds it: recorded with what it changes")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    scopes: list[Scope] = Field(min_length=1)


class TwinSettings(Section):
    """``twin serve``: the twin service and its HTTP API."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    #: one token with every scope, best from the environment (LINETWIN_TWIN__API_TOKEN); in files prefer
    #: ``tokens``, which keep only hashes
    api_token: SecretStr | None = None
    tokens: list[ApiToken] = []
    read_only_without_token: bool = True
    #: without an api_token every change is refused unless this is set (the demo on one machine sets it)
    insecure: bool = Field(
        False, description="accept changes (acknowledge, shelve, push, re-baseline) without any token"
    )
    state_file: Path = Path("var/twin.sqlite")
    lines: list[str] = []
    standby_lines: list[str] = Field(
        [],
        description=(
            "lines (of the same line description) this worker takes over while no worker that owns them is"
            " online; their snapshots must be in this worker's state_file (twin.membership)"
        ),
    )
    membership_wait_s: float = Field(
        2.0, ge=0, description="on start, wait this long for the other workers' statuses on the broker"
    )
    handover_wait_s: float = Field(
        30.0, ge=0, description="on start, wait this long for the worker that took a line over to return it"
    )
    allow_setpoint_push: bool = False
    stop_drain_s: float = Field(
        10.0, ge=0, description="on stop, analyse the queued bus backlog for at most this long"
    )
    catch_up_wait_s: float = Field(
        60.0, ge=0, description="on restart, wait this long for InfluxDB to replay what the twin missed"
    )
    catch_up_max_s: float = Field(
        86400.0, gt=0, description="replay at most this much plant time after the snapshot's marks"
    )


class Settings(BaseSettings):
    """All of linetwin's configuration."""

    model_config = SettingsConfigDict(
        env_prefix="LINETWIN_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    #: the line's ISA-95 identity: the description's, unless set here (file, environment, flag)
    site: str = "site1"
    area: str = "electrodes"
    line: str = "line1"
    #: the line's steps, signals, units, limits and material flow (default: the simulated line)
    line_description: Path | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: json: one JSON object per event, for a plant's log collector
    log_format: Literal["text", "json"] = "text"
    allow_readable_secrets: bool = Field(
        False,
        description="accept a settings file holding secrets, or a private key, that group or others can read",
    )
    mqtt: MqttSettings = MqttSettings()
    influx: InfluxSettings = InfluxSettings()
    plant: PlantSettings = PlantSettings()
    opcua: OpcUaSettings = OpcUaSettings()
    ingest: IngestSettings = IngestSettings()
    twin: TwinSettings = TwinSettings()
    models: ModelSettings = ModelSettings()

    @model_validator(mode="after")
    def _identity_from_description(self) -> Settings:
        """Site, area and line the settings leave unset are the description's (a ConfigError names a
        description that cannot be read)."""
        unset = {"site", "area", "line"} - self.model_fields_set
        if self.line_description is not None and unset:
            from core import linedesc  # linedesc builds on Section

            described = linedesc.load(self.line_description)
            for level in sorted(unset):
                setattr(self, level, getattr(described, level))
        return self

    def namespace(self, line: str | None = None) -> Namespace:
        """The topics of ``line`` (default: this process's line) at this site and area."""
        return Namespace(self.site, self.area, line or self.line, self.mqtt.topic_root)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _config_path()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


def _config_path() -> Path | None:
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        return Path(explicit)
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.exists() else None


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Load settings from ``config`` (or the default file), the environment and ``overrides``.

    Raises ConfigError naming the file and the offending field, never a pydantic traceback.
    """
    if config is not None:
        if not config.is_file():
            raise ConfigError(f"config file {config} does not exist")
        os.environ[CONFIG_ENV] = str(config)
    path = _config_path()
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        where = f"in {path}" if path else "in the environment"
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ConfigError(f"invalid configuration {where}: {problems}") from None
    except ValueError as exc:  # TOML syntax errors carry line and column
        raise ConfigError(f"cannot read {path}: {exc}") from None
    if path is not None and (held := secrets_in(path)):
        check_private(
            path, f"settings file (it sets {', '.join(held)})", allowed=settings.allow_readable_secrets
        )
    return settings


def secrets_in(path: Path) -> list[str]:
    """The secret fields (``SecretStr``: passwords, tokens) the settings file at ``path`` sets."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    held = []
    for name, field in Settings.model_fields.items():
        section, model = data.get(name), field.annotation
        if not (isinstance(section, dict) and isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        for key, option in model.model_fields.items():
            secret = option.annotation is SecretStr or SecretStr in get_args(option.annotation)
            if secret and section.get(key) is not None:
                held.append(f"{name}.{key}")
    return held
