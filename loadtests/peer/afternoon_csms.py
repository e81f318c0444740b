"""The CSMS a Python user would write in an afternoon with the ``ocpp`` package: the reference point of
``loadtests/bench_gateway.py --peer``, which asks "how much lighter is chargetwin than the obvious
implementation?".

It is the ``ocpp`` package's README recipe carried to a working central system, and nothing more: an asyncio
``websockets`` server, one ``ocpp.v16.ChargePoint`` per connection with an ``@on`` handler per action, the
package's schema validation left on (its default), and stdlib ``sqlite3`` with one commit per message, done
before the handler returns so that, like chargetwin, it answers only what it has stored. The one line of
tuning is the pragma pair any SQLite tutorial gives (WAL, synchronous=NORMAL), which is also chargetwin's:
both then keep the same promise (a commit survives a crash of the process) and the comparison measures the
work per message, not two fsync policies. ``--sqlite-defaults`` leaves the pragmas out, as the very first
afternoon would.

It stores stations, transactions and every sampled meter value; it accepts the id tags in its ``id_tags``
table. Run it on its own to point a charger (or ``sim``) at it:

    uv run python loadtests/peer/afternoon_csms.py --port 9000 --db peer.db --id-tag TAG1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.enums import Action, AuthorizationStatus, RegistrationStatus
from websockets.asyncio.server import Server, ServerConnection

HEARTBEAT_INTERVAL_S = 300

SCHEMA = """
CREATE TABLE IF NOT EXISTS stations (
    id TEXT PRIMARY KEY, vendor TEXT, model TEXT, booted_at TEXT, last_seen_at TEXT);
CREATE TABLE IF NOT EXISTS id_tags (tag TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS connector_status (
    station_id TEXT, connector_id INTEGER, status TEXT, error_code TEXT, at TEXT,
    PRIMARY KEY (station_id, connector_id));
CREATE TABLE IF NOT EXISTS transactions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, station_id TEXT, connector_id INTEGER, id_tag TEXT,
    meter_start_wh INTEGER, started_at TEXT, meter_stop_wh INTEGER, stopped_at TEXT, stop_reason TEXT);
CREATE TABLE IF NOT EXISTS meter_samples (
    id INTEGER PRIMARY KEY AUTOINCREMENT, station_id TEXT, transaction_id INTEGER, connector_id INTEGER,
    timestamp TEXT, measurand TEXT, phase TEXT, unit TEXT, value REAL);
"""


def open_database(path: str, id_tags: Iterable[str] = (), sqlite_defaults: bool = False) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    if not sqlite_defaults:  # else a rollback journal and synchronous=FULL: a journal file and fsyncs per commit
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(SCHEMA)
    db.executemany("INSERT OR IGNORE INTO id_tags (tag) VALUES (?)", [(tag,) for tag in id_tags])
    db.commit()
    return db


def _now() -> str:
    return datetime.now(UTC).isoformat()


class CentralSystemChargePoint(ChargePoint):
    """One connected charger, as the ``ocpp`` package's examples write it."""

    def __init__(self, station_id: str, connection: ServerConnection, db: sqlite3.Connection) -> None:
        super().__init__(station_id, connection)
        self.db = db

    def _id_tag_info(self, id_tag: str) -> dict[str, str]:
        known = self.db.execute("SELECT 1 FROM id_tags WHERE tag = ?", (id_tag,)).fetchone()
        return {"status": AuthorizationStatus.accepted if known else AuthorizationStatus.invalid}

    @on(Action.boot_notification)
    def on_boot_notification(self, charge_point_vendor: str, charge_point_model: str, **_: Any) -> Any:
        now = _now()
        self.db.execute(
            "INSERT INTO stations (id, vendor, model, booted_at, last_seen_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET vendor = excluded.vendor, model = excluded.model, "
            "booted_at = excluded.booted_at, last_seen_at = excluded.last_seen_at",
            (self.id, charge_point_vendor, charge_point_model, now, now),
        )
        self.db.commit()
        return call_result.BootNotification(
            current_time=now, interval=HEARTBEAT_INTERVAL_S, status=RegistrationStatus.accepted
        )

    @on(Action.heartbeat)
    def on_heartbeat(self) -> Any:
        now = _now()
        self.db.execute("UPDATE stations SET last_seen_at = ? WHERE id = ?", (now, self.id))
        self.db.commit()
        return call_result.Heartbeat(current_time=now)

    @on(Action.authorize)
    def on_authorize(self, id_tag: str) -> Any:
        return call_result.Authorize(id_tag_info=self._id_tag_info(id_tag))

    @on(Action.status_notification)
    def on_status_notification(self, connector_id: int, error_code: str, status: str, **_: Any) -> Any:
        self.db.execute(
            "INSERT OR REPLACE INTO connector_status (station_id, connector_id, status, error_code, at) "
            "VALUES (?, ?, ?, ?, ?)",
            (self.id, connector_id, status, error_code, _now()),
        )
        self.db.commit()
        return call_result.StatusNotification()

    @on(Action.start_transaction)
    def on_start_transaction(self, connector_id: int, id_tag: str, meter_start: int, timestamp: str, **_: Any) -> Any:
        id_tag_info = self._id_tag_info(id_tag)
        cursor = self.db.execute(
            "INSERT INTO transactions (station_id, connector_id, id_tag, meter_start_wh, started_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (self.id, connector_id, id_tag, meter_start, timestamp),
        )
        self.db.commit()
        return call_result.StartTransaction(transaction_id=cursor.lastrowid, id_tag_info=id_tag_info)

    @on(Action.stop_transaction)
    def on_stop_transaction(
        self, meter_stop: int, timestamp: str, transaction_id: int, reason: str | None = None, **_: Any
    ) -> Any:
        self.db.execute(
            "UPDATE transactions SET meter_stop_wh = ?, stopped_at = ?, stop_reason = ? "
            "WHERE id = ? AND station_id = ?",
            (meter_stop, timestamp, reason, transaction_id, self.id),
        )
        self.db.commit()
        return call_result.StopTransaction()

    @on(Action.meter_values)
    def on_meter_values(
        self, connector_id: int, meter_value: list[dict[str, Any]], transaction_id: int | None = None
    ) -> Any:
        rows = [
            (
                self.id,
                transaction_id,
                connector_id,
                reading["timestamp"],
                sample.get("measurand", "Energy.Active.Import.Register"),
                sample.get("phase"),
                sample.get("unit", "Wh"),
                float(sample["value"]),
            )
            for reading in meter_value
            for sample in reading["sampled_value"]
        ]
        self.db.executemany(
            "INSERT INTO meter_samples (station_id, transaction_id, connector_id, timestamp, measurand, phase, "
            "unit, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        self.db.commit()
        return call_result.MeterValues()


async def serve(db: sqlite3.Connection, host: str, port: int) -> Server:
    """Listen for chargers at ``ws://host:port/<anything>/<station id>``."""

    async def on_connect(connection: ServerConnection) -> None:
        assert connection.request is not None
        station_id = connection.request.path.rstrip("/").rsplit("/", 1)[-1]
        with contextlib.suppress(websockets.ConnectionClosed):  # the charger hung up: nothing left to answer
            await CentralSystemChargePoint(station_id, connection, db).start()

    return await websockets.serve(on_connect, host, port, subprotocols=[websockets.Subprotocol("ocpp1.6")])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--db", default="peer.db", help="SQLite file")
    parser.add_argument("--id-tag", action="append", default=[], help="an id tag to accept (repeatable)")
    parser.add_argument("--sqlite-defaults", action="store_true", help="no WAL: rollback journal, synchronous=FULL")
    args = parser.parse_args(argv)

    async def run() -> None:
        server = await serve(open_database(args.db, args.id_tag, args.sqlite_defaults), args.host, args.port)
        await server.serve_forever()

    asyncio.run(run())


if __name__ == "__main__":
    main()
