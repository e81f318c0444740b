"""CPU of the certificate check a reconnect storm asks for (every known station's connection is checked for a
certificate nearing its end): one transaction and one query per station, as each connect used to queue it,
against the checks of all of them in one transaction (:func:`csms.services.certificates.nearing_end`).

    uv run python loadtests/storm_certificates.py --stations 5000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import provision
from sqlalchemy import select

from csms.services import certificates
from csms.store.database import make_engine, make_session_factory
from csms.store.models import Station


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stations", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="storm-certs-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'csms.db'}"
        rows = provision.plan(args.stations, "storm-", 0.25, "fleet-password-0001", unique=False)
        provision.provision(url, rows, "LOADTEST")
        engine = make_engine(url)
        factory = make_session_factory(engine)
        with factory() as db:
            ids = list(db.scalars(select(Station.id)))
        at = datetime.now(UTC)

        def one_by_one() -> None:
            for station_id in ids:
                with factory() as db, db.begin():
                    certificates.nearing_end(db, [station_id], at, 30)

        def together() -> None:
            with factory() as db, db.begin():
                certificates.nearing_end(db, ids, at, 30)

        for _ in range(args.rounds):
            for name, check in (("one transaction each", one_by_one), ("all in one", together)):
                cpu, wall = time.thread_time(), time.perf_counter()
                check()
                print(f"{name}: {time.thread_time() - cpu:.3f} s CPU, {time.perf_counter() - wall:.3f} s wall, "
                      f"{len(ids):,} stations")  # fmt: skip
        engine.dispose()


if __name__ == "__main__":
    main()
