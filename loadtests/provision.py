"""Provision N stations (and the drivers' id token) in our CSMS in bulk, and write the Locust stations file.

    uv run python loadtests/provision.py --count 2000 --share-201 0.25 \\
        --database-url sqlite:///chargetwin.db --out stations.csv

The stations file is CSV ``station_id,password,ocpp_version`` with a header row; any CSMS can be targeted
with a file written by hand (or by this script with ``--no-database``). Stations go straight into the store
(one transaction), so a few thousand take seconds. Passwords: by default one random password shared by the
whole fleet, hashed once (scrypt is slow on purpose: thousands of hashes would take minutes);
``--unique-passwords`` gives every station its own. Re-running skips stations that already exist.
"""

from __future__ import annotations

import argparse
import csv
import secrets
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from csms.ocpp.versions import OCPP16, OCPP201, Version
from csms.services import authorization, stations
from csms.services.passwords import hash_password
from csms.store.models import Station


def plan(
    count: int, prefix: str, share_201: float, password: str | None, unique: bool
) -> list[tuple[str, str, Version]]:
    """The stations: every ``1/share_201``-th one speaks 2.0.1, spread evenly through the fleet."""
    shared = password or secrets.token_urlsafe(12)
    rows = []
    for n in range(count):
        version = OCPP201 if share_201 > 0 and int((n + 1) * share_201) > int(n * share_201) else OCPP16
        rows.append((f"{prefix}{n:06d}", secrets.token_urlsafe(12) if unique else shared, version))
    return rows


def write_file(path: str | Path, rows: Sequence[tuple[str, str, str]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["station_id", "password", "ocpp_version"])
        writer.writerows(rows)


def provision(database_url: str | None, rows: Sequence[tuple[str, str, str]], token: str) -> int:
    """Insert the stations that do not exist yet and the token; returns how many stations were created."""
    from csms.runtime.server import prepare_database
    from csms.store.database import make_session_factory

    engine = prepare_database(database_url)
    now = datetime.now(UTC)
    hashes: dict[str, str] = {}
    created = 0
    try:
        with make_session_factory(engine)() as db, db.begin():
            existing = set(db.scalars(select(Station.id)))
            for station_id, password, version in rows:
                if station_id in existing:
                    continue
                if password not in hashes:
                    hashes[password] = hash_password(password)
                stations.provision(
                    db, station_id, ocpp_version=version, password=None, password_hash=hashes[password], now=now
                )
                created += 1
            authorization.create(db, token, now, upsert=True)
    finally:
        engine.dispose()
    return created


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, required=True, help="how many stations")
    parser.add_argument("--prefix", default="lt-", help="station id prefix (default lt-)")
    parser.add_argument("--share-201", type=float, default=0.25, help="share of OCPP 2.0.1 stations (default 0.25)")
    parser.add_argument("--password", default=None, help="the fleet's shared password (default: random)")
    parser.add_argument("--unique-passwords", action="store_true", help="one random password per station")
    parser.add_argument("--token", default="LOADTEST", help="id token drivers present (created Accepted)")
    parser.add_argument("--database-url", default=None, help="the CSMS's database (default as `csms`)")
    parser.add_argument("--no-database", action="store_true", help="only write the file")
    parser.add_argument("--out", default="stations.csv", help="stations file to write (default stations.csv)")
    args = parser.parse_args(argv)
    if args.count < 1 or not 0 <= args.share_201 <= 1:
        parser.error("--count must be positive and --share-201 within [0, 1]")
    rows = plan(args.count, args.prefix, args.share_201, args.password, args.unique_passwords)
    if args.unique_passwords and not args.no_database:
        print(f"hashing {len(rows)} passwords with scrypt, this takes a while", file=sys.stderr)
    created = 0 if args.no_database else provision(args.database_url, rows, args.token)
    write_file(args.out, rows)
    print(f"{args.out}: {len(rows)} stations ({sum(r[2] == OCPP201 for r in rows)} on 2.0.1), {created} created")
    return 0


if __name__ == "__main__":
    sys.exit(main())
