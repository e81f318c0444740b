"""Each station's local authorization list: which tokens belong on it, what it holds, what is still to send.

Which tokens go on a station's list: every id token the CSMS knows, or only the tokens of one group when the
operator selected one for the station (``token_group``). Each goes with its current status, so a blocked or
expired token stays on the list as Blocked or Expired and the station refuses it offline too; a token that
leaves the selection is removed. The list a station holds (:class:`LocalListEntryRow`) changes only when the
station accepted a SendLocalList; the changes still to send are the difference between it and the selection
(:func:`csms.ocpp.local_list.differences`), so nothing that could drift is stored twice.

The calls themselves are sent by the API's shell (:mod:`csms.api.local_lists`); these functions prepare them
and record the station's answers, each inside one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from csms.ocpp.local_list import (
    Changes,
    Limits,
    ListEntry,
    ListMessage,
    ListTooLarge,
    UpdateType,
    applied,
    differences,
    fitting,
    plan,
)
from csms.services import authorization, stations
from csms.store.models import LocalListEntryRow, LocalListState

#: A station that answered this has no local list: token changes do not call on it (an operator's sync still does).
NOT_SUPPORTED = "NotSupported"


@dataclass(frozen=True, slots=True)
class Prepared:
    """The calls to send (in order) to a station of ``ocpp_version``, or why none can be sent."""

    ocpp_version: str
    messages: list[ListMessage] = field(default_factory=list)
    refused: str | None = None


def state(db: Session, station_id: str) -> LocalListState:
    """The station's list state, created empty on first use.

    Raises:
        NotFound: no such station (404).
    """
    stations.get(db, station_id)
    row = db.get(LocalListState, station_id)
    if row is None:
        row = LocalListState(station_id=station_id, version=0, needs_full=False)
        db.add(row)
        db.flush()
    return row


#: Stations per query of :func:`behind_among`: a reconnect storm checks thousands at once.
STATIONS_PER_QUERY = 500


def behind(db: Session, station_id: str) -> bool:
    """Whether a station that has a list is known to lack changes (read only: no list, not behind)."""
    return bool(behind_among(db, [station_id]))


def behind_among(db: Session, station_ids: list[str]) -> list[str]:
    """Of these stations, those whose list is known to lack changes (as :func:`behind`), in the order of
    ``station_ids``, each once. Read only; one query per :data:`STATIONS_PER_QUERY` stations."""
    lacking: set[str] = set()
    for start in range(0, len(station_ids), STATIONS_PER_QUERY):
        query = select(LocalListState.station_id).where(
            LocalListState.station_id.in_(station_ids[start : start + STATIONS_PER_QUERY]),
            or_(LocalListState.last_status.is_(None), LocalListState.last_status != NOT_SUPPORTED),
            or_(LocalListState.out_of_step_since.is_not(None), LocalListState.needs_full.is_(True)),
        )
        lacking.update(db.scalars(query))
    return [station_id for station_id in dict.fromkeys(station_ids) if station_id in lacking]


def limits(row: LocalListState) -> Limits:
    return Limits(row.max_entries, row.items_per_message, row.bytes_per_message)


def held(db: Session, station_id: str) -> dict[str, ListEntry]:
    """The entries the station accepted, by token."""
    rows = db.scalars(select(LocalListEntryRow).where(LocalListEntryRow.station_id == station_id))
    return {r.id_token: ListEntry(r.status, r.expiry, r.group_id, r.token_type) for r in rows}


def wanted(db: Session, row: LocalListState, ocpp_version: str, now: datetime) -> dict[str, ListEntry]:
    """The entries the station should hold: its selection of tokens, each with its status at ``now``."""
    out = {}
    for token in authorization.list_tokens(db, group_id=row.token_group):
        info = authorization.authorize(db, token.id_token, now)
        out[token.id_token] = ListEntry(info.status, token.expiry, token.group_id, token.token_type)
    return fitting(ocpp_version, out)


def prepare(
    db: Session, station_id: str, now: datetime, *, update_type: UpdateType, explicit: Changes | None = None
) -> Prepared:
    """The SendLocalList calls that bring the station in step: ``explicit`` changes as the operator wrote them,
    or (None) the station's selection of tokens. A Differential request becomes Full when the station's list
    is unknown (``needs_full``) or none was sent yet. A refusal (too large for the station) is recorded as the
    last status."""
    row = state(db, station_id)
    version = stations.get(db, station_id).ocpp_version
    current = held(db, station_id)
    full = update_type == "Full" or row.needs_full or row.version == 0  # a first list is always Full
    if explicit is None:
        target = wanted(db, row, version, now)
        changes: Changes = dict(target) if full else differences(current, target)
    elif full and update_type != "Full":
        changes = dict(applied(current, explicit))  # the station's list is unknown: send the whole result
    else:
        changes = dict(explicit)
    try:
        messages = plan(
            version,
            "Full" if full else "Differential",
            changes,
            held=current,
            after_version=max(row.version, row.reported_version or 0),
            limits=limits(row),
        )
    except ListTooLarge as exc:
        row.last_status = f"refused: {exc}"[:200]
        return Prepared(version, refused=str(exc))
    return Prepared(version, messages)


def record_answer(
    db: Session, station_id: str, message: ListMessage, status: str, now: datetime, *, last: bool
) -> None:
    """What the station answered to one SendLocalList (its status, or ``timeout``/``CALLERROR …``)."""
    row = state(db, station_id)
    row.last_status, row.synced_at = status[:200], now
    if status == "VersionMismatch":
        row.needs_full = True
    if status != "Accepted":
        return
    current = {} if message.update_type == "Full" else held(db, station_id)
    _store_entries(db, station_id, applied(current, dict(message.changes)))
    row.version, row.reported_version, row.needs_full = message.version, message.version, False
    if last:
        row.out_of_step_since = None


def _store_entries(db: Session, station_id: str, entries: dict[str, ListEntry]) -> None:
    db.execute(delete(LocalListEntryRow).where(LocalListEntryRow.station_id == station_id))
    db.add_all(
        LocalListEntryRow(
            station_id=station_id,
            id_token=token,
            token_type=entry.token_type,
            status=entry.status,
            expiry=entry.expiry,
            group_id=entry.group_id,
        )
        for token, entry in entries.items()
    )
    db.flush()


def record_limits(db: Session, station_id: str, found: Limits | None, now: datetime) -> None:
    """The limits the station reported (None: it could not say; no limit is assumed then)."""
    row = state(db, station_id)
    found = found or Limits()
    row.max_entries, row.items_per_message, row.bytes_per_message = (
        found.max_entries,
        found.items_per_message,
        found.bytes_per_message,
    )
    row.capabilities_read_at = now


def record_reported_version(db: Session, station_id: str, version: int | None) -> LocalListState:
    """GetLocalListVersion's answer. A version other than the one the station last confirmed means the CSMS
    no longer knows what the station holds (it lost or replaced its list): the next update is Full."""
    row = state(db, station_id)
    row.reported_version = version
    if version != row.version:
        row.needs_full = True
    return row


def select_group(db: Session, station_id: str, group: str | None, now: datetime) -> LocalListState:
    """Put only ``group``'s tokens (None: every token) on the station's list from the next update on."""
    row = state(db, station_id)
    if row.token_group != group:
        row.token_group = group
        row.out_of_step_since = row.out_of_step_since or now
    return row


def token_changed(db: Session, id_token: str, groups: set[str | None], now: datetime) -> list[str]:
    """A token was added or changed (``groups``: its group before and after): the stations whose list it is on
    or belongs on are out of step from ``now``. Returns the ids of those to sync (stations that have a list,
    unless they answered NotSupported)."""
    named = [g for g in groups if g is not None]
    holding = select(LocalListEntryRow.station_id).where(LocalListEntryRow.id_token == id_token)
    rows = db.scalars(
        select(LocalListState).where(
            or_(
                LocalListState.token_group.is_(None),
                LocalListState.token_group.in_(named),
                LocalListState.station_id.in_(holding),
            )
        )
    ).all()
    for row in rows:
        row.out_of_step_since = row.out_of_step_since or now
    return sorted(row.station_id for row in rows if row.last_status != NOT_SUPPORTED)


def describe(db: Session, station_id: str, now: datetime) -> dict[str, Any]:
    """The list as the API shows it: version, selection, limits, entries, and the changes still to send.
    Read only: a station without a list shows an empty one (nothing is written)."""
    version = stations.get(db, station_id).ocpp_version
    row = db.get(LocalListState, station_id) or LocalListState(station_id=station_id, version=0, needs_full=False)
    current = held(db, station_id)
    target = wanted(db, row, version, now)
    pending = target if row.needs_full else differences(current, target)
    return {
        "station_id": station_id,
        "version": row.version,
        "reported_version": row.reported_version,
        "token_group": row.token_group,
        "needs_full": row.needs_full,
        "out_of_step_since": row.out_of_step_since,
        "last_status": row.last_status,
        "synced_at": row.synced_at,
        "limits": {
            "max_entries": row.max_entries,
            "items_per_message": row.items_per_message,
            "bytes_per_message": row.bytes_per_message,
            "read_at": row.capabilities_read_at,
        },
        "entries": [_entry_out(token, entry) for token, entry in sorted(current.items())],
        "pending": [_entry_out(token, entry) for token, entry in pending.items()],
    }


def _entry_out(token: str, entry: ListEntry | None) -> dict[str, Any]:
    if entry is None:
        return {"id_token": token, "status": None}
    return {
        "id_token": token,
        "type": entry.token_type,
        "status": entry.status,
        "expiry": entry.expiry,
        "group_id": entry.group_id,
    }
