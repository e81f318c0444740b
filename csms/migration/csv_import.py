"""Read an operator's spreadsheets (CSV with a header row) into import records.

The columns of each kind are in :data:`COLUMNS` (required ones first) and in docs/design/migration.md,
"From SteVe and from spreadsheets". Every mistake is collected with its file, line and column before
anything is written; one mistake anywhere means nothing is imported.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from csms.services import authorization, stations
from csms.services.imports import ImportReport, PortState, Records, SessionRecord, StationRecord, TokenRecord

KINDS = ("stations", "tokens", "sessions")
#: kind → (required columns, optional columns)
COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "stations": (
        ("station_id", "ocpp_version"),
        ("policy", "password", "vendor", "model", "serial_number", "firmware_version", "connectors"),
    ),
    "tokens": (("id_token",), ("status", "expiry", "group_id", "token_type")),
    "sessions": (
        ("station_id", "transaction_id", "started_at"),
        ("connector_id", "id_token", "stopped_at", "meter_start_wh", "meter_stop_wh", "stop_reason"),
    ),
}


#: The longest value chargetwin stores per column (the store's column sizes).
_LONGEST = {
    "station_id": 48, "transaction_id": 36, "id_token": 36, "group_id": 36, "token_type": 20, "stop_reason": 40,
    "vendor": 50, "model": 50, "serial_number": 50, "firmware_version": 50,
}  # fmt: skip


class CsvError(Exception):
    """The file's mistakes, one per line of the message (``FILE:LINE: column C: what is wrong``)."""


@dataclass
class _Line:
    path: Path
    number: int
    row: dict[str, str]
    errors: list[str]

    def text(self, column: str) -> str | None:
        value = (self.row.get(column) or "").strip()
        limit = _LONGEST.get(column)
        if limit is not None and len(value) > limit:
            self.error(column, f"is longer than {limit} characters")
        return value or None

    def required(self, column: str) -> str:
        value = self.text(column)
        if value is None:
            self.error(column, "is empty")
            return ""
        return value

    def error(self, column: str, what: str) -> None:
        self.errors.append(f"{self.path}:{self.number}: column {column}: {what}")

    def parsed(self, column: str, parse: Callable[[str], Any], expected: str) -> Any:
        value = self.text(column)
        if value is None:
            return None
        try:
            return parse(value)
        except ValueError:
            self.error(column, f"{expected}, got {value!r}")
            return None

    def choice(self, column: str, allowed: tuple[str, ...], default: str) -> str:
        value = self.text(column) or default
        if value not in allowed:
            self.error(column, f"must be one of {', '.join(allowed)}, got {value!r}")
        return value


def _instant(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def read(kind: str, path: Path) -> tuple[Records, ImportReport]:
    """The records of one CSV file of ``kind`` (stations, tokens or sessions).

    Raises:
        CsvError: unreadable file, missing columns, or bad values (all of them, with file, line and column).
        OSError: the file cannot be opened.
    """
    try:
        return _read(kind, path)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CsvError(f"{path}: not a UTF-8 CSV file ({exc})") from None


def _read(kind: str, path: Path) -> tuple[Records, ImportReport]:
    required, optional = COLUMNS[kind]
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or []]
        missing = [c for c in required if c not in header]
        if missing:
            raise CsvError(f"{path}:1: missing column(s) {', '.join(missing)} (required: {', '.join(required)})")
        unknown = [c for c in header if c not in required + optional]
        if unknown:
            known = ", ".join(required + optional)
            raise CsvError(f"{path}:1: unknown column(s) {', '.join(unknown)} (known: {known})")
        reader.fieldnames = header
        errors: list[str] = []
        records = Records()
        for row in reader:
            _ROW_READERS[kind](_Line(path, reader.line_num, row, errors), records)
    if errors:
        raise CsvError("\n".join(errors))
    return records, ImportReport(source=f"{kind} CSV {path}")


def _station(line: _Line, records: Records) -> None:
    station_id = line.required("station_id")
    version = line.choice("ocpp_version", stations.VERSIONS, "")
    connectors = line.parsed("connectors", _count, "a whole number of connectors") or 0
    records.stations.append(
        StationRecord(
            station_id=station_id, ocpp_version=version, policy=line.choice("policy", stations.POLICIES, "accept"),
            password=line.text("password"), vendor=line.text("vendor"), model=line.text("model"),
            serial_number=line.text("serial_number"), firmware_version=line.text("firmware_version"),
            ports=tuple(PortState(n) for n in range(1, connectors + 1)),
        )
    )  # fmt: skip


def _token(line: _Line, records: Records) -> None:
    records.tokens.append(
        TokenRecord(
            id_token=line.required("id_token"), status=line.choice("status", authorization.STATUSES, "Accepted"),
            expiry=line.parsed("expiry", _instant, "an ISO 8601 date-time"), group_id=line.text("group_id"),
            token_type=line.text("token_type") or "ISO14443",
        )
    )  # fmt: skip


def _session(line: _Line, records: Records) -> None:
    iso, wh = "an ISO 8601 date-time", "a number of Wh"
    started = line.parsed("started_at", _instant, iso)
    stopped = line.parsed("stopped_at", _instant, iso)
    if started is None and line.text("started_at") is None:
        line.error("started_at", "is empty")
    if started is not None and stopped is not None and stopped < started:
        line.error("stopped_at", "is before started_at")
    start_wh, stop_wh = line.parsed("meter_start_wh", float, wh), line.parsed("meter_stop_wh", float, wh)
    if start_wh is not None and stop_wh is not None and stop_wh < start_wh:
        line.error("meter_stop_wh", "is below meter_start_wh (a register only counts up)")
    tx = line.required("transaction_id")
    records.sessions.append(
        SessionRecord(
            station_id=line.required("station_id"), charger_tx_id=tx,
            transaction_id=int(tx) if tx.isdigit() and int(tx) < 2**31 else None,
            connector_id=line.parsed("connector_id", _count, "a connector number"), id_token=line.text("id_token"),
            started_at=started or datetime.min.replace(tzinfo=UTC), stopped_at=stopped,
            meter_start_wh=start_wh, meter_stop_wh=stop_wh, stop_reason=line.text("stop_reason"),
        )
    )  # fmt: skip


_ROW_READERS: dict[str, Callable[[_Line, Records], None]] = {
    "stations": _station,
    "tokens": _token,
    "sessions": _session,
}
