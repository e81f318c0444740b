"""``csms``: run the CSMS and administer its database.

Every command takes ``--database-url`` (else ``$CHARGETWIN_DATABASE_URL``, else ``sqlite:///chargetwin.db``)
and brings the schema up to date first. A user mistake prints one line to stderr and exits 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import ssl
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from csms.gateway.frame_rate import FrameRate
from csms.gateway.tls import server_context
from csms.runtime.server import Endpoints, prepare_database, raise_fd_limit, run_server
from csms.services import apikeys, authorization, security_events, stations
from csms.services.config import CsmsConfig
from csms.services.errors import DomainError
from csms.store.database import URL_ENV, make_session_factory

API_KEY_ENV = "CHARGETWIN_API_KEY"


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
    engine = prepare_database(args.database_url)
    try:
        with make_session_factory(engine)() as db, db.begin():
            return work(db)
    finally:
        engine.dispose()


def _table(rows: list[Sequence[Any]], header: Sequence[str]) -> str:
    cells = [[("" if v is None else str(v)) for v in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells)


# ---- commands -----------------------------------------------------------------------------------------------
def _tls_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    if args.tls_cert is None and args.tls_key is None:
        if args.tls_client_ca is not None:
            raise UserError("--tls-client-ca needs --tls-cert and --tls-key")
        return None
    if args.tls_cert is None or args.tls_key is None:
        raise UserError("give both --tls-cert and --tls-key")
    try:
        return server_context(args.tls_cert, args.tls_key, args.tls_client_ca)
    except (OSError, ssl.SSLError) as exc:
        raise UserError(f"cannot use the TLS certificate, key or client CA: {exc}") from None


def _frame_rate(args: argparse.Namespace) -> FrameRate | None:
    if args.max_frames_per_second == 0:
        return None
    try:
        return FrameRate(per_second=args.max_frames_per_second, burst=args.frame_burst)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def cmd_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = CsmsConfig(heartbeat_interval_s=args.heartbeat_interval, auto_register=args.auto_register)
    api_key = os.environ.get(API_KEY_ENV) or None
    files, _hard = raise_fd_limit()
    logging.getLogger("csms").info("open-files limit %d (about as many chargers)", files)

    tls_context = _tls_context(args)

    def ready(endpoints: Endpoints) -> None:
        print(f"OCPP gateway  {endpoints.ocpp_url}", flush=True)
        if endpoints.ocpp_tls_url is not None:
            print(f"OCPP over TLS {endpoints.ocpp_tls_url}", flush=True)
        print(f"API           {endpoints.api_url}  (OpenAPI: {endpoints.api_url.removesuffix('/api/v1')}/openapi.json)")
        print(f"Dashboard     {endpoints.api_url.removesuffix('/api/v1')}/?key=KEY", flush=True)
        if api_key is None:
            print(f"API keys: none fixed (${API_KEY_ENV}); create one with `csms apikeys create`", flush=True)

    try:
        asyncio.run(
            run_server(
                database_url=args.database_url,
                host=args.host,
                ocpp_port=args.ocpp_port,
                api_port=args.api_port,
                api_key=api_key,
                config=config,
                log_level=args.log_level,
                on_ready=ready,
                broker_url=args.broker,
                node_id=args.node_id,
                registry_ttl_s=args.registry_ttl,
                tls_context=tls_context,
                tls_port=args.tls_port,
                frame_rate=_frame_rate(args),
            )
        )
    except OSError as exc:
        raise UserError(f"cannot listen: {exc.strerror or exc}") from None
    except ValueError as exc:  # a bad --broker URL
        raise UserError(str(exc)) from None
    except Exception as exc:
        if type(exc).__module__.startswith("redis"):
            raise UserError(f"cannot reach the broker {args.broker}: {exc}") from None
        raise
    except KeyboardInterrupt:
        pass
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    prepare_database(args.database_url).dispose()
    print("database schema is up to date")
    return 0


def cmd_stations_add(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    if args.password is None and args.security_profile != 3:
        raise UserError(f"--password is required for security profile {args.security_profile} (HTTP Basic auth)")
    stations.check_password(args.password, args.ocpp)
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


def cmd_tokens_add(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    _in_transaction(
        args,
        lambda db: authorization.create(
            db,
            args.token,
            now,
            status=args.status,
            token_type=args.type,
            expiry=args.expiry,
            group_id=args.group,
        ),
    )
    print(f"id token {args.token} added ({args.status})")
    return 0


def cmd_tokens_list(args: argparse.Namespace) -> int:
    def rows(db: Session) -> list[Sequence[Any]]:
        return [(t.id_token, t.token_type, t.status, t.group_id, t.expiry) for t in authorization.list_tokens(db)]

    print(_table(_in_transaction(args, rows), ("TOKEN", "TYPE", "STATUS", "GROUP", "EXPIRY")))
    return 0


def cmd_apikeys_create(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    key = _in_transaction(args, lambda db: apikeys.create(db, args.name, now)[1])
    print(key)
    print("store this key now: only its hash is kept", file=sys.stderr)
    return 0


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


def _serve_parser(commands: Any) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the OCPP gateway and the HTTP API (migrates the database first)",
        description="Run the OCPP gateway and the HTTP API in one process. The API key is fixed by "
        f"${API_KEY_ENV} or created with `csms apikeys create`.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--ocpp-port", type=int, default=9000, help="OCPP WebSocket port (default 9000)")
    serve.add_argument("--api-port", type=int, default=8000, help="HTTP API port (default 8000)")
    serve.add_argument("--auto-register", action="store_true", help="admit unknown stations as Pending")
    serve.add_argument("--heartbeat-interval", type=int, default=300, metavar="S", help="seconds (default 300)")
    serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"], help="(default info)"
    )
    serve.add_argument(
        "--broker",
        default=None,
        metavar="URL",
        help="redis://host:port: run as one node of a cluster sharing the database; API calls reach stations "
        "connected to any node (default: a single process)",
    )
    serve.add_argument("--node-id", default=None, metavar="ID", help="this node's name (default host-pid)")
    serve.add_argument(
        "--registry-ttl", type=int, default=15, metavar="S", help="station registry expiry after a crash (default 15)"
    )
    serve.add_argument("--tls-cert", default=None, metavar="F", help="PEM certificate (chain) of wss://")
    serve.add_argument("--tls-key", default=None, metavar="F", help="PEM private key of --tls-cert")
    serve.add_argument(
        "--tls-client-ca",
        default=None,
        metavar="F",
        help="PEM CA certificate(s) that sign station certificates (security profile 3)",
    )
    serve.add_argument("--tls-port", type=int, default=9443, help="wss:// port with --tls-cert (default 9443)")
    default_rate = FrameRate()
    serve.add_argument(
        "--max-frames-per-second",
        type=float,
        default=default_rate.per_second,
        metavar="N",
        help=f"frames one station connection may send per second; beyond it its socket is read later, and a "
        f"flood is closed with 1008 (default {default_rate.per_second:g}; 0: no limit)",
    )
    serve.add_argument(
        "--frame-burst",
        type=float,
        default=default_rate.burst,
        metavar="N",
        help=f"frames a connection may send at once above that rate (default {default_rate.burst:g})",
    )
    _database_option(serve)
    serve.set_defaults(handler=cmd_serve)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="csms", description="chargetwin CSMS: OCPP 1.6J/2.0.1 gateway and API.")
    parser.set_defaults(handler=_help_of(parser))
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    _serve_parser(commands)

    db = _group(commands, "db", "database administration")
    upgrade = db.add_parser("upgrade", help="create or migrate the schema", description="Create or migrate the schema.")
    _database_option(upgrade)
    upgrade.set_defaults(handler=cmd_db_upgrade)

    station_cmds = _group(commands, "stations", "provision and list stations")
    add = station_cmds.add_parser("add", help="provision a station", description="Provision a station.")
    add.add_argument("station_id", metavar="ID")
    add.add_argument(
        "--password",
        default=None,
        metavar="PW",
        help="HTTP Basic password, required for security profiles 1 and 2 (2.0.1: 16-40 characters "
        "A-Z a-z 0-9 *-_=:+|@. ; 1.6: 16-20 printable characters)",
    )
    add.add_argument(
        "--security-profile",
        type=int,
        default=1,
        choices=list(stations.SECURITY_PROFILES),
        help="1 Basic auth over ws or wss (default); 2 wss + Basic auth; 3 wss + a client certificate whose "
        "subject CN is the station id",
    )
    add.add_argument("--ocpp", required=True, choices=list(stations.VERSIONS), help="OCPP version")
    add.add_argument("--policy", default="accept", choices=list(stations.POLICIES), help="boot answer (default accept)")
    _database_option(add)
    add.set_defaults(handler=cmd_stations_add)
    listing = station_cmds.add_parser("list", help="list stations", description="List stations.")
    _database_option(listing)
    listing.set_defaults(handler=cmd_stations_list)

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

    key_cmds = _group(commands, "apikeys", "API keys")
    create = key_cmds.add_parser(
        "create", help="create an API key (printed once)", description="Create an API key; it is printed once."
    )
    create.add_argument("--name", default="default", metavar="N", help="a label for the key")
    _database_option(create)
    create.set_defaults(handler=cmd_apikeys_create)
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
    return parser


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
