"""Every setting of ``csms serve``, defined once: the TOML file, the environment and the command line.

:class:`ServeSettings` is the one list. The ``serve`` (and ``config show``) flags are derived from it
(:func:`add_arguments`); a key of the file is a field's name (``ocpp_port``), its environment variable
``CHARGETWIN_`` + the name in capitals (``CHARGETWIN_OCPP_PORT``), its flag the name with dashes
(``--ocpp-port``). Precedence, lowest first: defaults, the file, the environment, the command line.

Each source is validated on its own, so a mistake names its key and where it came from (the file's line,
the variable, the flag); a value the file gives must already have the right TOML type (``ocpp_port =
"9000"`` is refused), the environment's text is converted. Settings that need each other are checked once
all sources are merged (:func:`check_together`). Any of it is a :class:`SettingsError`: ``csms`` prints it
and exits with status 2.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import tomllib
import types
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.fields import FieldInfo

from csms.api.redaction import MASK, mask_url
from csms.gateway.frame_rate import FrameRate
from csms.pki.authority import DEFAULT_CERTIFICATE_DAYS
from csms.runtime.logs import LogFormat, LogLevel
from csms.store.database import DEFAULT_URL

ENV_PREFIX = "CHARGETWIN_"
CONFIG_ENV = "CHARGETWIN_CONFIG"
_RATE = FrameRate()


class SettingsError(Exception):
    """A setting that cannot be used: the message names the key, where it came from and why."""


def _setting(default: Any, help_text: str, *, metavar: str | None = None, secret: bool = False,
             flag: bool = True, **constraints: Any) -> Any:  # fmt: skip
    """A field with what the command line needs. ``secret``: printed masked; ``flag=False``: no command-line
    flag (a secret on a command line is visible to every user of the machine)."""
    extra = {"metavar": metavar, "secret": secret, "flag": flag}
    return Field(default, description=help_text, json_schema_extra=extra, **constraints)  # type: ignore[arg-type]


class ServeSettings(BaseModel):
    """The settings of ``csms serve``; the descriptions are the flags' help and the example file's comments."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = _setting("127.0.0.1", "address to listen on", metavar="ADDR", min_length=1)
    ocpp_port: int = _setting(9000, "OCPP WebSocket port (ws://)", metavar="PORT", ge=0, le=65535)
    api_port: int = _setting(8000, "HTTP API port", metavar="PORT", ge=0, le=65535)
    public_url: str | None = _setting(
        None, "the API's base URL as stations reach it, for diagnostics upload and firmware URLs (default: the "
        "URL each API request came in on)", metavar="URL",
    )  # fmt: skip
    database_url: str = _setting(DEFAULT_URL, "SQLAlchemy URL of the database", metavar="URL", min_length=1)
    api_key: str | None = _setting(
        None, "an API key fixed at start (else only keys made with `csms apikeys create` work)", secret=True,
        flag=False, min_length=1,
    )  # fmt: skip
    payment_webhook_secret: str | None = _setting(
        None, "shared secret that signs bank-transfer payment webhooks (POST /api/v1/payments/webhooks/bank_transfer)",
        secret=True, flag=False, min_length=16,
    )  # fmt: skip
    card_processor: Literal["none", "sandbox"] = _setting(
        "none", "the card processor that pre-authorises ad-hoc payments at chargers' payment terminals (sandbox: "
        "the built-in test-mode processor, no money moves; none: such cards are refused)", metavar="NAME",
    )  # fmt: skip
    adhoc_preauth: float = _setting(
        50.0, "the amount pre-authorised on a card for one ad-hoc session, in the tariff's currency", metavar="AMOUNT",
        gt=0,
    )  # fmt: skip
    seller_name: str = _setting("chargetwin operator", "the operator's legal name on invoices", metavar="NAME")
    seller_address: str = _setting("", "the operator's address on invoices (lines separated by '\\n')", metavar="TEXT")
    seller_vat_id: str = _setting("", "the operator's VAT number on invoices", metavar="ID")
    auto_register: bool = _setting(
        False, "note unknown stations that connect as pending registrations (refused until `csms stations approve`)"
    )
    heartbeat_interval: int = _setting(300, "heartbeat interval given to stations, seconds", metavar="S", ge=1)
    log_level: LogLevel = _setting("info", "log level")
    log_format: LogFormat = _setting("text", "log lines: text, or json (one object a line)")
    broker: str | None = _setting(
        None, "redis://host:port: run as one node of a cluster sharing the database; API calls reach stations "
        "connected to any node (default: a single process)", metavar="URL",
    )  # fmt: skip
    node_id: str | None = _setting(
        None, "this node's name in a cluster (default: host-pid)", metavar="ID", min_length=1
    )
    registry_ttl: int = _setting(15, "station registry expiry after a node crash, seconds", metavar="S", ge=1)
    lease_ttl: float = _setting(
        10.0, "cluster leases (site load managers, alerts) outlive a dead node by at most this, seconds",
        metavar="S", ge=1.0, allow_inf_nan=False,
    )  # fmt: skip
    shutdown_grace: float = _setting(
        10.0, "SIGTERM: drain and close station connections within this, then exit, seconds", metavar="S", ge=0.0,
        allow_inf_nan=False,
    )  # fmt: skip
    tls_cert: str | None = _setting(None, "PEM certificate (chain) of wss://", metavar="FILE", min_length=1)
    tls_key: str | None = _setting(None, "PEM private key of tls_cert (the path; not a secret itself)",
                                   metavar="FILE", min_length=1)  # fmt: skip
    tls_client_ca: str | None = _setting(
        None, "PEM CA certificate(s) that sign station certificates (security profile 3)", metavar="FILE", min_length=1
    )
    tls_port: int = _setting(9443, "wss:// port, with tls_cert or pki", metavar="PORT", ge=0, le=65535)
    pki: str | None = _setting(
        None, "the CA directory of `csms pki init`: serves wss:// with its server certificate, trusts its station "
        "CA for client certificates and signs stations' CSRs (SignCertificate) with it", metavar="DIR", min_length=1,
    )  # fmt: skip
    organisation: str | None = _setting(
        None, "subject O of stations' CSRs (default: the station CA's O)", metavar="O", min_length=1
    )
    certificate_days: int = _setting(
        DEFAULT_CERTIFICATE_DAYS, "validity of issued station certificates, days", metavar="N", ge=1
    )
    renew_before_days: int = _setting(
        30, "alert and ask a station to renew this many days before its certificate ends", metavar="N", ge=0
    )
    contract_test_ca: str | None = _setting(
        None, "answer Get15118EVCertificate with the built-in provider, a local test CA kept in DIR (made on first "
        "use); it does not decode the EXI request (docs/security.md)", metavar="DIR", min_length=1,
    )  # fmt: skip
    lookup_timeout: float = _setting(
        5.0, "how long an answer waits for an OCSP responder or the contract provider, seconds", metavar="S", gt=0
    )
    tariff_time_zone: str = _setting(
        "UTC", "IANA time zone of tariffs' local times (time-of-day rates, local midnight)", metavar="ZONE",
        min_length=1,
    )  # fmt: skip
    cost_update_interval: float = _setting(
        300.0, "how often a running session's cost is sent to its charger (2.0.1 CostUpdated, 1.6 California "
        "Pricing RunningCost), seconds", metavar="S", gt=0,
    )  # fmt: skip
    max_frames_per_second: float = _setting(
        _RATE.per_second, "frames one station connection may send per second; beyond it its socket is read later, "
        "and a flood is closed with 1008 (0: no limit)", metavar="N", ge=0,
    )  # fmt: skip
    frame_burst: float = _setting(
        _RATE.burst, "frames a connection may send at once above that rate", metavar="N", ge=1
    )
    max_upload_bytes: int = _setting(
        50 * 1024 * 1024, "the largest log or diagnostics file a station may upload (GetDiagnostics, GetLog); "
        "413 beyond it", metavar="BYTES", ge=1024,
    )  # fmt: skip
    accept_path: list[str] = _setting(
        [], "also accept stations at PREFIX/{station_id} beside /ocpp/{station_id}, e.g. a former CSMS's path "
        "/steve/websocket/CentralSystemService for a DNS cut-over (repeatable; in the environment comma-separated)",
        metavar="PREFIX",
    )  # fmt: skip
    openadr_vtn_url: str | None = _setting(
        None, "demand response: the OpenADR 2.0b VTN this CSMS registers with as a VEN (e.g. "
        "https://vtn.example.com/OpenADR2/Simple/2.0b); events lower the sites' grid limits for their duration",
        metavar="URL",
    )  # fmt: skip
    openadr_ven_name: str = _setting("chargetwin", "the VEN's name at the VTN", metavar="NAME", min_length=1)
    openadr_sites: list[str] = _setting(
        [], "start-up override: the VEN speaks for exactly these sites, enrolled or not (default: the sites "
        "enrolled in the database, openadr_enrolled; repeatable, in the environment comma-separated)", metavar="SITE",
    )  # fmt: skip
    openadr_opt_out: Literal["never", "when_departure_at_risk"] = _setting(
        "never", "answer optOut to an event that would make a fleet vehicle miss its departure"
    )
    openadr_vtn_fingerprint: str | None = _setting(
        None, "accept only VTN messages signed with the certificate of this fingerprint (openleadr's form, "
        "AA:BB:…), recently and never replayed; others are refused and recorded as security events",
        metavar="FINGERPRINT", pattern=r"^([0-9A-F]{2}:){9}[0-9A-F]{2}$",
    )  # fmt: skip
    openadr_cert: str | None = _setting(
        None,
        "the VEN's certificate (PEM file): it signs its messages and speaks TLS to the VTN with it",
        metavar="FILE",
    )
    openadr_key: str | None = _setting(None, "the private key of openadr_cert (PEM file)", metavar="FILE")
    openadr_ca_file: str | None = _setting(
        None, "the CA certificates (PEM file) the VTN's TLS certificate is checked against", metavar="FILE"
    )

    ocpi_port: int | None = _setting(
        None, "serve OCPI 2.2.1 as a CPO on this port, under /ocpi (default: no OCPI); needs ocpi_country_code and "
        "ocpi_party_id", metavar="PORT", ge=0, le=65535,
    )  # fmt: skip
    ocpi_country_code: str | None = _setting(
        None, "the operator's OCPI country code (ISO 3166-1 alpha-2, e.g. NL)", metavar="CC", pattern=r"^[A-Z]{2}$"
    )
    ocpi_party_id: str | None = _setting(
        None, "the operator's OCPI party id (three capitals or digits, e.g. CTW)", metavar="ID",
        pattern=r"^[A-Z0-9]{3}$",
    )  # fmt: skip
    ocpi_public_url: str | None = _setting(
        None, "the OCPI API's base URL as partners reach it, ending in /ocpi (default: http://HOST:OCPI_PORT/ocpi)",
        metavar="URL",
    )  # fmt: skip

    ocpi_sync_interval: float = _setting(
        60.0, "how often changed (and removed) locations and tariffs are looked for and pushed to the OCPI parties, "
        "seconds", metavar="S", gt=0,
    )  # fmt: skip
    ocpi_token_pull_interval: float = _setting(
        3600.0, "how often each OCPI party's tokens are pulled (date_from its last pull), seconds", metavar="S", gt=0
    )

    @field_validator("accept_path", "openadr_sites", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return [p.strip() for p in value.split(",") if p.strip()] if isinstance(value, str) else value

    @field_validator("accept_path")
    @classmethod
    def _path_prefixes(cls, value: list[str]) -> list[str]:
        for prefix in value:
            if not re.fullmatch(r"/[A-Za-z0-9._~%!$&'()*+,;=:@/-]*", prefix) or prefix.strip("/") == "":
                raise ValueError(f"{prefix!r} is not a URL path such as /steve/websocket/CentralSystemService")
        return value

    @field_validator("tariff_time_zone")
    @classmethod
    def _time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ValueError, ZoneInfoNotFoundError):
            raise ValueError(f"{value!r} is no IANA time zone (such as Europe/Amsterdam)") from None
        return value

    @field_validator("broker")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"(rediss?|unix)://", value):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not re.match(r"[a-z][a-z0-9+]*://", value):
            raise ValueError("must be a SQLAlchemy URL such as postgresql://user@host/db or sqlite:///file.db")
        return value


def _extra(field: FieldInfo) -> dict[str, Any]:
    return field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}


def flag_of(name: str) -> str:
    return "--" + name.replace("_", "-")


def env_of(name: str) -> str:
    return ENV_PREFIX + name.upper()


def flagged() -> list[str]:
    """The settings that have a command-line flag."""
    return [name for name, field in ServeSettings.model_fields.items() if _extra(field).get("flag")]


def is_secret(name: str) -> bool:
    return bool(_extra(ServeSettings.model_fields[name]).get("secret"))


# ---- command line -----------------------------------------------------------------------------------------
def _base_type(annotation: Any) -> Any:
    """``int | None`` → ``int``."""
    if get_origin(annotation) in (Union, types.UnionType):
        return next(a for a in get_args(annotation) if a is not type(None))
    return annotation


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting (and ``--config``). Flags not given stay out of the namespace, so they do not hide
    what the file or the environment says."""
    parser.add_argument(
        "--config", type=Path, default=None, metavar="FILE",
        help=f"TOML file of these settings (default: ${CONFIG_ENV}, else none); see docs/operations.md",
    )  # fmt: skip
    for name in flagged():
        field = ServeSettings.model_fields[name]
        base = _base_type(field.annotation)
        help_text = field.description or ""
        if field.default not in (None, []) and base is not bool:
            help_text += f" (default {field.default})"
        options: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS, "help": help_text}
        if base is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif get_origin(base) is list:
            options["action"] = "append"
            options["metavar"] = _extra(field).get("metavar")
        elif get_origin(base) is Literal:
            options["choices"] = list(get_args(base))
        else:
            options["type"] = base
            options["metavar"] = _extra(field).get("metavar")
        parser.add_argument(flag_of(name), **options)


# ---- sources ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Source:
    """Values from one place, and how to name that place in a message."""

    kind: Literal["file", "environment", "command line"]
    values: Mapping[str, Any]
    path: Path | None = None
    lines: Mapping[str, int] | None = None

    def where(self, key: str) -> str:
        if self.kind == "environment":
            return f"${env_of(key)}"
        if self.kind == "command line":
            return flag_of(key)
        line = (self.lines or {}).get(key)
        return f"{self.path} line {line}: {key}" if line else f"{self.path}: {key}"


def read_file(path: Path) -> Source:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"cannot read the config file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from None
    # tomllib keeps no positions; a key's line is where it is assigned at the top level (what a reader looks for).
    lines: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if match := re.match(r"\s*([A-Za-z0-9_-]+|\[[^\]]*\])\s*=?", line):
            lines.setdefault(match.group(1).strip("[]").strip(), number)
    return Source("file", values, path, lines)


def read_environment(environ: Mapping[str, str]) -> Source:
    """``CHARGETWIN_<KEY>`` of every setting that is set and not empty (other ``CHARGETWIN_`` variables, such
    as the client commands' ``CHARGETWIN_API_URL``, are not settings of serve)."""
    values = {name: environ[env_of(name)] for name in ServeSettings.model_fields if environ.get(env_of(name))}
    return Source("environment", values)


def read_namespace(args: argparse.Namespace) -> Source:
    return Source("command line", {name: getattr(args, name) for name in flagged() if hasattr(args, name)})


def _validate(source: Source) -> set[str]:
    """The keys ``source`` sets, each checked alone. Raises SettingsError naming the first bad key."""
    for key in source.values:
        if key not in ServeSettings.model_fields:
            close = difflib.get_close_matches(key, list(ServeSettings.model_fields), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise SettingsError(f"{source.where(key)}: unknown key{hint}")
    try:
        ServeSettings.model_validate(dict(source.values), strict=source.kind == "file")
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        key = str(error["loc"][0]) if error["loc"] else "?"
        raise SettingsError(f"{source.where(key)}: {error['msg']}") from None
    return set(source.values)


def check_together(settings: ServeSettings) -> None:
    """What one setting requires of another. Raises SettingsError."""
    if (settings.tls_cert is None) != (settings.tls_key is None):
        missing = "tls_key" if settings.tls_key is None else "tls_cert"
        given = "tls_cert" if missing == "tls_key" else "tls_key"
        raise SettingsError(f"{missing} ({flag_of(missing)}): required with {given}, the wss:// certificate's pair")
    if settings.ocpi_port is not None and (settings.ocpi_country_code is None or settings.ocpi_party_id is None):
        raise SettingsError("ocpi_country_code and ocpi_party_id (--ocpi-country-code, --ocpi-party-id): required "
                            "with ocpi_port, the operator's identity on OCPI")  # fmt: skip
    if settings.tls_client_ca is not None and settings.tls_cert is None and settings.pki is None:
        raise SettingsError("tls_cert and tls_key (--tls-cert, --tls-key): required with tls_client_ca")
    if (settings.openadr_cert is None) != (settings.openadr_key is None):
        raise SettingsError("openadr_cert and openadr_key (--openadr-cert, --openadr-key): the VEN's certificate "
                            "and its key, both or neither")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Loaded:
    settings: ServeSettings
    #: Where each setting that is not a default came from ("file", "environment", "command line").
    origins: dict[str, str]
    config_path: Path | None


def load(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Loaded:
    """The effective settings from ``args`` (parsed with :func:`add_arguments`), the environment and the file
    ``args.config`` (else ``$CHARGETWIN_CONFIG``). Raises SettingsError."""
    environ = os.environ if environ is None else environ
    path = args.config or (Path(environ[CONFIG_ENV]) if environ.get(CONFIG_ENV) else None)
    sources = ([read_file(path)] if path is not None else []) + [read_environment(environ), read_namespace(args)]
    merged: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for source in sources:
        for key in _validate(source):
            merged[key] = source.values[key]
            origins[key] = source.kind if source.kind != "file" else str(path)
    settings = ServeSettings.model_validate(merged)
    check_together(settings)
    return Loaded(settings, origins, path)


# ---- printing ---------------------------------------------------------------------------------------------
def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    # JSON's string escapes are a subset of TOML's basic strings.
    return json.dumps(str(value))


def shown(name: str, value: Any) -> Any:
    """A setting's value as it may be printed: secrets masked, URL passwords and tokens masked."""
    if value is None:
        return None
    if is_secret(name):
        return MASK
    return mask_url(value) if isinstance(value, str) else value


def to_toml(loaded: Loaded) -> str:
    """The effective settings as a TOML file (secrets masked), each line saying where its value came from."""
    title = "# effective settings of csms serve"
    lines = [title if loaded.config_path is None else f"{title} (config file {loaded.config_path})"]
    for name in ServeSettings.model_fields:
        value = shown(name, getattr(loaded.settings, name))
        origin = loaded.origins.get(name, "default")
        where = {"environment": f"${env_of(name)}", "command line": flag_of(name)}.get(origin, origin)
        if value is None:
            lines.append(f"# {name} = (not set)")
        else:
            lines.append(f"{name} = {_toml_value(value)}  # {where}")
    return "\n".join(lines) + "\n"
