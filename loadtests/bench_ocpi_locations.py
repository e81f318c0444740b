"""Build the OCPI Locations list (what ``GET /ocpi/2.2.1/locations`` answers, before paging) for a fleet.

    ./run python loadtests/bench_ocpi_locations.py --stations 500

Each station is a location of its own with two EVSEs; the list is built without any tariff assignment, then
with one (every connector then looks up its tariff: csms/services/tariffs.py ``resolve``), each twice: the first
build records every EVSE it publishes (``ocpi_evses``), the next finds them recorded.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from csms.ocpi.deps import OcpiConfig
from csms.ocpi.locations import build
from csms.services import ocpi, tariffs
from csms.store import migrate
from csms.store.database import make_engine, make_session_factory
from csms.store.models import Connector, Station

ADDRESS = {"address": "Stationsplein 1", "city": "Amsterdam", "country": "NLD", "latitude": "52.378900",
           "longitude": "4.900000", "time_zone": "Europe/Amsterdam"}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'bench.db'}")
        migrate.upgrade(engine)
        factory = make_session_factory(engine)
        now = datetime.now(UTC)
        with factory() as db, db.begin():
            for i in range(args.stations):
                db.add(Station(id=f"CP-{i}", ocpp_version="1.6", created_at=now))
            db.flush()
            for i in range(args.stations):
                for evse in (1, 2):
                    db.add(Connector(station_id=f"CP-{i}", evse_id=evse, connector_id=1, status="Available",
                                     status_at=now))  # fmt: skip
                ocpi.set_location(db, f"CP-{i}", ADDRESS, now)
        config = OcpiConfig("NL", "CTW")
        for label in ("no tariff assigned", "one tariff assigned"):
            if label == "one tariff assigned":
                with factory() as db, db.begin():
                    body = {"currency": "EUR", "elements": [{"price_components": [{"type": "ENERGY", "price": "0.30",
                                                                                    "step_size": 1}]}]}  # fmt: skip
                    tariffs.put(db, "T", body, now)
                    tariffs.assign(db, "T", now=now, station_id="CP-0")
            for round_ in ("build 1", "build 2"):  # the first records every EVSE (ocpi_evses), then only changes
                started = time.perf_counter()
                with factory() as db, db.begin():
                    locations = build(db, config)
                seconds = time.perf_counter() - started
                evses = sum(len(location["evses"]) for location in locations)
                print(f"{label}, {round_}: {len(locations)} locations, {evses} EVSEs in {seconds * 1000:.0f} ms")
        engine.dispose()


if __name__ == "__main__":
    main()
