"""``csms ocpi``: roaming partners (add, list, remove, register with one), location details, the push outbox."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy.orm import Session

from csms.ocpi.client import PeerError
from csms.ocpi.credentials import register_with, unregister_at
from csms.ocpi.deps import OcpiConfig
from csms.ocpi.tokens import pull
from csms.services import ocpi as store
from csms.services import organisations
from csms.services.errors import Conflict
from csms.store.database import make_engine, make_session_factory

InTransaction = Callable[[argparse.Namespace, Callable[[Session], Any]], Any]
Table = Callable[[list[Sequence[Any]], Sequence[str]], str]


def add_parsers(
    commands: Any,
    *,
    database_option: Callable[[argparse.ArgumentParser], None],
    in_transaction: InTransaction,
    table: Table,
    config_of: Callable[[argparse.Namespace], tuple[OcpiConfig, Any]],
) -> None:
    """``config_of(args)``: this CPO's OCPI identity from the serve settings, and an engine on the database."""
    ocpi = commands.add_parser("ocpi", help="OCPI 2.2.1 roaming (CPO)", description="OCPI 2.2.1 roaming (CPO).")
    ocpi.set_defaults(handler=lambda _args: ocpi.print_help() or 2)
    groups = ocpi.add_subparsers(title="commands", metavar="COMMAND")
    parties = groups.add_parser("parties", help="roaming partners", description="Roaming partners (eMSPs, hubs).")
    parties.set_defaults(handler=lambda _args: parties.print_help() or 2)
    cmds = parties.add_subparsers(title="commands", metavar="COMMAND")

    add = cmds.add_parser(
        "add", help="add a partner (prints the token A it registers with)",
        description="Add a partner. Without --url/--token it registers with us: give it the printed token A and "
        "our versions URL. With its versions URL and the token A it gave you, register with it by `register`.",
    )  # fmt: skip
    _code(add)
    add.add_argument("--name", default=None, metavar="NAME", help="the partner's name")
    add.add_argument("--url", default=None, metavar="URL", help="the partner's OCPI versions URL")
    add.add_argument("--token", default=None, metavar="TOKEN", help="the token A the partner gave you")
    add.add_argument("--org", default=None, metavar="ORG", help="the organisation (slug) whose stations, sites "
                     "and tariffs the partner sees and is sent (default: none: it sees all)")  # fmt: skip
    database_option(add)

    def do_add(args: argparse.Namespace) -> int:
        now = datetime.now(UTC)

        def add_it(db: Session) -> str | None:
            org = None if args.org is None else organisations.by_slug(db, args.org).id
            return store.add_party(db, args.country_code, args.party_id, now, name=args.name, versions_url=args.url,
                                   peer_token=args.token, organisation_id=org)[1]  # fmt: skip

        token = in_transaction(args, add_it)
        if token is None:
            print(f"party {args.country_code}-{args.party_id} added: register with it by "
                  f"`csms ocpi parties register {args.country_code} {args.party_id}`")  # fmt: skip
        else:
            print(token)
            print(f"party {args.country_code}-{args.party_id} added: give it this token A and our versions URL "
                  "(…/ocpi/versions); only its hash is kept")  # fmt: skip
        return 0

    add.set_defaults(handler=do_add)

    listing = cmds.add_parser("list", help="list partners", description="List partners.")
    database_option(listing)

    def do_list(args: argparse.Namespace) -> int:
        def rows(db: Session) -> list[Sequence[Any]]:
            slugs = organisations.slugs(db)
            return [
                (p.country_code, p.party_id, p.name, p.status, ",".join(r.get("role", "") for r in p.roles or []),
                 len(p.endpoints or []), "*" if p.organisation_id is None else slugs.get(p.organisation_id, "?"),
                 p.versions_url)
                for p in store.list_parties(db)
            ]  # fmt: skip

        heads = ("COUNTRY", "PARTY", "NAME", "STATUS", "ROLES", "ENDPOINTS", "ORG", "URL")
        print(table(in_transaction(args, rows), heads))
        return 0

    listing.set_defaults(handler=do_list)

    _partner_parsers(cmds, database_option, in_transaction, config_of)
    _location_parsers(groups, database_option, in_transaction, table)
    tokens = groups.add_parser("tokens", help="partners' tokens", description="The tokens eMSPs gave us.")
    tokens.set_defaults(handler=lambda _args: tokens.print_help() or 2)
    tcmds = tokens.add_subparsers(title="commands", metavar="COMMAND")
    pull = tcmds.add_parser("pull", help="fetch every token of a registered eMSP (its tokens sender)",
                            description="GET all of the eMSP's tokens, page by page, and keep them.")  # fmt: skip
    _code(pull)
    database_option(pull)

    def do_pull(args: argparse.Namespace) -> int:
        in_transaction(args, lambda db: store.get_party(db, args.country_code, args.party_id))  # and migrates
        kept, refused = asyncio.run(_pull(args.database_url, args.country_code, args.party_id))
        print(f"{kept} token(s) kept from {args.country_code}-{args.party_id}")
        for reason in refused:
            print(f"refused {reason}", file=sys.stderr)
        return 0

    pull.set_defaults(handler=do_pull)


def _partner_parsers(
    cmds: Any,
    database_option: Callable[[argparse.ArgumentParser], None],
    in_transaction: InTransaction,
    config_of: Callable[[argparse.Namespace], tuple[OcpiConfig, Any]],
) -> None:
    remove = cmds.add_parser("remove", help="remove a partner (its tokens stop working)", description="Remove.")
    _code(remove)
    database_option(remove)

    def do_remove(args: argparse.Namespace) -> int:
        in_transaction(args, lambda db: store.get_party(db, args.country_code, args.party_id))  # and migrates
        try:
            told = asyncio.run(_unregister(args.database_url, args.country_code, args.party_id))
            if told:
                print(f"unregistered at {args.country_code}-{args.party_id} (DELETE credentials)")
        except PeerError as exc:
            print(f"could not unregister at the partner: {exc}", file=sys.stderr)
        in_transaction(args, lambda db: store.remove_party(db, args.country_code, args.party_id))
        print(f"party {args.country_code}-{args.party_id} removed")
        return 0

    remove.set_defaults(handler=do_remove)

    push = cmds.add_parser(
        "set",
        help="a partner's settings",
        description="Whether a partner gets pushes, and which organisation it is a partner of.",
    )
    _code(push)
    push.add_argument(
        "--push",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="push EVSE status and sessions to it (--no-push: it pulls)",
    )
    push.add_argument(
        "--org",
        default=None,
        metavar="ORG",
        help="make it a partner of this organisation (slug): it "
        "sees and is sent only its stations, sites and tariffs; what it no longer sees is removed",
    )
    push.add_argument("--no-org", action="store_true", help="make it the platform's partner: it sees all")
    database_option(push)

    def do_set(args: argparse.Namespace) -> int:
        if args.push is None and args.org is None and not args.no_org:
            push.error("give --push/--no-push, --org or --no-org")
        if args.org is not None and args.no_org:
            push.error("--org and --no-org: give one")
        now = datetime.now(UTC)
        print(f"party {args.country_code}-{args.party_id}: {in_transaction(args, lambda db: _set(db, args, now))}")
        return 0

    push.set_defaults(handler=do_set)

    register = cmds.add_parser(
        "register", help="register with a partner added with --url and --token",
        description="Fetch the partner's endpoints with its token A, send it our credentials (a new token B) and "
        "keep the token C it answers with. Our identity is the serve settings' ocpi_country_code, ocpi_party_id "
        "and ocpi_public_url (--config or the environment).",
    )  # fmt: skip
    _code(register)
    register.add_argument("--config", default=None, metavar="FILE", help="the serve settings' TOML file")
    database_option(register)

    def do_register(args: argparse.Namespace) -> int:
        config, engine = config_of(args)
        try:
            theirs = asyncio.run(_register(engine, config, args.country_code, args.party_id))
        finally:
            engine.dispose()
        roles = ", ".join(f"{r['role']} {r['country_code']}-{r['party_id']}" for r in theirs["roles"])
        print(f"registered with {args.country_code}-{args.party_id} ({roles}) at {theirs['url']}")
        return 0

    register.set_defaults(handler=do_register)


def _location_parsers(
    groups: Any,
    database_option: Callable[[argparse.ArgumentParser], None],
    in_transaction: InTransaction,
    table: Table,
) -> None:
    locations = groups.add_parser("locations", help="location details", description="OCPI location details.")
    locations.set_defaults(handler=lambda _args: locations.print_help() or 2)
    lcmds = locations.add_subparsers(title="commands", metavar="COMMAND")
    put = lcmds.add_parser(
        "set", help="publish a site (or a station in no site) as an OCPI location with its address",
        description="Set the OCPI details of a location: a site's id, or a station's id when it is in no site.",
    )  # fmt: skip
    put.add_argument("location_id", metavar="ID")
    for name, help_text in (("address", "street and number"), ("city", "city"), ("country", "ISO 3166 alpha-3, e.g. "
                            "NLD"), ("latitude", "e.g. 52.370216"), ("longitude", "e.g. 4.895168"),
                            ("time-zone", "IANA, e.g. Europe/Amsterdam")):  # fmt: skip
        put.add_argument(f"--{name}", required=True, help=help_text)
    put.add_argument("--name", default=None)
    put.add_argument("--postal-code", default=None)
    put.add_argument("--unpublished", action="store_true", help="keep it out of OCPI")
    database_option(put)

    def do_put(args: argparse.Namespace) -> int:
        details = {"address": args.address, "city": args.city, "country": args.country, "latitude": args.latitude,
                   "longitude": args.longitude, "time_zone": args.time_zone, "name": args.name,
                   "postal_code": args.postal_code, "publish": not args.unpublished}  # fmt: skip
        now = datetime.now(UTC)
        in_transaction(args, lambda db: store.set_location(db, args.location_id, details, now))
        print(f"location {args.location_id} {'unpublished' if args.unpublished else 'published'}")
        return 0

    put.set_defaults(handler=do_put)

    outbox = groups.add_parser("pushes", help="the push outbox: what is pending, delivered or abandoned",
                               description="The latest pushes to partners.")  # fmt: skip
    outbox.add_argument("--status", choices=("pending", "delivered", "abandoned"), default=None)
    database_option(outbox)

    def do_pushes(args: argparse.Namespace) -> int:
        def rows(db: Session) -> list[Sequence[Any]]:
            return [(p.id, p.module, p.method, p.status, p.attempts, p.last_status, p.last_error, p.url)
                    for p in store.pushes(db, args.status)]  # fmt: skip

        print(table(in_transaction(args, rows), ("ID", "MODULE", "METHOD", "STATUS", "TRIES", "HTTP", "ERROR", "URL")))
        return 0

    outbox.set_defaults(handler=do_pushes)


def _code(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("country_code", metavar="COUNTRY", help="ISO 3166-1 alpha-2, e.g. NL")
    parser.add_argument("party_id", metavar="PARTY", help="three capitals or digits, e.g. EMS")


def _set(db: Session, args: argparse.Namespace, now: datetime) -> str:
    """``parties set``: push or pull, and which organisation; returns what the party is now."""
    if args.push is not None:
        store.set_push(db, args.country_code, args.party_id, args.push, now)
    if args.org is not None or args.no_org:
        org = None if args.no_org else organisations.by_slug(db, args.org).id
        store.set_organisation(db, args.country_code, args.party_id, org, now)
    row = store.get_party(db, args.country_code, args.party_id)
    slug = organisations.slugs(db).get(row.organisation_id) if row.organisation_id is not None else None
    return f"{'push' if row.push else 'pull'}, {'every organisation' if slug is None else f'organisation {slug}'}"


async def _pull(database_url: str | None, country_code: str, party_id: str) -> tuple[int, list[str]]:
    engine = make_engine(database_url)
    try:
        async with httpx.AsyncClient(timeout=15.0) as client:
            return await pull(make_session_factory(engine), country_code, party_id, client)
    except PeerError as exc:
        raise Conflict(f"pulling tokens failed: {exc}") from None
    finally:
        engine.dispose()


async def _unregister(database_url: str | None, country_code: str, party_id: str) -> bool:
    engine = make_engine(database_url)
    try:
        async with httpx.AsyncClient(timeout=15.0) as client:
            return await unregister_at(make_session_factory(engine), None, country_code, party_id, client)
    finally:
        engine.dispose()


async def _register(engine: Any, config: OcpiConfig, country_code: str, party_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=15.0) as client:
        try:
            return await register_with(make_session_factory(engine), config, country_code, party_id, client)
        except PeerError as exc:
            raise Conflict(f"registration failed: {exc}") from None
