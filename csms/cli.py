"""``csms``: run the CSMS and administer its database.

Every command takes ``--database-url`` (else ``$CHARGETWIN_DATABASE_URL``, else ``sqlite:///chargetwin.db``)
and brings the schema up to date first. A user mistake prints one line to stderr and exits 2.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import re
import ssl
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from csms.api.redaction import mask_url
from csms.pki import authority
from csms.pki.local_ca import LocalTestCa
from csms.reports.invoices import Party
from csms.runtime import logs
from csms.runtime import settings as serve_settings
from csms.runtime.settings import ServeSettings
from csms.services import (
    apikeys,
    audit,
    authorization,
    billing,
    certificates,
    contracts,
    imports,
    local_lists,
    organisations,
    security_events,
    stations,
    tariffs,
    users,
)
from csms.services.config import CsmsConfig
from csms.services.errors import DomainError
from csms.services.payments import SandboxCardProcessor
from csms.services.roles import PLATFORM_ADMIN, ROLES
from csms.store.database import URL_ENV, make_session_factory, resolve_url

if TYPE_CHECKING:
    from csms.gateway.frame_rate import FrameRate
    from csms.runtime.server import Endpoints

API_KEY_ENV = "CHARGETWIN_API_KEY"
API_URL_ENV = "CHARGETWIN_API_URL"
DEFAULT_API_URL = "http://127.0.0.1:8000/api/v1"


class UserError(Exception):
    """A mistake the user can fix: printed as one line, exit status 2."""


# ---- helpers ------------------------------------------------------------------------------------------------
def _iso(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date-time: {text!r}") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _in_transaction(args: argparse.Namespace, work: Callable[[Session], Any]) -> Any:
    """``work`` in one transaction; what it changed is written to the audit trail in the same transaction."""
    from csms.runtime.server import prepare_database  # the server's imports only for commands that need them

    engine = prepare_database(args.database_url)
    try:
        with make_session_factory(engine)() as db, db.begin():
            collector = audit.Collector()
            db.info["audit"] = collector
            result = work(db)
            _audit(db, args, collector)
            return result
    finally:
        engine.dispose()


def _audit(db: Session, args: argparse.Namespace, collector: audit.Collector) -> None:
    """The audit entry of a command that changed something, in the command's own transaction. (``csms import``
    of a bundle writes none: a bundle moves a whole database, the old CSMS's trail included, and importing it
    twice must change nothing.)"""
    db.flush()
    if collector.changed:
        who = audit.Who(f"cli:{_os_user()}"[:100], None, None, "cli")
        audit.record(db, who, _command(args), 0, datetime.now(UTC), collector=collector)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for the uid (a container)
        return str(os.getuid())


def _command(args: argparse.Namespace) -> str:
    """The command as typed, without its arguments (which may hold passwords): ``csms users add``."""
    handler = getattr(args, "handler", None)
    name = getattr(handler, "__name__", "cmd_unknown").removeprefix("cmd_")
    return "csms " + name.replace("_", " ")


def _table(rows: list[Sequence[Any]], header: Sequence[str]) -> str:
    cells = [[("" if v is None else str(v)) for v in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells)


# ---- commands -----------------------------------------------------------------------------------------------
def _tls_context(settings: ServeSettings) -> ssl.SSLContext | None:
    cert, key, client_ca = settings.tls_cert, settings.tls_key, settings.tls_client_ca
    if settings.pki is not None:
        paths = authority.CaPaths(Path(settings.pki))
        cert, key = cert or str(paths.server_cert), key or str(paths.server_key)
        client_ca = client_ca or str(paths.station_ca_cert)
    if cert is None or key is None:
        return None  # settings.check_together saw to it that neither or both are given
    try:
        from csms.gateway.tls import server_context

        return server_context(cert, key, client_ca)
    except (OSError, ssl.SSLError) as exc:
        raise UserError(f"cannot use the TLS certificate, key or client CA: {exc}") from None


def _station_ca(settings: ServeSettings) -> authority.StationCa | None:
    if settings.pki is None:
        return None
    try:
        return authority.load(Path(settings.pki), organisation=settings.organisation, days=settings.certificate_days)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot use the CA in {settings.pki}: {exc}") from None


def _frame_rate(settings: ServeSettings) -> FrameRate | None:
    if settings.max_frames_per_second == 0:
        return None
    try:
        from csms.gateway.frame_rate import FrameRate

        return FrameRate(per_second=settings.max_frames_per_second, burst=settings.frame_burst)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _settings(args: argparse.Namespace) -> serve_settings.Loaded:
    try:
        return serve_settings.load(args)
    except serve_settings.SettingsError as exc:
        raise UserError(str(exc)) from None


def cmd_config_show(args: argparse.Namespace) -> int:
    print(serve_settings.to_toml(_settings(args)), end="")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from csms.runtime.server import raise_fd_limit, run_server  # the whole server, for this command only

    settings = _settings(args).settings
    logs.configure(settings.log_level, settings.log_format)
    log = logging.getLogger("csms")
    config = CsmsConfig(
        heartbeat_interval_s=settings.heartbeat_interval,
        auto_register=settings.auto_register,
        station_ca=_station_ca(settings),
        renew_before_days=settings.renew_before_days,
        lookup_timeout_s=settings.lookup_timeout,
        tariff_time_zone=settings.tariff_time_zone,
        cost_update_interval_s=settings.cost_update_interval,
        max_upload_bytes=settings.max_upload_bytes,
        card_processor=SandboxCardProcessor(settings.payment_webhook_secret)
        if settings.card_processor == "sandbox"
        else None,
        adhoc_preauth=Decimal(str(settings.adhoc_preauth)),
        **_ocpi_codes(settings),
    )
    provider = None if settings.contract_test_ca is None else _test_ca(settings.contract_test_ca)
    files, _hard = raise_fd_limit()
    log.info("open-files limit %d (about as many chargers)", files)
    log.info("database %s", resolve_url(settings.database_url))  # its password masked by the log formatter
    tls_context = _tls_context(settings)
    api_key = settings.api_key

    def ready(endpoints: Endpoints) -> None:
        print(f"OCPP gateway  {endpoints.ocpp_url}", flush=True)
        if endpoints.ocpp_tls_url is not None:
            print(f"OCPP over TLS {endpoints.ocpp_tls_url}", flush=True)
        if endpoints.ocpi_url is not None:
            print(f"OCPI 2.2.1    {endpoints.ocpi_url}", flush=True)
        print(f"API           {endpoints.api_url}  (OpenAPI: {endpoints.api_url.removesuffix('/api/v1')}/openapi.json)")
        print(f"Console       {endpoints.api_url.removesuffix('/api/v1')}/signin", flush=True)
        if api_key is None:
            print(f"API keys: none fixed (${API_KEY_ENV}); create one with `csms apikeys create`", flush=True)

    try:
        asyncio.run(
            run_server(
                database_url=settings.database_url,
                host=settings.host,
                ocpp_port=settings.ocpp_port,
                api_port=settings.api_port,
                api_key=api_key,
                config=config,
                log_level=settings.log_level,
                logs_configured=True,
                on_ready=ready,
                public_url=settings.public_url,
                payment_webhook_secret=settings.payment_webhook_secret,
                seller=_seller(settings),
                openadr=_ven_settings(settings),
                broker_url=settings.broker,
                node_id=settings.node_id,
                registry_ttl_s=settings.registry_ttl,
                lease_ttl_s=settings.lease_ttl,
                shutdown_grace_s=settings.shutdown_grace,
                exit_watchdog=True,
                tls_context=tls_context,
                tls_port=settings.tls_port,
                contract_provider=provider,
                frame_rate=_frame_rate(settings),
                accept_paths=settings.accept_path,
                ocpi=_ocpi_serve(settings),
            )
        )
    except OSError as exc:
        raise UserError(f"cannot listen: {exc.strerror or exc}") from None
    except ValueError as exc:  # a bad broker URL
        raise UserError(mask_url(str(exc))) from None
    except Exception as exc:
        if type(exc).__module__.startswith("redis"):
            raise UserError(f"cannot reach the broker {mask_url(settings.broker or '')}: {exc}") from None
        raise
    except KeyboardInterrupt:
        return 0
    # Stopped gracefully: everything read is committed, answered or closed, and logged. The interpreter's
    # teardown would free the objects of every connection held (a full collection, then each module's objects):
    # with 10,000 chargers that was seconds, past the stop's watchdog (issue 13); the process ends without it.
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(0)


def _ocpi_codes(settings: ServeSettings) -> dict[str, Any]:
    """The operator's OCPI codes for the CDRs the CSMS stores (CsmsConfig's defaults when not set)."""
    codes = {"ocpi_country_code": settings.ocpi_country_code, "ocpi_party_id": settings.ocpi_party_id}
    return {key: value for key, value in codes.items() if value is not None}


def _ocpi_config(settings: ServeSettings) -> Any:
    from csms.ocpi.deps import OcpiConfig

    if settings.ocpi_country_code is None or settings.ocpi_party_id is None:
        raise UserError("ocpi_country_code and ocpi_party_id are not set (--config, or CHARGETWIN_OCPI_COUNTRY_CODE "
                        "and CHARGETWIN_OCPI_PARTY_ID)")  # fmt: skip
    base = (settings.ocpi_public_url or "").rstrip("/")
    return OcpiConfig(settings.ocpi_country_code, settings.ocpi_party_id, settings.seller_name, base_url=base)


def _ocpi_serve(settings: ServeSettings) -> Any:
    if settings.ocpi_port is None:
        return None
    from csms.ocpi.serve import OcpiServe

    return OcpiServe(_ocpi_config(settings), settings.ocpi_port, sync_s=settings.ocpi_sync_interval,
                     token_pull_s=settings.ocpi_token_pull_interval)  # fmt: skip


def _ocpi_parsers(commands: Any) -> None:
    from csms.ocpi.cli import add_parsers
    from csms.runtime.server import prepare_database

    def config_of(args: argparse.Namespace) -> tuple[Any, Any]:
        settings = serve_settings.load(argparse.Namespace(config=args.config)).settings
        if not settings.ocpi_public_url:
            raise UserError("ocpi_public_url is not set: partners must know where to reach our OCPI API")
        return _ocpi_config(settings), prepare_database(args.database_url)

    add_parsers(commands, database_option=_database_option, in_transaction=_in_transaction, table=_table,
                config_of=config_of)  # fmt: skip


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from csms.runtime.server import prepare_database

    prepare_database(args.database_url).dispose()
    print("database schema is up to date")
    return 0


def cmd_stations_add(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    if args.password is None and args.security_profile != 3:
        raise UserError(f"--password is required for security profile {args.security_profile} (HTTP Basic auth)")
    _in_transaction(
        args,
        lambda db: stations.provision(
            db,
            args.station_id,
            ocpp_version=args.ocpp,
            password=args.password,
            now=now,
            policy=args.policy,
            security_profile=args.security_profile,
        ),
    )
    print(
        f"station {args.station_id} added (OCPP {args.ocpp}, policy {args.policy}, "
        f"security profile {args.security_profile})"
    )
    return 0


def cmd_stations_list(args: argparse.Namespace) -> int:
    def rows(db: Session) -> list[Sequence[Any]]:
        return [
            (
                s.id, s.ocpp_version, s.security_profile, s.registration_policy, s.registration_status, s.vendor,
                s.model, s.last_seen_at,
            )
            for s in stations.list_stations(db)
        ]  # fmt: skip

    header = ("ID", "OCPP", "PROFILE", "POLICY", "STATUS", "VENDOR", "MODEL", "LAST SEEN")
    print(_table(_in_transaction(args, rows), header))
    return 0


def cmd_stations_pending(args: argparse.Namespace) -> int:
    def rows(db: Session) -> list[Sequence[Any]]:
        return [
            (p.station_id, p.ocpp_version, p.source, p.attempts, p.first_seen_at, p.last_seen_at)
            for p in stations.list_pending(db)
        ]

    print(_table(_in_transaction(args, rows), ("ID", "OCPP", "SOURCE", "ATTEMPTS", "FIRST SEEN", "LAST SEEN")))
    return 0


def cmd_stations_approve(args: argparse.Namespace) -> int:
    if args.password is None and args.security_profile != 3:
        raise UserError(f"--password is required for security profile {args.security_profile} (HTTP Basic auth)")
    now = datetime.now(UTC)
    _in_transaction(
        args,
        lambda db: stations.approve(
            db, args.station_id, password=args.password, security_profile=args.security_profile, now=now
        ),
    )
    print(f"station {args.station_id} approved (security profile {args.security_profile}); it is accepted at its boot")
    return 0


def _api_request(base_url: str, method: str, path: str, body: Any = None, **options: Any) -> Any:
    """One call to the API of a running ``csms serve`` (commands that need a station's live connection, which
    only the server holds), with the key from $CHARGETWIN_API_KEY. Raises UserError with the API's reason."""
    key = os.environ.get(API_KEY_ENV)
    if not key:
        raise UserError(f"set ${API_KEY_ENV} to an API key of the running CSMS")
    try:
        response = httpx.request(
            method, base_url.rstrip("/") + path, json=body, headers={"Authorization": f"Bearer {key}"}, **options
        )
    except httpx.HTTPError as exc:
        raise UserError(f"cannot reach the API at {base_url}: {exc}") from None
    if response.status_code != 200:
        try:
            detail = response.json().get("detail")
        except ValueError:
            detail = response.text[:200]
        raise UserError(f"the API answered {response.status_code}: {detail}")
    return response.json()


def _api_post(args: argparse.Namespace, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = _api_request(
        args.api_url, "POST", path, body, params={"timeout": args.timeout}, timeout=args.timeout * 4
    )
    return answer


def _outcome(call: dict[str, Any]) -> str:
    if call["outcome"] == "result":
        return f"{call['action']}: {call.get('payload')}"
    return f"{call['action']}: {call['outcome']} {call.get('error') or ''}".rstrip()


def cmd_stations_rotate_password(args: argparse.Namespace) -> int:
    body = {"password": args.password} if args.password else {"generate": True}
    answer = _api_post(args, f"/stations/{quote(args.station_id, safe='')}/password", body)
    print(_outcome(answer["call"]))
    if not answer["adopted"]:
        print(f"station {args.station_id} did not take the new password: the stored one is unchanged")
        return 1
    if answer.get("password"):
        print(f"new password (shown once): {answer['password']}")
    print(f"station {args.station_id}: new password stored; the old one is valid until it reconnects with it")
    return 0


def _variable(name: str) -> dict[str, Any]:
    """``Component.Variable`` (2.0.1; ``Component@EVSE.Variable`` on an EVSE) or a 1.6 ``Key``."""
    component, dot, variable = name.partition(".")
    if not dot:
        return {"variable": name}
    component, _, evse = component.partition("@")
    if evse and not evse.isdigit():
        raise UserError(f"{name}: the EVSE after @ is a number")
    return {"component": component, "variable": variable, "evse_id": int(evse or 0)}


def _setting_name(result: dict[str, Any]) -> str:
    if not result["component"]:
        return str(result["variable"])
    evse = f"@{result['evse_id']}" if result["evse_id"] else ""
    return f"{result['component']}{evse}.{result['variable']}"


def _print_variables(answer: dict[str, Any]) -> int:
    rows: list[Sequence[Any]] = [(_setting_name(r), r["status"], r["value"]) for r in answer["results"]]
    print(_table(rows, ("setting", "status", "value")))
    for call in answer["calls"]:
        if call["outcome"] != "result":
            print(_outcome(call))
    fine = all(r["status"] in ("Accepted", "RebootRequired") for r in answer["results"])
    return 0 if fine and all(c["outcome"] == "result" for c in answer["calls"]) else 1


def cmd_stations_get_config(args: argparse.Namespace) -> int:
    body = {"variables": [_variable(name) for name in args.names]}
    return _print_variables(_api_post(args, f"/stations/{quote(args.station_id, safe='')}/variables/get", body))


def cmd_stations_configure(args: argparse.Namespace) -> int:
    values = []
    for assignment in args.assignments:
        name, equals, value = assignment.partition("=")
        if not equals:
            raise UserError(f"{assignment}: write NAME=VALUE")
        values.append({**_variable(name), "value": value})
    path = f"/stations/{quote(args.station_id, safe='')}/variables/set"
    return _print_variables(_api_post(args, path, {"values": values}))


def cmd_stations_command(args: argparse.Namespace) -> int:
    """A typed command: ``args.command_path`` under the station, the body from ``args.command_body(args)``."""
    call = _api_post(args, f"/stations/{quote(args.station_id, safe='')}/{args.command_path}", args.command_body(args))
    print(_outcome(call))
    return 0 if call["outcome"] == "result" else 1


def cmd_stations_display_message(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"text": args.text, "priority": args.priority, "format": args.format}
    optional = {"state": args.state, "language": args.language, "transaction_id": args.transaction,
                "start": args.start.isoformat() if args.start else None,
                "end": args.end.isoformat() if args.end else None}  # fmt: skip
    body.update({key: value for key, value in optional.items() if value is not None})
    answer = _api_post(args, f"/stations/{quote(args.station_id, safe='')}/display-messages", body)
    message = answer["message"]
    print(f"display message {message['message_id']} on {args.station_id}: {message['status']}")
    return 0 if message["status"] == "Accepted" else 1


def cmd_stations_clear_display_message(args: argparse.Namespace) -> int:
    path = f"/stations/{quote(args.station_id, safe='')}/display-messages/{args.message_id}/clear"
    answer = _api_post(args, path, {})
    print(_outcome(answer["call"]))
    return 0 if answer["message"]["status"] == "cleared" else 1


def cmd_stations_monitor(args: argparse.Namespace) -> int:
    ref = _variable(args.name)
    if "component" not in ref:
        raise UserError(f"{args.name}: name a 2.0.1 variable as Component[@EVSE].Variable")
    monitor = {**ref, "type": args.type, "value": args.value, "severity": args.severity}
    answer = _api_post(args, f"/stations/{quote(args.station_id, safe='')}/monitors", {"monitors": [monitor]})
    for row in answer["monitors"]:
        print(f"monitor {row['monitor_id'] if row['monitor_id'] is not None else '-'}: {row['status']}")
    if answer["call"]["outcome"] != "result":
        print(_outcome(answer["call"]))
    return 0 if all(row["status"] == "Accepted" for row in answer["monitors"]) else 1


def cmd_stations_events(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"limit": args.limit}
    if args.kind:
        params["kind"] = args.kind
    rows = _api_request(args.api_url, "GET", f"/stations/{quote(args.station_id, safe='')}/events", params=params,
                        timeout=args.timeout)  # fmt: skip
    print(_table([(r["timestamp"], r["kind"], json.dumps(r["data"])[:100]) for r in rows], ("at", "kind", "data")))
    return 0


def cmd_stations_upgrade_profile(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"profile": args.profile}
    if args.csms_url:
        body["csms_url"] = args.csms_url
    answer = _api_post(args, f"/stations/{quote(args.station_id, safe='')}/security-profile", body)
    for call in answer["calls"]:
        print(_outcome(call))
    if answer["pending_security_profile"] is None:
        print(f"station {args.station_id} did not take security profile {args.profile}")
        return 1
    print(f"station {args.station_id}: profile {args.profile} pending until it reconnects at it")
    return 0


#: ``--for`` units in seconds.
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration_s(text: str) -> float:
    """``90``, ``90s``, ``30m``, ``2h``, ``1d`` → seconds (argparse type: a bad value exits with status 2)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd]?)", text.strip())
    if match is None or float(match[1]) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 90s, 30m, 2h")
    return float(match[1]) * DURATION_UNITS[match[2] or "s"]


def _reservation_line(row: dict[str, Any]) -> str:
    port = "any port" if row["evse_id"] is None else f"port {row['evse_id']}"
    where = f"{row['station_id']} {port} for {row['id_token']} until {row['expires_at']}"
    return f"reservation {row['id']} on {where}: {row['status']}"


def cmd_stations_reserve(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"id_token": args.token, "id_token_type": args.token_type}
    port = args.connector if args.connector is not None else args.evse
    if port is not None:
        body["evse_id"] = port
    if args.connector_type:
        body["connector_type"] = args.connector_type
    if args.group:
        body["group_id_token"] = args.group
    if args.expires is not None:
        body["expires_at"] = args.expires
    else:
        body["valid_for_s"] = args.valid_for
    answer = _api_post(args, f"/stations/{quote(args.station_id, safe='')}/reservations", body)
    print(_outcome(answer["call"]))
    print(_reservation_line(answer["reservation"]))
    return 0 if answer["reservation"]["status"] == "active" else 1


def cmd_stations_cancel_reservation(args: argparse.Namespace) -> int:
    path = f"/stations/{quote(args.station_id, safe='')}/reservations/{args.reservation_id}/cancel"
    answer = _api_post(args, path, {})
    print(_outcome(answer["call"]))
    print(_reservation_line(answer["reservation"]))
    return 0 if answer["reservation"]["status"] == "cancelled" else 1


def cmd_tokens_add(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)

    def add(db: Session) -> list[str]:
        authorization.create(
            db, args.token, now, status=args.status, token_type=args.type, expiry=args.expiry, group_id=args.group
        )
        return local_lists.token_changed(db, args.token, {args.group}, now)

    behind = _in_transaction(args, add)
    print(f"id token {args.token} added ({args.status})")
    if behind:  # the server sends it when they are next synced (at their next boot at the latest)
        print(f"local lists to bring in step: {', '.join(behind)} (csms stations send-local-list ID)")
    return 0


def cmd_tokens_list(args: argparse.Namespace) -> int:
    def rows(db: Session) -> list[Sequence[Any]]:
        return [(t.id_token, t.token_type, t.status, t.group_id, t.expiry) for t in authorization.list_tokens(db)]

    print(_table(_in_transaction(args, rows), ("TOKEN", "TYPE", "STATUS", "GROUP", "EXPIRY")))
    return 0


def _import(args: argparse.Namespace, records: imports.Records, report: imports.ImportReport) -> int:
    """Write ``records`` in one transaction (rolled back under --dry-run) and print the report."""
    from csms.runtime.server import prepare_database

    engine = prepare_database(args.database_url)
    try:
        with make_session_factory(engine)() as db:
            collector = audit.Collector()
            db.info["audit"] = collector
            imports.apply(db, records, report, datetime.now(UTC))
            if args.dry_run:
                db.rollback()
            else:
                _audit(db, args, collector)
                db.commit()
    finally:
        engine.dispose()
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.render(args.dry_run))
    return 0


def cmd_import_steve(args: argparse.Namespace) -> int:
    from csms.migration import steve

    try:
        records, report = steve.read(args.source, datetime.now(UTC))
    except steve.SteveError as exc:
        raise UserError(str(exc)) from None
    return _import(args, records, report)


def cmd_import_csv(args: argparse.Namespace) -> int:
    from csms.migration import csv_import

    try:
        records, report = csv_import.read(args.kind, args.file)
    except csv_import.CsvError as exc:
        raise UserError(f"nothing imported, {exc}") from None
    return _import(args, records, report)


def _test_ca(directory: str) -> LocalTestCa:
    """The built-in contract-certificate provider's CA: ``ca.pem``/``ca.key`` in ``directory``, made there
    on first use (install ``ca.pem`` as an MO root to trust the contracts it issues)."""
    folder = Path(directory)
    cert_file, key_file = folder / "ca.pem", folder / "ca.key"
    if not cert_file.exists():
        ca = LocalTestCa.generate("chargetwin test contract CA", datetime.now(UTC))
        folder.mkdir(parents=True, exist_ok=True)
        cert_file.write_text(ca.cert_pem)
        key_file.write_bytes(
            ca.key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        key_file.chmod(0o600)
        print(f"contract test CA created in {folder}", file=sys.stderr)
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load the contract test CA in {folder}: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise UserError(f"{key_file}: the contract test CA's key must be an EC key")
    return LocalTestCa(cert, key)


def cmd_roots_add(args: argparse.Namespace) -> int:
    try:
        pem = Path(args.file).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {args.file}: {exc}") from None
    now = datetime.now(UTC)
    row = _in_transaction(args, lambda db: contracts.install_root(db, pem, args.kind, now))
    print(f"{args.kind} root {row.fingerprint} installed ({row.subject})")
    return 0


def cmd_roots_list(args: argparse.Namespace) -> int:
    def rows(db: Session) -> list[Sequence[Any]]:
        return [(r.fingerprint, r.kind, r.subject, r.not_after) for r in contracts.list_roots(db)]

    print(_table(_in_transaction(args, rows), ("FINGERPRINT", "KIND", "SUBJECT", "NOT AFTER")))
    return 0


def cmd_roots_remove(args: argparse.Namespace) -> int:
    _in_transaction(args, lambda db: contracts.remove_root(db, args.fingerprint))
    print(f"root {args.fingerprint} removed")
    return 0


def cmd_apikeys_create(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    key = _in_transaction(args, lambda db: apikeys.create(db, args.name, now, role=args.role, organisation=args.org)[1])
    print(key)
    print(f"store this key now: only its hash is kept (role {args.role})", file=sys.stderr)
    return 0


def cmd_apikeys_list(args: argparse.Namespace) -> int:
    def rows(db: Session) -> list[Sequence[Any]]:
        slugs = organisations.slugs(db)
        return [
            (k.id, k.name, k.role, slugs.get(k.organisation_id, k.organisation_id), "revoked" if k.revoked else "")
            for k in apikeys.list_keys(db)
        ]

    print(_table(_in_transaction(args, rows), ("ID", "NAME", "ROLE", "ORGANISATION", "")))
    return 0


# ---- organisations and console users ------------------------------------------------------------------------
def cmd_orgs_add(args: argparse.Namespace) -> int:
    row = _in_transaction(args, lambda db: organisations.create(db, args.slug, args.name, datetime.now(UTC)))
    print(f"organisation {row.slug} created (id {row.id})")
    return 0


def cmd_orgs_list(args: argparse.Namespace) -> int:
    def rows(db: Session) -> list[Sequence[Any]]:
        return [(o.id, o.slug, o.name) for o in organisations.list_organisations(db)]

    print(_table(_in_transaction(args, rows), ("ID", "SLUG", "NAME")))
    return 0


def _link(args: argparse.Namespace, token: str) -> str:
    base = (args.console_url or os.environ.get(API_URL_ENV, DEFAULT_API_URL).removesuffix("/api/v1")).rstrip("/")
    return f"{base}/set-password/{token}"


def cmd_users_add(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    user, token = _in_transaction(args, lambda db: users.add(db, args.email, args.role, args.org, now))
    print(f"user {user.email} added ({args.role}); they set their password once, within 24 h, at:")
    print(_link(args, token))
    return 0


def cmd_users_list(args: argparse.Namespace) -> int:
    def rows(db: Session) -> list[Sequence[Any]]:
        slugs = organisations.slugs(db)
        return [
            (
                u.email,
                u.role,
                slugs.get(u.organisation_id, u.organisation_id),
                "set" if u.password_hash else "not set",
                "on" if u.totp_secret else "off",
                "disabled" if u.disabled else "",
            )
            for u in users.list_users(db)
        ]

    print(_table(_in_transaction(args, rows), ("EMAIL", "ROLE", "ORGANISATION", "PASSWORD", "TOTP", "")))
    return 0


def cmd_users_reset(args: argparse.Namespace) -> int:
    token = _in_transaction(args, lambda db: users.reset(db, args.email, datetime.now(UTC)))
    print(f"one-time link for {args.email.strip().lower()} (24 h; earlier links no longer work):")
    print(_link(args, token))
    return 0


def cmd_users_disable(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    _in_transaction(args, lambda db: users.set_disabled(db, args.email, not args.enable, now))
    print(f"user {args.email} {'enabled' if args.enable else 'disabled: every session ended'}")
    return 0


def cmd_users_totp(args: argparse.Namespace) -> int:
    if args.off:
        _in_transaction(args, lambda db: users.disable_totp(db, args.email))
        print(f"second factor off for {args.email}")
        return 0
    uri = _in_transaction(args, lambda db: users.enable_totp(db, args.email))
    print("add this to the user's authenticator app (it is shown once):")
    print(uri)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from csms.migration.bundle import export_database
    from csms.runtime.server import prepare_database

    target = Path(args.out)
    partial = target.with_name(target.name + ".partial")  # a failed export leaves no half bundle behind
    engine = prepare_database(args.database_url)
    try:
        with partial.open("wb") as out:
            manifest = export_database(engine, out, datetime.now(UTC))
        partial.replace(target)
    finally:
        engine.dispose()
        partial.unlink(missing_ok=True)
    rows = sum(entry.rows for entry in manifest.tables)
    print(
        f"exported {rows} rows of {len(manifest.tables)} tables to {target} (bundle format {manifest.format_version})"
    )
    return 0


def _import_summary(report: Any) -> str:
    header = ("TABLE", "INSERTED", "UPDATED", "UNCHANGED", "KEPT", "CONFLICTS")
    rows: list[Sequence[Any]] = [
        (name, t.inserted, t.updated, t.unchanged, t.kept, t.conflicts) for name, t in report.tables.items()
    ]
    lines = [_table(rows, header)]
    for name, outcome in report.tables.items():
        lines += [f"conflict in {name}: {example}" for example in outcome.examples]
    return "\n".join(lines)


def cmd_import(args: argparse.Namespace) -> int:
    from csms.migration.bundle import BundleError, open_bundle
    from csms.migration.bundle_import import ImportRefused, OnConflict, import_bundle
    from csms.runtime.server import prepare_database

    engine = prepare_database(args.database_url)
    try:
        with open_bundle(args.bundle) as bundle, engine.connect() as connection:
            report = import_bundle(connection, bundle, dry_run=args.dry_run, on_conflict=OnConflict(args.on_conflict))
    except ImportRefused as refused:
        print(_import_summary(refused.report))
        raise UserError(str(refused)) from None
    except BundleError as exc:
        raise UserError(str(exc)) from None
    finally:
        engine.dispose()
    print(_import_summary(report))
    if args.dry_run:
        print("dry run: nothing was written")
    return 0


def cmd_stations_charging_needs(args: argparse.Namespace) -> int:
    rows = _api_request(args.api_url, "GET", f"/stations/{quote(args.station_id, safe='')}/charging-needs", timeout=60)
    table: list[Sequence[Any]] = []
    for r in rows:
        needs, profile = r["needs"] or {}, r["profile"] or {}
        params = needs.get("acChargingParameters") or needs.get("dcChargingParameters") or {}
        periods = (profile.get("chargingSchedule") or [{}])[0].get("chargingSchedulePeriod", [])
        limit = f"{periods[0]['limit']:g} {profile['chargingSchedule'][0]['chargingRateUnit']}" if periods else ""
        schedule = " ".join(filter(None, [r["ev_schedule_status"], r["ev_schedule_reason"]]))
        table.append((r["evse_id"], r["transaction_id"], needs.get("departureTime", ""), params.get("energyAmount", ""),
                      limit, schedule))  # fmt: skip
    print(_table(table, ("EVSE", "TRANSACTION", "DEPARTURE", "ENERGY WH", "TX PROFILE", "EV SCHEDULE")))
    return 0


def cmd_pki_init(args: argparse.Namespace) -> int:
    external = None
    if (args.ca_cert is None) != (args.ca_key is None):
        raise UserError("give both --ca-cert and --ca-key (an external CA), or neither")
    if args.ca_cert is not None:
        external = (args.ca_cert.read_bytes(), args.ca_key.read_bytes())
    names = tuple(args.server_name or ["localhost", "127.0.0.1"])
    try:
        paths = authority.init(args.directory, datetime.now(UTC), organisation=args.organisation, server_names=names,
                               external=external)  # fmt: skip
    except (FileExistsError, ValueError) as exc:
        raise UserError(str(exc)) from None
    print(f"station CA   {paths.station_ca_cert}")
    print(f"wss:// cert  {paths.server_cert} ({', '.join(names)})")
    print(f"give stations {paths.csms_root} as their CSMS root certificate; serve with --pki {args.directory}")
    return 0


def cmd_certificates_list(args: argparse.Namespace) -> int:
    def rows(db: Session) -> list[Sequence[Any]]:
        return [
            (r.serial, r.station_id, r.certificate_type, r.not_after.isoformat(timespec="seconds"), r.delivery,
             r.revoked_at.isoformat(timespec="seconds") if r.revoked_at else "")
            for r in certificates.issued(db, args.station)
        ]  # fmt: skip

    print(_table(_in_transaction(args, rows), ("SERIAL", "STATION", "TYPE", "NOT AFTER", "DELIVERY", "REVOKED")))
    return 0


def cmd_certificates_revoke(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    station = _in_transaction(args, lambda db: certificates.revoke(db, args.serial, now).station_id)
    print(f"certificate {args.serial} of {station} revoked: refused from now on; a running CSMS closes "
          "connections using it within a minute (the API's revoke at once)")  # fmt: skip
    return 0


def _api(args: argparse.Namespace, path: str, body: Any = None) -> Any:
    """POST (with ``body``, or to a ``/refresh``) or GET on the API of a running ``csms serve``."""
    method = "GET" if body is None and not path.endswith("/refresh") else "POST"
    return _api_request(args.api, method, path, body, timeout=60)


def _print_call(answer: dict[str, Any]) -> int:
    payload = answer.get("payload") or {}
    print(f"{answer['action']}: {answer['outcome']} {payload.get('status', '')}".rstrip())
    installed: list[Sequence[Any]] = [
        (c["certificate_type"], c["hash_data"]["serialNumber"], c["hash_data"]["issuerNameHash"][:16])
        for c in answer.get("installed", [])
    ]
    print(_table(installed, ("TYPE", "SERIAL", "ISSUER NAME HASH")))
    return 0 if answer["outcome"] == "result" else 1


def cmd_certificates_install(args: argparse.Namespace) -> int:
    body = {"certificate_type": args.type, "certificate": args.file.read_text()}
    return _print_call(_api(args, f"/stations/{args.station_id}/certificates/install", body))


def cmd_certificates_installed(args: argparse.Namespace) -> int:
    query = "".join(f"&certificate_type={t}" for t in args.type or []).replace("&", "?", 1)
    return _print_call(_api(args, f"/stations/{args.station_id}/certificates/installed/refresh{query}"))


def cmd_certificates_delete(args: argparse.Namespace) -> int:
    hash_data = {"hashAlgorithm": args.hash_algorithm, "issuerNameHash": args.issuer_name_hash,
                 "issuerKeyHash": args.issuer_key_hash, "serialNumber": args.serial}  # fmt: skip
    return _print_call(_api(args, f"/stations/{args.station_id}/certificates/delete", {"hash_data": hash_data}))


# ---- parser -------------------------------------------------------------------------------------------------
def cmd_security_events(args: argparse.Namespace) -> int:
    def rows(db: Session) -> list[Any]:
        found = security_events.list_events(
            db, limit=args.limit, station_id=args.station, type=args.type, origin=args.origin, since=args.since
        )
        return [security_events.as_dict(row) for row in found]

    events = _in_transaction(args, rows)
    if args.json:
        print(json.dumps(events, indent=2))
        return 0
    table: list[Sequence[Any]] = [
        (e["at"], e["type"], e["origin"], e["station_id"], e["source"], e["detail"].get("repeats", 0) + 1,
         json.dumps(e["detail"], separators=(",", ":"))[:80])
        for e in events
    ]  # fmt: skip
    print(_table(table, ("AT", "TYPE", "ORIGIN", "STATION", "SOURCE", "COUNT", "DETAIL")))
    return 0


def _database_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        default=None,
        metavar="URL",
        help=f"SQLAlchemy URL (default: ${URL_ENV}, else sqlite:///chargetwin.db)",
    )


def _help_of(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    """The handler of a command given without a subcommand: print its help, exit status 2."""

    def show(_args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    return show


def _group(subparsers: Any, name: str, help_text: str) -> Any:
    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(handler=_help_of(parser))
    return parser.add_subparsers(title="commands", metavar="COMMAND")


def _users_parser(commands: Any) -> None:
    org_cmds = _group(commands, "orgs", "organisations (tenants)")
    add = org_cmds.add_parser("add", help="add an organisation", description="Add an organisation (tenant).")
    add.add_argument("slug", metavar="SLUG", help="its short name: a-z, 0-9 and '-'")
    add.add_argument("--name", default=None, metavar="NAME", help="its display name")
    _database_option(add)
    add.set_defaults(handler=cmd_orgs_add)
    listing = org_cmds.add_parser("list", help="list organisations", description="List organisations.")
    _database_option(listing)
    listing.set_defaults(handler=cmd_orgs_list)

    user_cmds = _group(commands, "users", "console users")
    link_help = "the console's base URL for the printed link (default: $CHARGETWIN_API_URL without /api/v1)"
    add = user_cmds.add_parser(
        "add",
        help="add a user (prints a one-time set-password link)",
        description="Add a console user; prints the one-time link with which they set their password.",
    )
    add.add_argument("email", metavar="EMAIL")
    add.add_argument("--role", required=True, choices=ROLES, help="what the user may do")
    add.add_argument("--org", default=None, metavar="ORG", help="the organisation's slug (default: default)")
    add.add_argument("--console-url", default=None, metavar="URL", help=link_help)
    _database_option(add)
    add.set_defaults(handler=cmd_users_add)
    listing = user_cmds.add_parser("list", help="list users", description="List console users.")
    _database_option(listing)
    listing.set_defaults(handler=cmd_users_list)
    reset = user_cmds.add_parser(
        "reset",
        help="print a one-time password reset link",
        description="Print a new one-time link with which the user sets a new password (no mail is sent).",
    )
    reset.add_argument("email", metavar="EMAIL")
    reset.add_argument("--console-url", default=None, metavar="URL", help=link_help)
    _database_option(reset)
    reset.set_defaults(handler=cmd_users_reset)
    disable = user_cmds.add_parser(
        "disable",
        help="disable a user (ends their sessions) or --enable them again",
        description="Disable a console user: every session ends, sign-in and one-time links are refused.",
    )
    disable.add_argument("email", metavar="EMAIL")
    disable.add_argument("--enable", action="store_true", help="enable the user again")
    _database_option(disable)
    disable.set_defaults(handler=cmd_users_disable)
    totp = user_cmds.add_parser(
        "totp",
        help="turn the TOTP second factor on (or --off)",
        description="Turn a user's TOTP second factor on (prints the otpauth:// URI for an authenticator) or off.",
    )
    totp.add_argument("email", metavar="EMAIL")
    totp.add_argument("--off", action="store_true", help="turn it off")
    _database_option(totp)
    totp.set_defaults(handler=cmd_users_totp)


def _serve_parser(commands: Any) -> None:
    precedence = (
        "Every option is also a key of the --config file (TOML: the option's name with underscores, e.g. "
        "ocpp_port = 9000) and an environment variable (CHARGETWIN_ and the key in capitals, e.g. "
        "CHARGETWIN_OCPP_PORT); the command line overrides the environment, which overrides the file. "
        f"The API key is set only by the file's api_key or ${API_KEY_ENV}. See docs/operations.md."
    )
    serve = commands.add_parser(
        "serve",
        help="run the OCPP gateway and the HTTP API (migrates the database first)",
        description="Run the OCPP gateway and the HTTP API in one process. The API key is fixed by "
        f"${API_KEY_ENV} or created with `csms apikeys create`.",
        epilog=precedence,
    )
    serve_settings.add_arguments(serve)
    serve.set_defaults(handler=cmd_serve)
    config = _group(commands, "config", "the settings of csms serve")
    show = config.add_parser(
        "show",
        help="print the effective settings (TOML, secrets masked)",
        description="Print the settings `csms serve` would run with, given the same file, environment and "
        "options, as TOML; secrets and URL passwords are masked.",
        epilog=precedence,
    )
    serve_settings.add_arguments(show)
    show.set_defaults(handler=cmd_config_show)


def _credentials_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--password",
        default=None,
        metavar="PW",
        help="HTTP Basic password, required for security profiles 1 and 2 (2.0.1: 16-40 characters "
        "A-Z a-z 0-9 *-_=:+|@. ; 1.6: 16-20 printable characters)",
    )
    parser.add_argument(
        "--security-profile",
        type=int,
        default=1,
        choices=list(stations.SECURITY_PROFILES),
        help="1 Basic auth over ws or wss (default); 2 wss + Basic auth; 3 wss + a client certificate whose "
        "subject CN is the station id",
    )


def _stations_parser(commands: Any) -> None:
    station_cmds = _group(commands, "stations", "provision, list and approve stations")
    add = station_cmds.add_parser("add", help="provision a station", description="Provision a station.")
    add.add_argument("station_id", metavar="ID")
    _credentials_options(add)
    add.add_argument("--ocpp", required=True, choices=list(stations.VERSIONS), help="OCPP version")
    add.add_argument("--policy", default="accept", choices=list(stations.POLICIES), help="boot answer (default accept)")
    _database_option(add)
    add.set_defaults(handler=cmd_stations_add)
    listing = station_cmds.add_parser("list", help="list stations", description="List stations.")
    _database_option(listing)
    listing.set_defaults(handler=cmd_stations_list)
    pending = station_cmds.add_parser(
        "pending",
        help="list pending registrations (serve --auto-register)",
        description="Unknown stations that connected while auto-registration is on; each is refused until approved.",
    )
    _database_option(pending)
    pending.set_defaults(handler=cmd_stations_pending)
    approve = station_cmds.add_parser(
        "approve",
        help="approve a pending registration with the station's credentials",
        description="Create a pending station with the password (or profile 3: certificate) it is set up with; "
        "the password it offered when it connected is never used.",
    )
    approve.add_argument("station_id", metavar="ID")
    _credentials_options(approve)
    _database_option(approve)
    approve.set_defaults(handler=cmd_stations_approve)
    _live_station_parsers(station_cmds)
    _local_list_parsers(station_cmds)


def _api_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api-url",
        default=os.environ.get(API_URL_ENV, DEFAULT_API_URL),
        metavar="URL",
        help=f"the running CSMS's API (default ${API_URL_ENV} or {DEFAULT_API_URL}); key from ${API_KEY_ENV}",
    )
    parser.add_argument("--timeout", type=float, default=30.0, metavar="S", help="per call to the station (default 30)")


def _command_parsers(station_cmds: Any) -> None:
    """Typed commands to a connected station, each printing the station's answer (exit 1 when it refused)."""
    get = station_cmds.add_parser(
        "get-config", help="read a station's settings", description="1.6 GetConfiguration (no NAME: every key), "
        "2.0.1 GetVariables of Component.Variable (Component@EVSE.Variable); what it reports is kept by the CSMS.",
    )  # fmt: skip
    get.add_argument("station_id", metavar="ID")
    get.add_argument("names", nargs="*", metavar="NAME")
    _api_options(get)
    get.set_defaults(handler=cmd_stations_get_config)
    configure = station_cmds.add_parser(
        "configure", help="change a station's settings", description="1.6 ChangeConfiguration per KEY=VALUE, "
        "2.0.1 SetVariables of Component.Variable=VALUE; the station's answer per setting.",
    )  # fmt: skip
    configure.add_argument("station_id", metavar="ID")
    configure.add_argument("assignments", nargs="+", metavar="NAME=VALUE")
    _api_options(configure)
    configure.set_defaults(handler=cmd_stations_configure)
    commands_ = {
        "unlock": ("UnlockConnector", "unlock", lambda a: {"evse_id": a.evse, "connector_id": a.connector}),
        "clear-profile": ("ClearChargingProfile (by id, or EVSE/purpose/stack level; none: all)",
                          "charging-profiles/clear",
                          lambda a: {"id": a.id, "evse_id": a.evse, "purpose": a.purpose,
                                     "stack_level": a.stack_level}),
        "composite-schedule": ("GetCompositeSchedule of an EVSE (0: the grid connection)", "composite-schedule",
                               lambda a: {"evse_id": a.evse, "duration_s": a.duration, "unit": a.unit}),
        "reset": ("Reset: soft (2.0.1 OnIdle) or --hard (Immediate)", "reset",
                  lambda a: {"type": "hard" if a.hard else "soft"}),
        "trigger": ("TriggerMessage", "trigger", lambda a: {"message": a.message, "evse_id": a.evse}),
        "remote-start": ("RemoteStartTransaction / RequestStartTransaction", "remote-start",
                         lambda a: {"id_token": a.token, "evse_id": a.evse}),
        "remote-stop": ("RemoteStopTransaction / RequestStopTransaction of our transaction id", "remote-stop",
                        lambda a: {"transaction_id": a.transaction_id}),
        "base-report": ("GetBaseReport (2.0.1): the device model comes in NotifyReport, kept as the variables",
                        "reports", lambda a: {"base": a.base}),
        "clear-monitor": ("ClearVariableMonitoring of the station's monitor ids (2.0.1)", "monitors/clear",
                          lambda a: {"ids": a.ids}),
    }  # fmt: skip
    display = station_cmds.add_parser(
        "display-message", help="show a message on a station's display",
        description="2.0.1 SetDisplayMessage (1.6: DataTransfer org.chargetwin, where the charger has it); the "
        "CSMS numbers the message and keeps the station's answer (`GET …/display-messages`).",
    )  # fmt: skip
    display.add_argument("station_id", metavar="ID")
    display.add_argument("text", metavar="TEXT")
    display.add_argument("--priority", default="NormalCycle", choices=["AlwaysFront", "InFront", "NormalCycle"])
    display.add_argument("--format", default="UTF8", choices=["ASCII", "HTML", "URI", "UTF8"])
    display.add_argument("--state", default=None, choices=["Charging", "Faulted", "Idle", "Unavailable"])
    display.add_argument("--language", default=None, metavar="LANG")
    display.add_argument("--start", type=_iso, default=None, metavar="ISO")
    display.add_argument("--end", type=_iso, default=None, metavar="ISO")
    display.add_argument("--transaction", type=int, default=None, metavar="TX", help="our transaction id")
    _api_options(display)
    display.set_defaults(handler=cmd_stations_display_message)
    clear = station_cmds.add_parser("clear-display-message", help="take a message off a station's display",
                                    description="ClearDisplayMessage of a message the CSMS numbered.")  # fmt: skip
    clear.add_argument("station_id", metavar="ID")
    clear.add_argument("message_id", type=int, metavar="MESSAGE")
    _api_options(clear)
    clear.set_defaults(handler=cmd_stations_clear_display_message)
    monitor = station_cmds.add_parser(
        "monitor", help="set a variable monitor on a 2.0.1 station",
        description="SetVariableMonitoring of Component[@EVSE].Variable; an alerting monitor raises a "
        "monitor_alert alert until it clears.",
    )  # fmt: skip
    monitor.add_argument("station_id", metavar="ID")
    monitor.add_argument("name", metavar="Component[@EVSE].Variable")
    monitor.add_argument("--type", required=True, choices=["UpperThreshold", "LowerThreshold", "Delta", "Periodic",
                                                           "PeriodicClockAligned"])  # fmt: skip
    monitor.add_argument("--value", type=float, required=True)
    monitor.add_argument("--severity", type=int, default=5, choices=range(10), metavar="0-9")
    _api_options(monitor)
    monitor.set_defaults(handler=cmd_stations_monitor)
    events = station_cmds.add_parser("events", help="what a station reported (NotifyEvent, DataTransfer, …)",
                                     description="The station's events, newest first.")  # fmt: skip
    events.add_argument("station_id", metavar="ID")
    events.add_argument("--kind", default=None, help="e.g. device_event")
    events.add_argument("--limit", type=int, default=50)
    _api_options(events)
    events.set_defaults(handler=cmd_stations_events)
    for name, (help_text, path, body) in commands_.items():
        parser = station_cmds.add_parser(name, help=help_text.split(" (")[0], description=help_text + ".")
        parser.add_argument("station_id", metavar="ID")
        _COMMAND_ARGUMENTS[name](parser)
        _api_options(parser)
        parser.set_defaults(handler=cmd_stations_command, command_path=path, command_body=body)


_COMMAND_ARGUMENTS: dict[str, Callable[[argparse.ArgumentParser], object]] = {
    "unlock": lambda p: (p.add_argument("evse", type=int, metavar="EVSE"),
                         p.add_argument("--connector", type=int, default=1, metavar="N")),
    "clear-profile": lambda p: (p.add_argument("--id", type=int, default=None, metavar="N"),
                                p.add_argument("--evse", type=int, default=None, metavar="N"),
                                p.add_argument("--purpose", default=None, metavar="P",
                                               choices=["ChargingStationMaxProfile", "TxDefaultProfile", "TxProfile"]),
                                p.add_argument("--stack-level", type=int, default=None, metavar="N")),
    "composite-schedule": lambda p: (p.add_argument("evse", type=int, metavar="EVSE"),
                                     p.add_argument("--duration", type=int, required=True, metavar="S"),
                                     p.add_argument("--unit", choices=["A", "W"], default=None)),
    "reset": lambda p: p.add_argument("--hard", action="store_true"),
    "trigger": lambda p: (p.add_argument("message", metavar="MESSAGE"),
                          p.add_argument("--evse", type=int, default=None, metavar="N")),
    "remote-start": lambda p: (p.add_argument("token", metavar="TOKEN"),
                               p.add_argument("--evse", type=int, default=None, metavar="N")),
    "remote-stop": lambda p: p.add_argument("transaction_id", type=int, metavar="TRANSACTION"),
    "base-report": lambda p: p.add_argument("--base", default="FullInventory",
                                            choices=["FullInventory", "ConfigurationInventory", "SummaryInventory"]),
    "clear-monitor": lambda p: p.add_argument("ids", type=int, nargs="+", metavar="MONITOR"),
}  # fmt: skip


def _live_station_parsers(station_cmds: Any) -> None:
    """Commands that act on a connected station through the running server's API."""
    _command_parsers(station_cmds)
    rotate = station_cmds.add_parser(
        "rotate-password",
        help="send a connected station a new HTTP Basic password",
        description="Send a connected station a new password (1.6 ChangeConfiguration AuthorizationKey, 2.0.1 "
        "SetVariables BasicAuthPassword); stored only when the station accepts it. Without --password one is "
        "generated and printed once.",
    )
    rotate.add_argument("station_id", metavar="ID")
    rotate.add_argument("--password", default=None, metavar="PW", help="the new password (default: generate one)")
    _api_options(rotate)
    rotate.set_defaults(handler=cmd_stations_rotate_password)
    upgrade = station_cmds.add_parser(
        "upgrade-profile",
        help="move a connected station to a higher security profile",
        description="2.0.1 SetNetworkProfile + NetworkConfigurationPriority + Reset; 1.6 ChangeConfiguration "
        "SecurityProfile + Reset. The stored profile changes once the station has reconnected at it; a downgrade "
        "is refused.",
    )
    upgrade.add_argument("station_id", metavar="ID")
    upgrade.add_argument("profile", type=int, choices=list(stations.SECURITY_PROFILES), metavar="PROFILE")
    upgrade.add_argument("--csms-url", default=None, metavar="URL", help="URL to reconnect to (2.0.1)")
    _api_options(upgrade)
    upgrade.set_defaults(handler=cmd_stations_upgrade_profile)
    needs = station_cmds.add_parser(
        "charging-needs",
        help="ISO 15118 smart charging of a station: the EVs' needs, TxProfiles, EV schedules",
        description="Per EVSE: the EV's last NotifyEVChargingNeeds (departure, energy), the TxProfile the station "
        "accepted, and the EV's NotifyEVChargingSchedule with the CSMS's verdict.",
    )
    needs.add_argument("station_id", metavar="ID")
    _api_options(needs)
    needs.set_defaults(handler=cmd_stations_charging_needs)
    _reservation_parsers(station_cmds)


def _reservation_parsers(station_cmds: Any) -> None:
    reserve = station_cmds.add_parser(
        "reserve",
        help="reserve a connector (1.6) / EVSE (2.0.1), or any, for a token",
        description="ReserveNow with an id the CSMS chooses; prints the station's answer and the reservation. "
        "Exit status 1 when the station did not accept it.",
    )
    reserve.add_argument("station_id", metavar="ID")
    reserve.add_argument("--token", required=True, metavar="T", help="the id token the reservation is for")
    reserve.add_argument("--token-type", default="ISO14443", metavar="TYPE", help="2.0.1 idToken type")
    port = reserve.add_mutually_exclusive_group()
    port.add_argument("--connector", type=int, metavar="N", help="1.6 connector (0 or absent: any)")
    port.add_argument("--evse", type=int, metavar="N", help="2.0.1 EVSE (absent: any)")
    reserve.add_argument("--connector-type", metavar="TYPE", help="2.0.1 connectorType, e.g. cType2")
    reserve.add_argument("--group", metavar="G", help="2.0.1 groupIdToken (1.6 parentIdTag)")
    until = reserve.add_mutually_exclusive_group(required=True)
    until.add_argument("--expires", metavar="ISO", help="expiry, e.g. 2026-12-04T18:00:00Z")
    until.add_argument("--for", dest="valid_for", type=_duration_s, metavar="D", help="validity: 90s, 30m, 2h")
    _api_options(reserve)
    reserve.set_defaults(handler=cmd_stations_reserve)
    cancel = station_cmds.add_parser(
        "cancel-reservation",
        help="cancel an active reservation (CancelReservation)",
        description="CancelReservation; exit status 1 when the station did not accept it.",
    )
    cancel.add_argument("station_id", metavar="ID")
    cancel.add_argument("reservation_id", type=int, metavar="RID")
    _api_options(cancel)
    cancel.set_defaults(handler=cmd_stations_cancel_reservation)


# ---- local authorization list and cache of a connected station (through the running server's API) ----------
def cmd_stations_send_local_list(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"update_type": "Full" if args.full else "Differential"}
    if args.group is not None:
        body["token_group"] = args.group or None
    answer = _api_post(args, f"/stations/{quote(args.station_id, safe='')}/local-list", body)
    for call in answer["calls"]:
        what = f"SendLocalList {call['update_type']} version {call['version']} ({call['entries']} entries)"
        print(f"{what}: {call['status']}")
    print(f"station {args.station_id}: local list version {answer['version']} ({answer['status']})")
    return 0 if answer["status"] in ("Accepted", "in step") else 1


def cmd_stations_local_list_version(args: argparse.Namespace) -> int:
    path = f"/stations/{quote(args.station_id, safe='')}/local-list/version"
    answer = _api_request(args.api_url, "GET", path, params={"timeout": args.timeout}, timeout=args.timeout * 4)
    if answer["reported_version"] is None:
        print(_outcome(answer["call"]))
        return 1
    step = "in step" if answer["in_step"] else f"the CSMS sent version {answer['version']}: a Full list follows"
    print(f"station {args.station_id}: local list version {answer['reported_version']} ({step})")
    return 0


def cmd_stations_clear_cache(args: argparse.Namespace) -> int:
    answer = _api_post(args, f"/stations/{quote(args.station_id, safe='')}/clear-cache", {})
    print(_outcome(answer))
    return 0 if (answer.get("payload") or {}).get("status") == "Accepted" else 1


def _local_list_parsers(station_cmds: Any) -> None:
    send = station_cmds.add_parser(
        "send-local-list",
        help="bring a connected station's local authorization list in step",
        description="SendLocalList with the CSMS's own version numbers: what the list lacks (Differential), or "
        "the whole list with --full; split when the station takes fewer entries per message.",
    )
    send.add_argument("station_id", metavar="ID")
    send.add_argument("--full", action="store_true", help="send the whole list (default: the changes)")
    send.add_argument("--group", default=None, metavar="G", help="from now on only group G's tokens ('' = all)")
    _api_options(send)
    send.set_defaults(handler=cmd_stations_send_local_list)
    version = station_cmds.add_parser(
        "local-list-version", help="GetLocalListVersion", description="Ask a station its local list version."
    )
    version.add_argument("station_id", metavar="ID")
    _api_options(version)
    version.set_defaults(handler=cmd_stations_local_list_version)
    clear = station_cmds.add_parser(
        "clear-cache", help="ClearCache", description="Make a station forget its cached authorizations."
    )
    clear.add_argument("station_id", metavar="ID")
    _api_options(clear)
    clear.set_defaults(handler=cmd_stations_clear_cache)


def _roots_parser(commands: Any) -> None:
    roots = _group(commands, "contract-roots", "the MO/V2G roots trusted for ISO 15118 contract certificates")
    add = roots.add_parser("add", help="trust a root (PEM file)", description="Trust a contract-certificate root.")
    add.add_argument("file", metavar="PEM")
    add.add_argument("--kind", default="MO", choices=list(contracts.KINDS), help="(default MO)")
    _database_option(add)
    add.set_defaults(handler=cmd_roots_add)
    listing = roots.add_parser("list", help="list trusted roots", description="List trusted roots.")
    _database_option(listing)
    listing.set_defaults(handler=cmd_roots_list)
    remove = roots.add_parser("remove", help="stop trusting a root", description="Stop trusting a root.")
    remove.add_argument("fingerprint", metavar="SHA256")
    _database_option(remove)
    remove.set_defaults(handler=cmd_roots_remove)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="csms", description="chargetwin CSMS: OCPP 1.6J/2.0.1 gateway and API.")
    parser.set_defaults(handler=_help_of(parser))
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    _serve_parser(commands)
    _ocpi_parsers(commands)

    db = _group(commands, "db", "database administration")
    upgrade = db.add_parser("upgrade", help="create or migrate the schema", description="Create or migrate the schema.")
    _database_option(upgrade)
    upgrade.set_defaults(handler=cmd_db_upgrade)

    _stations_parser(commands)

    token_cmds = _group(commands, "tokens", "create and list id tokens")
    add = token_cmds.add_parser("add", help="create an id token", description="Create an id token.")
    add.add_argument("token", metavar="TOKEN")
    add.add_argument("--status", default="Accepted", choices=list(authorization.STATUSES), help="(default Accepted)")
    add.add_argument("--group", default=None, metavar="G", help="group id")
    add.add_argument("--expiry", type=_iso, default=None, metavar="ISO", help="expiry date-time (naive is UTC)")
    add.add_argument("--type", default="ISO14443", metavar="T", help="token type (default ISO14443)")
    _database_option(add)
    add.set_defaults(handler=cmd_tokens_add)
    listing = token_cmds.add_parser("list", help="list id tokens", description="List id tokens.")
    _database_option(listing)
    listing.set_defaults(handler=cmd_tokens_list)

    _roots_parser(commands)

    key_cmds = _group(commands, "apikeys", "API keys")
    create = key_cmds.add_parser(
        "create", help="create an API key (printed once)", description="Create an API key; it is printed once."
    )
    create.add_argument("--name", default="default", metavar="N", help="a label for the key")
    create.add_argument(
        "--role", default=PLATFORM_ADMIN, choices=ROLES, help=f"what the key may do (default {PLATFORM_ADMIN})"
    )
    create.add_argument("--org", default=None, metavar="ORG", help="its organisation's slug (default: default)")
    _database_option(create)
    create.set_defaults(handler=cmd_apikeys_create)
    key_list = key_cmds.add_parser("list", help="list API keys", description="API keys: name, role, organisation.")
    _database_option(key_list)
    key_list.set_defaults(handler=cmd_apikeys_list)
    _users_parser(commands)
    events = commands.add_parser(
        "security-events",
        help="list security events, newest first",
        description="Security events: what stations reported (SecurityEventNotification) and what the CSMS "
        "detected (refused handshakes, bad passwords and certificates, rejected CSRs), newest first.",
    )
    events.add_argument("--station", default=None, metavar="ID", help="only this station id")
    events.add_argument("--type", default=None, metavar="T", help="only this type (e.g. bad_password)")
    events.add_argument("--origin", default=None, choices=list(security_events.ORIGINS), help="who recorded it")
    events.add_argument("--since", type=_iso, default=None, metavar="ISO", help="at or after (naive is UTC)")
    events.add_argument("--limit", type=int, default=50, metavar="N", help="at most N events (default 50)")
    events.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _database_option(events)
    events.set_defaults(handler=cmd_security_events)
    _pki_parsers(commands)
    _bundle_parsers(commands)
    _import_parsers(commands)
    _migrate_parsers(commands)
    _report_parsers(commands)
    _billing_parsers(commands)
    _tariff_parsers(commands)
    return parser


def _billing_parsers(commands: Any) -> None:
    _property_parsers(commands)
    accounts = commands.add_parser(
        "accounts", help="billing accounts (drivers, fleets, properties)", description="Billing accounts."
    ).add_subparsers(dest="accounts_command", required=True, metavar="COMMAND")
    add = accounts.add_parser("add", help="create an account", description="Create a billing account.")
    add.add_argument("account_id", metavar="ID")
    add.add_argument("--name", required=True)
    add.add_argument("--kind", choices=billing.KINDS, default="driver")
    add.add_argument("--billing", choices=billing.BILLING, default="postpaid")
    add.add_argument("--currency", default="EUR", help="ISO 4217 (default EUR)")
    add.add_argument("--payment-method", choices=billing.METHODS, default="bank_transfer")
    add.add_argument("--email")
    add.add_argument("--vat-id")
    listing = accounts.add_parser("list", help="accounts with their balance", description="List accounts.")
    link = accounts.add_parser("link", help="the account pays for a token", description="Link a token to an account.")
    link.add_argument("account_id", metavar="ID")
    link.add_argument("id_token", metavar="TOKEN")
    invoices = commands.add_parser(
        "invoices", help="monthly invoices of postpaid accounts", description="Invoices."
    ).add_subparsers(dest="invoices_command", required=True, metavar="COMMAND")
    issue = invoices.add_parser("issue", help="invoice a month that has ended", description="Issue a month's invoices.")
    issue.add_argument("--month", required=True, metavar="YYYY-MM")
    issue.add_argument("--tz", default="UTC", help="IANA time zone of the month (default UTC)")
    document = invoices.add_parser("document", help="write an invoice as PDF or CSV", description="An invoice file.")
    document.add_argument("number", metavar="NUMBER")
    document.add_argument("--out", type=Path, required=True, help="FILE.pdf or FILE.csv")
    for parser in (add, listing, link, issue, document):
        _database_option(parser)
        parser.set_defaults(handler=cmd_billing)


def cmd_billing(args: argparse.Namespace) -> int:
    from zoneinfo import ZoneInfo

    from csms.domain import money
    from csms.reports import invoices as documents

    now = datetime.now(UTC)
    command = getattr(args, "accounts_command", None) or args.invoices_command

    def work(db: Session) -> str:
        if command == "add":
            billing.create_account(
                db, args.account_id, kind=args.kind, name=args.name, billing=args.billing, currency=args.currency,
                now=now, email=args.email, payment_method=args.payment_method, vat_id=args.vat_id,
            )  # fmt: skip
            return f"account {args.account_id} created ({args.billing}, {args.currency})"
        if command == "link":
            billing.link_token(db, args.account_id, args.id_token)
            return f"account {args.account_id} pays for token {args.id_token}"
        if command == "list":
            accounts: list[Sequence[Any]] = [
                (a.id, a.kind, a.billing, a.name, money.format_amount(billing.balance(db, a.id), a.currency))
                for a in billing.list_accounts(db)
            ]
            return _table(accounts, ("ID", "KIND", "BILLING", "NAME", "BALANCE"))
        if command == "issue":
            year, month = (int(part) for part in args.month.split("-"))
            issued = billing.issue_invoices(db, year, month, tz=ZoneInfo(args.tz), now=now)
            numbers: list[Sequence[Any]] = [
                (i.number, i.account_id, money.format_amount(i.gross_minor, i.currency)) for i in issued
            ]
            return _table(numbers, ("NUMBER", "ACCOUNT", "TOTAL")) if numbers else "nothing to invoice"
        invoice = billing.get_invoice(db, args.number)
        account = billing.get_account(db, invoice.account_id)
        doc = documents.InvoiceDocument(
            invoice.number, invoice.issued_at, invoice.period_start, invoice.period_end, invoice.currency,
            invoice.net_minor, invoice.vat_minor, invoice.gross_minor, invoice.lines, _seller_from_environment(),
            documents.Party(account.name, account.address or "", account.vat_id or "", account.email or ""),
        )  # fmt: skip
        if args.out.suffix == ".csv":
            args.out.write_text("".join(documents.csv_document(doc)))
        else:
            args.out.write_bytes(documents.pdf_document(doc))
        return f"wrote {args.out}"

    try:
        print(_in_transaction(args, work))
    except (DomainError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _property_parsers(commands: Any) -> None:
    cmds = _group(commands, "properties", "multifamily garages: the units' monthly statements and their ledgers")
    statements = cmds.add_parser(
        "statements",
        help="every unit's statement of a month beside what its ledger holds; --post debits the units",
        description="Each unit's statement of a local month and the total its billing account's ledger holds for "
        "it. With --post every statement is posted to its unit's ledger: once (posting again changes nothing), "
        "and a corrected statement reverses the lines posted before and posts the new ones.",
    )
    statements.add_argument("property_id", metavar="PROPERTY")
    statements.add_argument("--month", required=True, metavar="YYYY-MM")
    statements.add_argument("--post", action="store_true", help="post the statements to the units' ledgers")
    _database_option(statements)
    statements.set_defaults(handler=cmd_property_statements)


def cmd_property_statements(args: argparse.Namespace) -> int:
    from csms.domain import money
    from csms.services import multifamily

    now = datetime.now(UTC)
    try:
        year, month = (int(part) for part in args.month.split("-"))
    except ValueError:
        print("error: --month: YYYY-MM", file=sys.stderr)
        return 2

    def work(db: Session) -> str:
        rows: list[Sequence[Any]] = []
        for unit in multifamily.units(db, args.property_id):
            if args.post:
                found, posting = multifamily.post_statement(
                    db, args.property_id, unit.name, year, month, now=now, by="cli"
                )
                changes = (bool(posting.posted), bool(posting.reversals))
                state = {(True, False): "posted", (True, True): "corrected", (False, True): "reversed"}.get(
                    changes, "unchanged"
                )
            else:
                found, state = multifamily.statement(db, args.property_id, unit.name, year, month), ""
            held = multifamily.posted_minor(db, args.property_id, unit.name, year, month)
            rows.append((unit.name, found.sessions, f"{found.energy_wh / 1000:.3f}",
                         money.format_amount(found.total_minor, found.currency),
                         money.format_amount(held, found.currency), state))  # fmt: skip
        return _table(rows, ("UNIT", "SESSIONS", "KWH", "STATEMENT", "LEDGER", "POSTING"))

    try:
        print(_in_transaction(args, work))
    except (DomainError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _tariff_parsers(commands: Any) -> None:
    cmds = _group(commands, "tariffs", "OCPI 2.2.1 tariffs, where they apply, and what a session would cost")
    put = cmds.add_parser("put", help="create or change a tariff from OCPI JSON (a change is a new version)",
                          description="Create or change a tariff; its body is OCPI 2.2.1 Tariff JSON.")  # fmt: skip
    put.add_argument("tariff_id", metavar="ID")
    put.add_argument("--file", required=True, metavar="FILE", help="the OCPI Tariff JSON ('-' reads stdin)")
    listing = cmds.add_parser("list", help="tariffs with their version", description="List tariffs.")
    show = cmds.add_parser("show", help="a tariff's OCPI JSON", description="Print a tariff as OCPI JSON.")
    history = cmds.add_parser("versions", help="a tariff's price history", description="A tariff's versions.")
    delete = cmds.add_parser("delete", help="delete an unassigned tariff", description="Delete a tariff.")
    for parser in (show, history, delete):
        parser.add_argument("tariff_id", metavar="ID")
    assign = cmds.add_parser(
        "assign",
        help="apply a tariff at a site, station or EVSE (optionally to a group)",
        description="Apply a tariff; the most specific place wins (docs/design/tariffs.md).",
    )
    assign.add_argument("tariff_id", metavar="ID")
    where = assign.add_mutually_exclusive_group(required=True)
    where.add_argument("--site", metavar="SITE")
    where.add_argument("--station", metavar="STATION")
    assign.add_argument("--evse", type=int, metavar="N", help="one EVSE of --station")
    assign.add_argument("--group", metavar="GROUP", help="only for drivers of this token group")
    assigned = cmds.add_parser("assignments", help="where each tariff applies", description="List assignments.")
    unassign = cmds.add_parser("unassign", help="remove an assignment", description="Remove an assignment.")
    unassign.add_argument("assignment_id", type=int, metavar="N")
    quote_cmd = cmds.add_parser(
        "quote",
        help="what a session would cost before it starts",
        description="Price a session that charges KWH evenly over MINUTES, then parks.",
    )
    quote_cmd.add_argument("station_id", metavar="STATION")
    quote_cmd.add_argument("--evse", type=int, default=1, metavar="N")
    quote_cmd.add_argument("--kwh", type=Decimal, required=True)
    quote_cmd.add_argument("--minutes", type=int, required=True, help="minutes charging")
    quote_cmd.add_argument("--parking-minutes", type=int, default=0, help="then plugged in, not charging")
    quote_cmd.add_argument("--token", metavar="TOKEN", help="the driver's token (its group's tariff)")
    quote_cmd.add_argument("--start", type=datetime.fromisoformat, default=None, metavar="ISO",
                           help="when the session starts (default now; UTC unless it has an offset)")  # fmt: skip
    quote_cmd.add_argument("--tz", default="UTC", help="IANA time zone of the site (default UTC)")
    for parser in (put, listing, show, history, delete, assign, assigned, unassign, quote_cmd):
        _database_option(parser)
        parser.set_defaults(handler=cmd_tariffs, tariffs_command=parser.prog.split()[-1])


def _money(amount: Decimal, currency: str) -> str:
    from csms.domain import money

    return money.format_amount(money.to_minor(amount, currency), currency)


def _tariff_put(args: argparse.Namespace, db: Session, now: datetime) -> str:
    text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{args.file}: not JSON ({exc})") from None
    if not isinstance(body, dict):
        raise UserError(f"{args.file}: an OCPI Tariff is a JSON object")
    row, created = tariffs.put(db, args.tariff_id, body, now)
    return f"tariff {row.id} {'created' if created else f'now at version {row.version}'}"


def _tariff_list(_args: argparse.Namespace, db: Session, _now: datetime) -> str:
    rows: list[Sequence[Any]] = [
        (t.id, t.version, t.currency, t.updated_at.isoformat(timespec="seconds")) for t in tariffs.list_tariffs(db)
    ]
    return _table(rows, ("ID", "VERSION", "CURRENCY", "UPDATED"))


def _tariff_versions(args: argparse.Namespace, db: Session, _now: datetime) -> str:
    history: list[Sequence[Any]] = [
        (v.version, v.valid_from.isoformat(timespec="seconds")) for v in tariffs.versions(db, args.tariff_id)
    ]
    return _table(history, ("VERSION", "VALID FROM"))


def _tariff_delete(args: argparse.Namespace, db: Session, _now: datetime) -> str:
    tariffs.delete(db, args.tariff_id)
    return f"tariff {args.tariff_id} deleted"


def _tariff_assign(args: argparse.Namespace, db: Session, now: datetime) -> str:
    row = tariffs.assign(db, args.tariff_id, now=now, site_id=args.site, station_id=args.station,
                         evse_id=args.evse, group_id=args.group)  # fmt: skip
    return f"assignment {row.id}: tariff {row.tariff_id}"


def _tariff_assignments(_args: argparse.Namespace, db: Session, _now: datetime) -> str:
    places: list[Sequence[Any]] = [
        (a.id, a.tariff_id, a.site_id, a.station_id, a.evse_id, a.group_id or "everyone")
        for a in tariffs.assignments(db)
    ]
    return _table(places, ("N", "TARIFF", "SITE", "STATION", "EVSE", "FOR"))


def _tariff_unassign(args: argparse.Namespace, db: Session, _now: datetime) -> str:
    tariffs.unassign(db, args.assignment_id)
    return f"assignment {args.assignment_id} removed"


def _tariff_quote(args: argparse.Namespace, db: Session, now: datetime) -> str:
    group = authorization.get(db, args.token).group_id if args.token else None
    tariff = tariffs.resolve(db, args.station_id, args.evse, group)
    if tariff is None:
        raise UserError(f"no tariff applies at {args.station_id} EVSE {args.evse}")
    start = args.start or now
    start = start if start.tzinfo else start.replace(tzinfo=UTC)
    result = tariffs.quote(tariff, start=start.astimezone(UTC), kwh=args.kwh, charging_minutes=args.minutes,
                           parking_minutes=args.parking_minutes, time_zone=args.tz)  # fmt: skip
    code = result.currency
    lines: list[Sequence[Any]] = [
        (c.dimension.value, c.billed_volume, _money(c.excl_vat, code), _money(c.incl_vat, code)) for c in result.costs
    ]
    total = result.total_cost
    incl = "" if total.incl_vat is None else _money(total.incl_vat, code)
    lines.append(("TOTAL", "", _money(total.excl_vat, code), incl))
    header = ("DIMENSION", "BILLED", "EXCL VAT", "INCL VAT")
    return f"tariff {tariff.id} (version {tariff.version})\n" + _table(lines, header)


_TARIFF_COMMANDS: dict[str, Callable[[argparse.Namespace, Session, datetime], str]] = {
    "put": _tariff_put,
    "list": _tariff_list,
    "show": lambda args, db, _now: json.dumps(tariffs.get(db, args.tariff_id).body, indent=2),
    "versions": _tariff_versions,
    "delete": _tariff_delete,
    "assign": _tariff_assign,
    "assignments": _tariff_assignments,
    "unassign": _tariff_unassign,
    "quote": _tariff_quote,
}


def cmd_tariffs(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    command = _TARIFF_COMMANDS[args.tariffs_command]
    try:
        print(_in_transaction(args, lambda db: command(args, db, now)))
    except (DomainError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _ven_settings(settings: ServeSettings) -> Any:
    if settings.openadr_vtn_url is None:
        return None
    from csms.runtime.openadr import VenSecurity, VenSettings

    security = VenSecurity(settings.openadr_vtn_fingerprint, settings.openadr_cert, settings.openadr_key,
                           settings.openadr_ca_file)  # fmt: skip
    return VenSettings(
        settings.openadr_vtn_url,
        settings.openadr_ven_name,
        tuple(settings.openadr_sites),
        settings.openadr_opt_out,
        security,
    )


def _seller_from_environment() -> Party:
    """The seller as `csms serve` would have it from the environment (CHARGETWIN_SELLER_…), else the defaults."""
    defaults = ServeSettings()
    values = {
        name: os.environ.get(serve_settings.env_of(name), getattr(defaults, name))
        for name in ("seller_name", "seller_address", "seller_vat_id")
    }
    return _seller(defaults.model_copy(update=values))


def _seller(settings: ServeSettings) -> Party:
    return Party(settings.seller_name, settings.seller_address.replace("\\n", "\n"), settings.seller_vat_id)


def _report_parsers(commands: Any) -> None:
    reports = commands.add_parser(
        "reports", help="usage reports, session exports and report plots", description="Reports on the database."
    ).add_subparsers(dest="report", required=True, metavar="REPORT")
    usage = reports.add_parser(
        "usage",
        help="sessions, energy, occupancy, utilisation and uptime per key",
        description="One row per site, station, driver, group, day or month over [--from, --to).",
    )
    usage.add_argument(
        "--by", required=True, choices=["site", "station", "driver", "group", "vehicle", "cost_centre", "day", "month"]
    )
    usage.add_argument("--format", default="table", choices=["table", "json", "csv", "jsonl", "parquet"])
    sessions = reports.add_parser(
        "sessions", help="every session of the period, one row each", description="Export the period's sessions."
    )
    sessions.add_argument("--format", default="csv", choices=["csv", "jsonl", "parquet"])
    sessions.add_argument("--station", help="only this station's sessions")
    plot = reports.add_parser("plot", help="a report picture (PNG)", description="Draw a report picture.")
    plot.add_argument("kind", choices=["energy", "revenue", "utilisation"])
    for parser in (usage, plot):
        parser.add_argument("--currency", help="revenue in this ISO 4217 currency (default: the CDRs' one)")
    for parser in (usage, sessions, plot):
        parser.add_argument("--from", dest="start", required=True, type=_instant, help="ISO 8601, naive is UTC")
        parser.add_argument("--to", dest="end", required=True, type=_instant, help="ISO 8601 (excluded)")
        parser.add_argument("--tz", default="UTC", help="IANA time zone of days, months and hours (default UTC)")
        parser.add_argument("--site", help="only this site's ports")
        parser.add_argument("--out", type=Path, help="file to write (default: standard output; needed for binary)")
        _database_option(parser)
        parser.set_defaults(handler=cmd_reports)


def _instant(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from exc


def cmd_reports(args: argparse.Namespace) -> int:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        tz = ZoneInfo(args.tz)
    except (ZoneInfoNotFoundError, ValueError):
        print(f"--tz: unknown time zone {args.tz!r}", file=sys.stderr)
        return 2
    binary = args.report == "plot" or args.format == "parquet"
    if binary and args.out is None:
        print(f"--out FILE is needed for a {'PNG' if args.report == 'plot' else 'Parquet'} file", file=sys.stderr)
        return 2
    written = _in_transaction(args, lambda db: _write_report(db, args, tz))
    if args.out is not None:
        print(f"wrote {written} to {args.out}", file=sys.stderr)
    return 0


def _write_report(db: Session, args: argparse.Namespace, tz: Any) -> str:
    from csms.reports import plots
    from csms.services import usage_reports as ur

    if args.report == "plot":
        if args.kind in ("energy", "revenue"):
            rows = ur.usage(db, args.start, args.end, "day", tz=tz, site_id=args.site, currency=args.currency)
            if args.kind == "energy":
                png = plots.per_day(rows, "energy_kwh", "kWh", f"Energy per day ({args.tz})")
            else:
                code = next((r["currency"] for r in rows if r["currency"]), args.currency or "")
                label = f"{code} incl. VAT".strip()
                png = plots.per_day(rows, "revenue_incl_vat", label, f"Revenue per day ({args.tz})", color="#1c7ed6")
        else:
            matrix = ur.occupancy_by_hour(db, args.start, args.end, tz=tz, site_id=args.site)
            png = plots.occupancy_heatmap(matrix, f"Ports occupied by hour ({args.tz})")
        args.out.write_bytes(png)
        return f"{len(png):,} bytes of PNG"
    if args.report == "usage":
        rows = ur.usage(db, args.start, args.end, args.by, tz=tz, site_id=args.site, currency=args.currency)
        columns = [args.by, "sessions", "energy_kwh", "currency", "revenue_excl_vat", "revenue_incl_vat",
                   "occupied_hours", "utilisation_pct", "uptime_pct"]  # fmt: skip
        if args.format == "table":
            return _emit(args, _table([[r[c] for c in columns] for r in rows], [c.upper() for c in columns]) + "\n")
        return _emit_rows(args, rows, columns, len(rows))
    start, end = ur.period(args.start, args.end)
    stream = (
        {c: getattr(r, c) for c in ur.SESSION_COLUMNS}
        for r in ur.sessions(db, start, end, site_id=args.site, station_id=args.station)
    )
    return _emit_rows(args, stream, list(ur.SESSION_COLUMNS), None)


def _emit_rows(args: argparse.Namespace, rows: Any, columns: list[str], count: int | None) -> str:
    from csms.reports import formats

    if args.format == "parquet":
        with args.out.open("wb") as out:
            count = formats.write_parquet(rows, columns, out)
        return f"{count} rows of Parquet"
    if args.format == "json":
        return _emit(args, json.dumps(list(rows), indent=1, default=str) + "\n")
    lines = (
        formats.csv_lines(rows, columns)
        if args.format == "csv"
        else (b.decode() for b in formats.jsonl_lines(rows, columns))
    )
    out = args.out.open("w", newline="") if args.out is not None else sys.stdout
    written = 0
    try:
        for line in lines:
            out.write(line)
            written += 1
    finally:
        if args.out is not None:
            out.close()
    return f"{written - (args.format == 'csv')} rows of {args.format.upper()}"


def _emit(args: argparse.Namespace, text: str) -> str:
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text)
    return f"{len(text):,} characters"


def _bundle_parsers(commands: Any) -> None:
    export = commands.add_parser(
        "export",
        help="write everything the operator owns to a bundle",
        description="Write stations, tokens, sites, keys (hashes), alerts, webhooks, uptime and the whole session "
        "history to a bundle (a zip of JSON Lines files with a manifest; docs/design/migration.md).",
    )
    export.add_argument("--out", required=True, metavar="BUNDLE", help="the bundle file to write")
    _database_option(export)
    export.set_defaults(handler=cmd_export)
    imp = commands.add_parser(
        "import",
        help="import a bundle (one transaction; importing it again changes nothing)",
        description="Import a bundle written by `csms export`, in one transaction. It is verified first (format "
        "version, checksums, counts). Rows already there unchanged are skipped; a row whose key exists with other "
        "content is a conflict, which refuses the import unless --on-conflict says what to do.",
    )
    imp.add_argument("bundle", type=Path, metavar="BUNDLE")
    imp.add_argument("--dry-run", action="store_true", help="report per table what would change, write nothing")
    imp.add_argument(
        "--on-conflict",
        choices=["refuse", "keep", "replace"],
        default="refuse",
        help="refuse (default): import nothing; keep: leave the database's row; replace: take the bundle's row",
    )
    _database_option(imp)
    imp.set_defaults(handler=cmd_import)


def _import_parsers(commands: Any) -> None:
    """Bringing a fleet over from another platform (docs/design/migration.md, "From SteVe and from spreadsheets")."""
    steve = commands.add_parser(
        "import-steve",
        help="import stations, id tags, sessions and reservations from a SteVe database",
        description="Read a SteVe (OCPP 1.6 CSMS) MySQL/MariaDB database and import its charge boxes, OCPP tags, "
        "transactions with their meter values and reservations, in one transaction; what exists is left as it "
        "is (a second import changes nothing). The report says what mapped, what did not and why.",
    )
    steve.add_argument("source", metavar="STEVE_URL", help="e.g. mysql+pymysql://steve:PW@127.0.0.1:3306/stevedb")
    steve.set_defaults(handler=cmd_import_steve)
    csv_cmd = commands.add_parser(
        "import-csv",
        help="import stations, tokens or sessions from a CSV file",
        description="Import one CSV file (a header row, columns in docs/design/migration.md) in one transaction. "
        "A bad value is reported with its file, line and column and nothing is imported; rows whose key exists "
        "are left as they are.",
    )
    csv_cmd.add_argument("kind", choices=["stations", "tokens", "sessions"], metavar="KIND",
                         help="stations, tokens or sessions")  # fmt: skip
    csv_cmd.add_argument("file", type=Path, metavar="FILE")
    csv_cmd.set_defaults(handler=cmd_import_csv)
    for parser in (steve, csv_cmd):
        parser.add_argument("--dry-run", action="store_true", help="report what would change, write nothing")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")
        _database_option(parser)


def _pki_parsers(commands: Any) -> None:
    pki = _group(commands, "pki", "the CSMS's certificate authority for stations")
    init = pki.add_parser(
        "init",
        help="make a CA directory for `csms serve --pki`",
        description="Make a root CA and a station sub-CA (or take an external CA with --ca-cert/--ca-key) and a "
        "wss:// server certificate, as PEM files in DIR.",
    )
    init.add_argument("directory", type=Path, metavar="DIR")
    init.add_argument("--organisation", default="chargetwin", metavar="O", help="subject O (default chargetwin)")
    init.add_argument(
        "--server-name",
        action="append",
        metavar="NAME",
        help="DNS name or IP of the wss:// server, repeatable (default localhost and 127.0.0.1)",
    )
    init.add_argument("--ca-cert", type=Path, default=None, metavar="F", help="an external CA's PEM certificate")
    init.add_argument("--ca-key", type=Path, default=None, metavar="F", help="its PEM private key (unencrypted)")
    init.set_defaults(handler=cmd_pki_init)

    certs = _group(commands, "certificates", "station certificates: issued, revoked, installed on stations")
    listing = certs.add_parser("list", help="certificates the CA issued", description="Certificates the CA issued.")
    listing.add_argument("--station", default=None, metavar="ID", help="only this station")
    _database_option(listing)
    listing.set_defaults(handler=cmd_certificates_list)
    revoke = certs.add_parser("revoke", help="revoke an issued certificate", description="Revoke a certificate.")
    revoke.add_argument("serial", metavar="SERIAL", help="hex, as `certificates list` shows it")
    _database_option(revoke)
    revoke.set_defaults(handler=cmd_certificates_revoke)
    _station_certificate_parsers(certs)


def _station_certificate_parsers(certs: Any) -> None:
    """Commands that reach a connected station through the API of a running ``csms serve``."""
    api_help = "API of the running CSMS (default http://127.0.0.1:8000/api/v1); the key is $" + API_KEY_ENV
    types = ["CSMSRootCertificate", "ManufacturerRootCertificate", "V2GRootCertificate", "MORootCertificate"]
    install = certs.add_parser("install", help="InstallCertificate on a station", description="Install a root.")
    install.add_argument("station_id", metavar="STATION")
    install.add_argument("--type", required=True, choices=types, help="the root's type")
    install.add_argument("--file", type=Path, required=True, metavar="F", help="its PEM certificate")
    install.set_defaults(handler=cmd_certificates_install)
    installed = certs.add_parser("installed", help="GetInstalledCertificateIds", description="List a station's roots.")
    installed.add_argument("station_id", metavar="STATION")
    installed.add_argument("--type", action="append", choices=types, help="only these types (1.6: exactly one)")
    installed.set_defaults(handler=cmd_certificates_installed)
    delete = certs.add_parser("delete", help="DeleteCertificate on a station", description="Delete a certificate.")
    delete.add_argument("station_id", metavar="STATION")
    delete.add_argument("--serial", required=True, metavar="HEX")
    delete.add_argument("--issuer-name-hash", required=True, metavar="HEX")
    delete.add_argument("--issuer-key-hash", required=True, metavar="HEX")
    delete.add_argument("--hash-algorithm", default="SHA256", choices=["SHA256", "SHA384", "SHA512"])
    delete.set_defaults(handler=cmd_certificates_delete)
    for parser in (install, installed, delete):
        parser.add_argument("--api", default="http://127.0.0.1:8000/api/v1", metavar="URL", help=api_help)


#: How often ``csms migrate repoint`` asks how the re-points are going.
REPOINT_POLL_S = 0.5


def _repoint_targets(args: argparse.Namespace) -> list[str]:
    if args.stations:
        return list(dict.fromkeys(args.stations))
    rows = _api_request(args.api_url, "GET", "/stations", timeout=args.timeout)
    return [row["id"] for row in rows]


def cmd_migrate_repoint(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"url": args.to, "within_s": args.within}
    if args.security_profile is not None:
        body["security_profile"] = args.security_profile
    if args.url_key:
        body["url_key"] = args.url_key
    started: dict[str, dict[str, Any]] = {}
    for station_id in _repoint_targets(args):
        path = f"/stations/{quote(station_id, safe='')}/repoint"
        try:
            started[station_id] = _api_post(args, path, body)
        except UserError as exc:  # one station's refusal (offline, unknown) is its line, not the end of the run
            started[station_id] = {"station_id": station_id, "ocpp_version": "?", "status": "refused",
                                   "detail": str(exc).removeprefix("the API answered ")}  # fmt: skip
    results = started if args.no_wait else _await_repoints(args, started)
    rows: list[Sequence[Any]] = [(sid, r["ocpp_version"], r["status"], r["detail"]) for sid, r in results.items()]
    print(_table(rows, ("STATION", "OCPP", "STATUS", "DETAIL")))
    return 0 if all(r["status"] in ("moved", "pending") for r in results.values()) else 1


def _await_repoints(args: argparse.Namespace, results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Ask until no re-point is pending (the server decides each one by its deadline)."""
    give_up = time.monotonic() + args.within + 60
    while any(r["status"] == "pending" for r in results.values()) and time.monotonic() < give_up:
        time.sleep(REPOINT_POLL_S)
        for station_id, result in results.items():
            if result["status"] == "pending":
                path = f"/stations/{quote(station_id, safe='')}/repoint"
                results[station_id] = _api_request(args.api_url, "GET", path, timeout=args.timeout)
    return results


def _migrate_parsers(commands: Any) -> None:
    migrate = _group(commands, "migrate", "move a fleet from this CSMS to another")
    repoint_cmd = migrate.add_parser(
        "repoint",
        help="re-point connected stations to another CSMS (run against the OLD CSMS's API)",
        description="Send each station the calls that make it connect to another CSMS at its next reboot "
        "(2.0.1: SetNetworkProfile, NetworkConfigurationPriority with the old profile kept as fallback, Reset "
        "OnIdle; 1.6: the vendor's URL key, Reset Hard when idle), then wait until each has left or come back. "
        "Exit 1 when a station did not move (its old settings are restored). See docs/design/migration.md.",
    )
    repoint_cmd.add_argument("--to", required=True, metavar="URL", help="the new CSMS's OCPP URL, e.g. "
                             "wss://new.example.com/ocpp (the station appends its id)")  # fmt: skip
    which = repoint_cmd.add_mutually_exclusive_group(required=True)
    which.add_argument("--stations", nargs="+", metavar="ID", help="these stations")
    which.add_argument("--all", action="store_true", help="every station of the old CSMS")
    repoint_cmd.add_argument("--within", type=_duration_s, default=600.0, metavar="DURATION",
                             help="how long a station may take to leave (e.g. 90s, 10m; default 10m)")  # fmt: skip
    repoint_cmd.add_argument("--security-profile", type=int, choices=[1, 2, 3], default=None,
                             help="2.0.1: the profile for the new URL (default: the station's)")  # fmt: skip
    repoint_cmd.add_argument("--url-key", default=None, metavar="KEY",
                             help="1.6: the vendor's URL key, for a vendor the CSMS does not know")  # fmt: skip
    repoint_cmd.add_argument("--no-wait", action="store_true", help="print the pending re-points and return")
    _api_options(repoint_cmd)
    repoint_cmd.set_defaults(handler=cmd_migrate_repoint)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except (UserError, DomainError) as exc:
        print(f"csms: {exc}", file=sys.stderr)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        print(f"csms: database error: {reason}", file=sys.stderr)
    except OSError as exc:
        print(f"csms: {exc}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
