"""Charging sessions, written once for both OCPP versions.

Duplicates are normal on real fleets (a charger replays what it is not sure we received), so every write
here is idempotent: a 1.6 StartTransaction is recognised by (port, start time, meterStart), a 2.0.1
TransactionEvent by (transactionId, seqNo), and a stop of a completed transaction changes nothing and is
answered as the first one was. Which report moves a transaction where is one table,
:mod:`csms.domain.transaction`.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, Table, bindparam, case, func, insert, select
from sqlalchemy import update as sql_update
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from csms.domain import events as ev
from csms.domain import meter
from csms.domain.transaction import DUPLICATE, Move, TransactionReport, TransactionStatus, move
from csms.services import access, authorization, sites
from csms.services.errors import NotFound
from csms.services.live_transactions import LiveTransaction
from csms.services.uow import UnitOfWork
from csms.store.bulk import Bulk
from csms.store.models import MeterSample, Station, Transaction, TransactionEvent


def _auth(
    db: Session, id_token: str | None, now: datetime, station_id: str | None = None
) -> ev.AuthorizationInfo | None:
    """The token's status; where a transaction starts, also the access rules of the station's place."""
    if not id_token:
        return None
    return (
        access.authorize_at(db, id_token, station_id, now) if station_id else authorization.authorize(db, id_token, now)
    )


def _by_charger_id(db: Session, station_id: str, charger_tx_id: str) -> Transaction | None:
    return db.scalars(
        select(Transaction).where(Transaction.station_id == station_id, Transaction.charger_tx_id == charger_tx_id)
    ).first()


def _by_csms_id(db: Session, station_id: str, transaction_id: str) -> Transaction | None:
    """A 1.6 transaction by the id we assigned, only if it is this station's."""
    tx = db.get(Transaction, int(transaction_id))
    return tx if tx is not None and tx.station_id == station_id else None


def _find_or_open(
    db: Session, station_id: str, report: ev.TransactionUpdated | ev.TransactionEnded, kind: TransactionReport
) -> tuple[Transaction, Move]:
    """A 2.0.1 transaction by the charger's id and where ``report`` (of ``kind``) moves it; opened now when
    its Started event was lost or is still queued at the station."""
    tx = _by_charger_id(db, station_id, report.charger_tx_id)
    if tx is not None:
        return tx, _moved(tx, kind, repeated=_seen_seq(db, tx, report.seq_no))
    status = _moved(None, kind, repeated=False)
    assert status is not DUPLICATE
    tx = Transaction(
        station_id=station_id,
        charger_tx_id=report.charger_tx_id,
        status=status,
        evse_id=report.evse_id,
        connector_id=report.connector_id,
        id_token=report.id_token,
        offline_events=0,
        meter_start_explicit=False,
    )
    db.add(tx)
    db.flush()
    return tx, status


def _moved(tx: Transaction | None, kind: TransactionReport, *, repeated: bool) -> Move:
    """Where a report of ``kind`` (``repeated``: recorded already) takes ``tx`` (None: no row yet)."""
    return move(None if tx is None else tx.status, TransactionReport.REPEATED if repeated else kind)


def _seen_seq(db: Session, tx: Transaction, seq_no: int | None) -> bool:
    if seq_no is None or tx.id is None:
        return False
    return (
        db.scalars(
            select(TransactionEvent.id).where(
                TransactionEvent.transaction_id == tx.id, TransactionEvent.seq_no == seq_no
            )
        ).first()
        is not None
    )


def _record_event(
    db: Session,
    tx: Transaction,
    kind: str,
    seq_no: int | None,
    timestamp: datetime,
    trigger: str | None,
    offline: bool,
    charging_state: str | None = None,
) -> None:
    if offline:
        tx.offline_events += 1
    if seq_no is None:
        return
    db.add(
        TransactionEvent(
            transaction_id=tx.id,
            seq_no=seq_no,
            event_type=kind,
            trigger_reason=trigger,
            timestamp=timestamp,
            offline=offline,
            charging_state=charging_state,
        )
    )
    tx.last_seq_no = seq_no if tx.last_seq_no is None else max(tx.last_seq_no, seq_no)


def _queue_samples(
    uow: UnitOfWork, station_id: str, evse_id: int, samples: tuple[ev.Sample, ...], tx_id: int | None
) -> None:
    head = (station_id, tx_id, evse_id)  # then the sample's fields: the row of uow.SAMPLE_COLUMNS
    uow.meter_rows.extend([head + sample for sample in samples])


def _register_readings(samples: tuple[ev.Sample, ...]) -> list[tuple[datetime, float]]:
    """The energy-register readings among ``samples`` (timestamp, Wh), oldest first."""
    return meter.registers(samples)


def record_samples(
    uow: UnitOfWork, station_id: str, evse_id: int, samples: tuple[ev.Sample, ...], tx: Transaction | None
) -> None:
    """Queue samples for the batch insert and move the transaction's energy register."""
    _queue_samples(uow, station_id, evse_id, samples, tx.id if tx else None)
    if tx is None:
        return
    for timestamp, wh in _register_readings(samples):
        # Samples can arrive out of order (offline replay): the earliest is the start, the latest the end.
        if not tx.meter_start_explicit and (tx.meter_start_at is None or timestamp < tx.meter_start_at):
            tx.meter_start_wh, tx.meter_start_at = wh, timestamp
        if tx.last_meter_at is None or timestamp >= tx.last_meter_at:
            tx.last_meter_wh, tx.last_meter_at = wh, timestamp


def _register_statements() -> tuple[Bulk, Bulk, Bulk]:
    """Built once: constructing the statements per call costs more than running them.

    The energy register moves in SQL by the rules of :func:`record_samples`, so that a running transaction's
    meter values need no row loaded; the 2.0.1 variants also keep the highest sequence number and count the
    events sent offline.
    """
    table: Table = Transaction.__table__  # type: ignore[assignment]  # declarative: a Table, typed FromClause
    at_type = table.c.last_meter_at.type
    first_at, last_at = bindparam("first_at", type_=at_type), bindparam("last_at", type_=at_type)
    this_tx = table.c.id == bindparam("of_tx")
    moves_start = ~table.c.meter_start_explicit & (
        table.c.meter_start_at.is_(None) | (table.c.meter_start_at > first_at)
    )
    moves_last = table.c.last_meter_at.is_(None) | (table.c.last_meter_at <= last_at)
    register = {
        "meter_start_wh": case((moves_start, bindparam("first_wh")), else_=table.c.meter_start_wh),
        "meter_start_at": case((moves_start, first_at), else_=table.c.meter_start_at),
        "last_meter_wh": case((moves_last, bindparam("last_wh")), else_=table.c.last_meter_wh),
        "last_meter_at": case((moves_last, last_at), else_=table.c.last_meter_at),
    }
    seq: Any = bindparam("seq_no")
    sequence = {
        "last_seq_no": case(
            (table.c.last_seq_no.is_(None) | (table.c.last_seq_no < seq), seq), else_=table.c.last_seq_no
        ),
        "offline_events": table.c.offline_events + bindparam("offline"),
    }
    return (
        Bulk(sql_update(table).where(this_tx).values(**register)),
        Bulk(sql_update(table).where(this_tx).values(**register, **sequence)),
        Bulk(sql_update(table).where(this_tx).values(**sequence)),
    )


_MOVE_REGISTER, _MOVE_REGISTER_AND_SEQUENCE, _MOVE_SEQUENCE = _register_statements()
_TRANSACTIONS: Table = Transaction.__table__  # type: ignore[assignment]
_EVENTS: Table = TransactionEvent.__table__  # type: ignore[assignment]
_LIVE_ROW = select(_TRANSACTIONS.c.id, _TRANSACTIONS.c.status, _TRANSACTIONS.c.evse_id, _TRANSACTIONS.c.id_token).where(
    _TRANSACTIONS.c.station_id == bindparam("station_id"), _TRANSACTIONS.c.charger_tx_id == bindparam("tx")
)
_SEQ_NOS = select(_EVENTS.c.seq_no).where(_EVENTS.c.transaction_id == bindparam("tx_id"))


def _live(uow: UnitOfWork, station_id: str, charger_tx_id: str, *, with_seq_nos: bool) -> LiveTransaction | None:
    """The transaction as the cache knows it, read from the database on a miss (None: no such transaction
    of this station). None too when this batch's ORM session holds the row: the ORM's copy rules then."""
    tx = uow.live.get(station_id, charger_tx_id)
    if tx is None:
        if uow.has_session:
            uow.session.flush()
        row = uow.connection.execute(_LIVE_ROW, {"station_id": station_id, "tx": charger_tx_id}).first()
        if row is None:
            return None
        seq_nos = set(uow.connection.scalars(_SEQ_NOS, {"tx_id": row.id})) if with_seq_nos else set[int]()
        tx = LiveTransaction(row.id, row.status, row.evse_id, row.id_token is not None, seq_nos)
        uow.live.put(station_id, charger_tx_id, tx)
    if uow.has_session and uow.session.identity_map.get(identity_key(Transaction, tx.id)) is not None:
        return None
    return tx


def _register_params(tx_id: int, samples: tuple[ev.Sample, ...]) -> dict[str, Any] | None:
    readings = _register_readings(samples)
    if not readings:
        return None
    (first_at, first_wh), (last_at, last_wh) = readings[0], readings[-1]
    return {"of_tx": tx_id, "first_at": first_at, "first_wh": first_wh, "last_at": last_at, "last_wh": last_wh}


def _slow_path(uow: UnitOfWork, station_id: str, charger_tx_id: str | None) -> Session:
    """The ORM session for a report that moves a transaction's lifecycle: the cache forgets the transaction
    and the queued moves are written first, so the ORM reads what was recorded."""
    if charger_tx_id is not None:
        uow.live.forget(station_id, charger_tx_id)
    db = uow.session
    uow.flush_batches()
    return db


def start(uow: UnitOfWork, station_id: str, report: ev.TransactionStarted, now: datetime) -> ev.TransactionAck:
    if report.charger_tx_id is None:
        return _start_16(uow, station_id, report, now)
    db = _slow_path(uow, station_id, report.charger_tx_id)
    auth = _auth(db, report.id_token, now, station_id)
    tx = _by_charger_id(db, station_id, report.charger_tx_id)
    status = _moved(tx, TransactionReport.STARTED, repeated=tx is not None and _seen_seq(db, tx, report.seq_no))
    if status is DUPLICATE:
        assert tx is not None
        return ev.TransactionAck(tx.id, auth, duplicate=True)
    if tx is None:
        tx = Transaction(
            station_id=station_id,
            charger_tx_id=report.charger_tx_id,
            offline_events=0,
            meter_start_explicit=False,
        )
        db.add(tx)
    tx.status = status
    tx.evse_id, tx.connector_id = report.evse_id, report.connector_id
    tx.id_token = report.id_token or tx.id_token
    tx.auth_status = auth.status if auth else tx.auth_status
    tx.started_at = report.timestamp
    tx.remote_start_id = report.remote_start_id
    db.flush()
    _record_event(
        db, tx, "Started", report.seq_no, report.timestamp, report.trigger_reason, report.offline, report.charging_state
    )
    record_samples(uow, station_id, report.evse_id, report.samples, tx)
    return ev.TransactionAck(tx.id, auth)


#: A 1.6 start recorded already: the same port, start time and meterStart.
_STARTED_16 = Bulk(
    select(_TRANSACTIONS.c.id, _TRANSACTIONS.c.status).where(
        _TRANSACTIONS.c.station_id == bindparam("station_id"),
        _TRANSACTIONS.c.evse_id == bindparam("evse_id"),
        _TRANSACTIONS.c.started_at == bindparam("started_at"),
        _TRANSACTIONS.c.meter_start_wh == bindparam("meter_start_wh"),
    )
)
_INSERT_16 = Bulk(insert(_TRANSACTIONS).returning(_TRANSACTIONS.c.id))
#: The row's 1.6 transactionId, the id it was given, as its charger_tx_id.
_NAME_16 = Bulk(
    sql_update(_TRANSACTIONS).where(_TRANSACTIONS.c.id == bindparam("of_tx")).values(charger_tx_id=bindparam("named"))
)


def _start_16(uow: UnitOfWork, station_id: str, report: ev.TransactionStarted, now: datetime) -> ev.TransactionAck:
    """A 1.6 StartTransaction with Core statements (the lookups, one INSERT, the id as charger_tx_id): the ORM
    session is not opened unless the token needs it (:func:`access.authorize_in`). The new transaction goes into
    the cache of running ones, so its first meter values read nothing."""
    auth = access.authorize_in(uow, report.id_token, station_id, now) if report.id_token else None
    connection = uow.read_connection()
    existing = _STARTED_16.fetch_one(
        connection,
        {
            "station_id": station_id,
            "evse_id": report.evse_id,
            "started_at": report.timestamp,
            "meter_start_wh": report.meter_start_wh,
        },
    )
    status = move(
        None if existing is None else existing[1],
        TransactionReport.STARTED if existing is None else TransactionReport.REPEATED,
    )
    if status is DUPLICATE:
        assert existing is not None
        return ev.TransactionAck(existing[0], auth, duplicate=True)
    assert status is not None
    inserted = _INSERT_16.fetch_one(
        connection,
        {
            "station_id": station_id,
            # Provisional, unique per port and start; replaced by str(id) once the row has its id.
            "charger_tx_id": f"~{report.evse_id}-{report.timestamp.timestamp()}",
            "evse_id": report.evse_id,
            "connector_id": report.connector_id,
            "id_token": report.id_token,
            "auth_status": auth.status if auth else None,
            "started_at": report.timestamp,
            "meter_start_wh": report.meter_start_wh,
            "meter_start_at": report.timestamp,
            "meter_start_explicit": True,
            "last_meter_wh": report.meter_start_wh,
            "last_meter_at": report.timestamp,
            "status": status.value,
            "offline_events": 0,
        },
    )
    assert inserted is not None
    tx_id = int(inserted[0])
    _NAME_16.execute_one(connection, {"of_tx": tx_id, "named": str(tx_id)})
    uow.live.put(
        station_id, str(tx_id), LiveTransaction(tx_id, status.value, report.evse_id, report.id_token is not None)
    )
    return ev.TransactionAck(tx_id, auth)


def update(uow: UnitOfWork, station_id: str, report: ev.TransactionUpdated, now: datetime) -> ev.TransactionAck:
    if not report.id_token:
        served = _update_running(uow, station_id, report)
        if served is not None:
            return served
    db = _slow_path(uow, station_id, report.charger_tx_id)
    auth = _auth(db, report.id_token, now, station_id)
    tx, status = _find_or_open(db, station_id, report, TransactionReport.UPDATED)
    if status is DUPLICATE:
        return ev.TransactionAck(tx.id, auth, duplicate=True)
    tx.status = status
    if report.id_token and not tx.id_token:
        tx.id_token = report.id_token
        tx.auth_status = auth.status if auth else None
    _record_event(
        db, tx, "Updated", report.seq_no, report.timestamp, report.trigger_reason, report.offline, report.charging_state
    )
    record_samples(uow, station_id, report.evse_id or tx.evse_id or 0, report.samples, tx)
    return ev.TransactionAck(tx.id, auth)


def _update_running(uow: UnitOfWork, station_id: str, report: ev.TransactionUpdated) -> ev.TransactionAck | None:
    """The most frequent report of all, a running transaction's meter values, served from the cache with
    queued writes. None when the lifecycle table moves the transaction (or it is unknown): the ORM path
    then serves it."""
    tx = _live(uow, station_id, report.charger_tx_id, with_seq_nos=True)
    if tx is None:
        return None
    seq_no = report.seq_no
    repeated = seq_no is not None and seq_no in tx.seq_nos
    status = move(tx.status, TransactionReport.REPEATED if repeated else TransactionReport.UPDATED)
    if status is DUPLICATE:
        return ev.TransactionAck(tx.id, None, duplicate=True)
    if status != tx.status:
        return None
    if seq_no is not None:
        tx.seq_nos.add(seq_no)
        uow.event_rows.append(
            {
                "transaction_id": tx.id,
                "seq_no": seq_no,
                "event_type": "Updated",
                "trigger_reason": report.trigger_reason,
                "timestamp": report.timestamp,
                "offline": report.offline,
                "charging_state": report.charging_state,
            }
        )
    register = _register_params(tx.id, report.samples)
    if seq_no is not None or report.offline:
        sequence = {"of_tx": tx.id, "seq_no": seq_no, "offline": int(report.offline)}
        if register is None:
            uow.move(_MOVE_SEQUENCE, sequence)
        else:
            uow.move(_MOVE_REGISTER_AND_SEQUENCE, register | sequence)
    elif register is not None:
        uow.move(_MOVE_REGISTER, register)
    _queue_samples(uow, station_id, report.evse_id or tx.evse_id or 0, report.samples, tx.id)
    return ev.TransactionAck(tx.id, None)


def end(
    uow: UnitOfWork, station_id: str, report: ev.TransactionEnded, now: datetime, *, csms_assigned: bool
) -> ev.TransactionAck:
    db = _slow_path(uow, station_id, report.charger_tx_id)
    auth = _auth(db, report.id_token, now)
    if csms_assigned:
        found = _by_csms_id(db, station_id, report.charger_tx_id)
        if found is None:
            # 1.6 requires an answer even for a transaction we never saw; nothing to record against.
            return ev.TransactionAck(0, auth, duplicate=True)
        tx, status = found, _moved(found, TransactionReport.ENDED, repeated=False)
    else:
        tx, status = _find_or_open(db, station_id, report, TransactionReport.ENDED)
    if status is DUPLICATE:
        return ev.TransactionAck(tx.id, auth, duplicate=True)
    _record_event(
        db, tx, "Ended", report.seq_no, report.timestamp, report.trigger_reason, report.offline, report.charging_state
    )
    record_samples(uow, station_id, report.evse_id or tx.evse_id or 0, report.samples, tx)
    if report.meter_stop_wh is not None:
        tx.meter_stop_wh = report.meter_stop_wh
    elif tx.last_meter_wh is not None:
        tx.meter_stop_wh = tx.last_meter_wh
    tx.stopped_at = report.timestamp
    tx.stop_reason = report.reason
    tx.status = status
    return ev.TransactionAck(tx.id, auth)


def meter_values(
    uow: UnitOfWork,
    station_id: str,
    report: ev.MeterValuesReported,
    *,
    csms_assigned: bool,
    now: datetime | None = None,
) -> None:
    """Record samples against the port's transaction. EVSE-0 samples of a site's meter station are also
    that site's grid-meter readings (load management learns the building load from them)."""
    if report.evse_id == 0 and report.samples:
        received = now if now is not None else max(s.timestamp for s in report.samples)
        sites.record_station_meter(uow, station_id, report.samples, received)
    if report.charger_tx_id is not None and csms_assigned:
        running = _live(uow, station_id, report.charger_tx_id, with_seq_nos=False)
        if running is not None or not uow.has_session:
            # A 1.6 transaction by the id we assigned: the register moves in SQL, no row is loaded.
            register = None if running is None else _register_params(running.id, report.samples)
            if register is not None:
                uow.move(_MOVE_REGISTER, register)
            _queue_samples(uow, station_id, report.evse_id, report.samples, None if running is None else running.id)
            return
        db = _slow_path(uow, station_id, report.charger_tx_id)
        tx = _by_csms_id(db, station_id, report.charger_tx_id)
    elif report.evse_id > 0:
        tx = active_on(_slow_path(uow, station_id, None), station_id, report.evse_id)
    else:
        tx = None
    record_samples(uow, station_id, report.evse_id, report.samples, tx)


# ---- queries for the API -------------------------------------------------------------------------------
def query(
    station_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    status: TransactionStatus | None = None,
    organisation_id: int | None = None,
) -> Select[Transaction]:
    q = select(Transaction).order_by(Transaction.id)
    if organisation_id is not None:
        q = q.where(Transaction.station_id.in_(select(Station.id).where(Station.organisation_id == organisation_id)))
    if station_id is not None:
        q = q.where(Transaction.station_id == station_id)
    if since is not None:
        q = q.where(Transaction.started_at >= since)
    if until is not None:
        q = q.where(Transaction.started_at < until)
    if status is not None:
        q = q.where(Transaction.status == status)
    return q


def active_on(db: Session, station_id: str, evse_id: int) -> Transaction | None:
    """The port's running transaction (the newest, should a lost stop have left an older one open)."""
    return db.scalars(
        select(Transaction)
        .where(
            Transaction.station_id == station_id,
            Transaction.evse_id == evse_id,
            Transaction.status == TransactionStatus.ACTIVE,
        )
        .order_by(Transaction.id.desc())
    ).first()


def listed(db: Session) -> list[Transaction]:
    """Every transaction, oldest first."""
    return list(db.scalars(query()))


def recent(db: Session, limit: int, organisation_id: int | None = None) -> list[Transaction]:
    """The newest transactions first (of one organisation's stations, when given)."""
    query = select(Transaction)
    if organisation_id is not None:
        query = query.where(
            Transaction.station_id.in_(select(Station.id).where(Station.organisation_id == organisation_id))
        )
    return list(db.scalars(query.order_by(Transaction.id.desc()).limit(limit)))


def get(db: Session, transaction_id: int) -> Transaction:
    tx = db.get(Transaction, transaction_id)
    if tx is None:
        raise NotFound(f"transaction {transaction_id} not found")
    return tx


def samples_of(db: Session, transaction_id: int) -> list[MeterSample]:
    return list(
        db.scalars(
            select(MeterSample)
            .where(MeterSample.transaction_id == transaction_id)
            .order_by(MeterSample.timestamp, MeterSample.id)
        )
    )


def stored_readings(db: Session, transaction_id: int) -> list[meter.Reading]:
    """The session's stored meter samples read as meter readings (:mod:`csms.domain.meter`), oldest first."""
    return readings_after(db, transaction_id, None)[0]


def readings_after(
    db: Session, transaction_id: int, after: datetime | None
) -> tuple[list[meter.Reading], int, datetime | None]:
    """:func:`stored_readings` of the samples stamped after ``after`` (None: all), with how many samples they
    were and the newest one's timestamp. The columns a reading needs, without loading ORM objects."""
    query = select(
        MeterSample.timestamp,
        MeterSample.measurand,
        MeterSample.value,
        MeterSample.unit,
        MeterSample.phase,
        MeterSample.location,
        MeterSample.context,
    ).where(MeterSample.transaction_id == transaction_id)
    if after is not None:
        query = query.where(MeterSample.timestamp > after)
    rows = db.execute(query.order_by(MeterSample.timestamp, MeterSample.id)).all()
    newest = rows[-1][0] if rows else None
    return meter.readings(ev.Sample(*row) for row in rows), len(rows), newest


def stored_samples_seen(db: Session, transaction_id: int) -> tuple[int, datetime | None]:
    """How many meter samples the session has stored, and the newest one's timestamp: a reader that goes on
    with :func:`readings_after` that timestamp compares the counts to know that none came in out of order."""
    count, newest = db.execute(
        select(func.count(), func.max(MeterSample.timestamp)).where(MeterSample.transaction_id == transaction_id)
    ).one()
    return count, newest


def summary(tx: Transaction) -> dict[str, Any]:
    return {
        "id": tx.id,
        "station_id": tx.station_id,
        "charger_transaction_id": tx.charger_tx_id,
        "evse_id": tx.evse_id,
        "connector_id": tx.connector_id,
        "id_token": tx.id_token,
        "auth_status": tx.auth_status,
        "status": tx.status,
        "started_at": tx.started_at,
        "stopped_at": tx.stopped_at,
        "meter_start_wh": tx.meter_start_wh,
        "meter_stop_wh": tx.meter_stop_wh,
        "energy_wh": tx.energy_wh,
        "energy_kwh": round(tx.energy_wh / 1000.0, 6),
        "stop_reason": tx.stop_reason,
        "offline_events": tx.offline_events,
    }


def running_on(db: Session, station_id: str) -> int:
    """How many transactions of the station are running (a reboot now would interrupt them)."""
    return len(db.scalars(query(station_id, status=TransactionStatus.ACTIVE)).all())


def power_history(
    db: Session, ports: set[tuple[str, int]], since: datetime, until: datetime, step: timedelta
) -> list[tuple[datetime, float]]:
    """The measured power (kW) of the sessions on ``ports`` (station, EVSE) at the end of each ``step`` from
    ``since``: the sum over the sessions still running then of each one's newest power reading before it
    (:func:`stored_readings`; a session that has not reported power yet counts 0)."""
    slots = max(1, math.ceil((until - since) / step))
    starts = [since + k * step for k in range(slots)]
    totals = [0.0] * slots
    stations = {station for station, _ in ports}
    candidates = db.scalars(
        select(Transaction).where(
            Transaction.station_id.in_(stations),
            Transaction.started_at < until,
            (Transaction.stopped_at.is_(None)) | (Transaction.stopped_at >= since),
        )
    )
    for tx in candidates:
        if (tx.station_id, tx.evse_id) not in ports or tx.started_at is None:
            continue
        powers = [(r.at, r.power_w) for r in stored_readings(db, tx.id) if r.power_w is not None]
        for k, start in enumerate(starts):
            end = start + step
            if tx.started_at >= end or (tx.stopped_at is not None and tx.stopped_at < end):
                continue
            before = [w for at, w in powers if at < end]
            totals[k] += before[-1] / 1000 if before else 0.0
    return list(zip(starts, totals, strict=True))
