"""What a session costs: its OCPI 2.2.1 CDR when it ends, the cost so far while it runs, the tariff's text for
the driver. The prices come from :mod:`csms.tariffs`; this module reads the session from the store.

* **The session.** Energy is the register readings of its stored meter samples, read the one way
  :mod:`csms.domain.meter` reads them, plus a 1.6 ``meterStart`` at the start and the end register
  (:func:`~csms.domain.meter.end_register`) at the stop. Charging vs parking: the 2.0.1 ``chargingState`` of
  its TransactionEvents (``Charging`` charges; ``EVConnected``, ``SuspendedEV``, ``SuspendedEVSE`` and ``Idle``
  park), else the 1.6 StatusNotifications of its connector while it ran (``Charging``; ``SuspendedEV`` and
  ``SuspendedEVSE`` park). A session starts charging.
* **The tariff.** The one :func:`csms.services.tariffs.resolve` finds for the EVSE and the token's group when
  the session ends. Every version of it in force during the session prices its part: a version set
  mid-session takes over from the moment it was set.
* **Time zone.** ``CsmsConfig.tariff_time_zone``: local midnight and the restrictions' local times.
* **The CDR** is stored once per transaction (a replayed end answers with the stored one) and rebuilt when a
  report of the session arrives after its end (an offline replay out of order). When the token pays through a
  billing account the session is debited once (:func:`csms.services.billing.charge_session`) — unless it is a
  multifamily unit resident's at their garage, which the unit's monthly statement bills
  (:func:`csms.services.multifamily.billed_by_statement`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import Connection, bindparam, func, select
from sqlalchemy.orm import Session

from csms.domain import events as ev
from csms.domain import meter
from csms.domain import money as currency
from csms.domain.transaction import TransactionStatus
from csms.ocpp.outgoing import SessionCost
from csms.services import billing, configuration, multifamily, payments, tariffs, transactions
from csms.services.config import CsmsConfig
from csms.services.errors import Invalid, NotFound
from csms.services.live_transactions import LiveCost
from csms.services.uow import UnitOfWork
from csms.store.bulk import Bulk
from csms.store.models import (
    Cdr,
    IdToken,
    StationVariable,
    StatusChange,
    TariffRow,
    TariffVersion,
    Transaction,
)
from csms.store.models import TransactionEvent as EventRow
from csms.tariffs import pricing
from csms.tariffs.model import Dimension, PriceComponent, Tariff
from csms.tariffs.parse import parse_tariff
from csms.tariffs.pricing import CdrResult, price_session
from csms.tariffs.timeline import MeterSample as Reading
from csms.tariffs.timeline import SessionTimeline, State, StateChange

log = logging.getLogger(__name__)
T = TypeVar("T")

#: 2.0.1 chargingState / 1.6 connector status -> what the time is priced as.
STATES_201 = {
    "Charging": State.CHARGING,
    "EVConnected": State.PARKING,
    "SuspendedEV": State.PARKING,
    "SuspendedEVSE": State.PARKING,
    "Idle": State.PARKING,
}
STATES_16 = {"Charging": State.CHARGING, "SuspendedEV": State.PARKING, "SuspendedEVSE": State.PARKING}
#: OCPI 2.2.1 CdrDimensionType has no FLAT: the session fee is in total_fixed_cost only.
_CDR_DIMENSIONS = {Dimension.ENERGY, Dimension.TIME, Dimension.PARKING_TIME}
#: OCPP id token type -> OCPI 2.2.1 TokenType (a card is RFID, a token the CSMS or an app issued APP_USER).
OCPI_TOKEN_TYPES = {"ISO14443": "RFID", "ISO15693": "RFID", "Central": "APP_USER"}
#: A tariff version: its number, as priced, as stored (the OCPI JSON).
Version = tuple[int, Tariff, dict[str, Any]]


def cdr_id(transaction_id: int) -> str:
    return f"CDR-{transaction_id}"


# ---- which tariff, which versions ------------------------------------------------------------------------------
def group_of(db: Session | Connection, id_token: str | None) -> str | None:
    """The driver's group (a token no local one matches has none). On a Connection it costs no ORM session, and
    goes straight to the driver (``Bulk.fetch_one``: SQLAlchemy's execution cost 6× running it)."""
    if not id_token:
        return None
    if isinstance(db, Connection):
        found = _GROUP_OF_ON_CONNECTION.fetch_one(db, {"token": id_token})
        return None if found is None else found[0]
    return db.scalar(_GROUP_OF, {"token": id_token})


_GROUP_OF = select(IdToken.group_id).where(IdToken.id_token == bindparam("token"))
_GROUP_OF_ON_CONNECTION = Bulk(_GROUP_OF)


def tariff_for(uow: UnitOfWork, station_id: str, evse_id: int | None, id_token: str | None) -> TariffRow | None:
    """The tariff for this driver at the EVSE (at an Authorize, before an EVSE is known: EVSE 1's). Looked up
    with Core statements; the ORM session opens only to load a tariff that applies."""
    connection = uow.read_connection()
    chosen = tariffs.resolve_id(connection, station_id, evse_id or 1, group_of(connection, id_token))
    return None if chosen is None else tariffs.get(uow.session, chosen)


def versions_in_force(db: Session, tariff: TariffRow, start: datetime, stop: datetime) -> list[Version]:
    """The versions of ``tariff`` that priced some of [start, stop], oldest first; each later one takes over
    from when it was set (its ``start_date_time``, unless its own is later)."""
    rows = list(
        db.scalars(select(TariffVersion).where(TariffVersion.tariff_id == tariff.id).order_by(TariffVersion.version))
    )
    chosen: list[Version] = []
    for index, row in enumerate(rows):
        following = rows[index + 1].valid_from if index + 1 < len(rows) else None
        if following is not None and following <= start:
            continue  # replaced before the session started
        if chosen and row.valid_from >= stop:
            break  # set after the session
        parsed = parse_tariff(row.body)
        if chosen:
            own = parsed.start_date_time
            parsed = dataclasses.replace(
                parsed, start_date_time=row.valid_from if own is None else max(own, row.valid_from)
            )
        chosen.append((row.version, parsed, row.body))
    if not chosen:  # no history (a tariff stored before versions were kept): the tariff as it is
        chosen.append((tariff.version, parse_tariff(tariff.body), tariff.body))
    return chosen


# ---- the session as priced -------------------------------------------------------------------------------------
def _readings(db: Session, tx: Transaction, start: datetime, stop: datetime) -> list[Reading]:
    return _readings_beyond(db, tx, start, stop)[0]


def _readings_beyond(db: Session, tx: Transaction, start: datetime, stop: datetime) -> tuple[list[Reading], bool]:
    """The readings, and whether one stamped after ``stop`` was counted at it."""
    found: dict[datetime, Reading] = {}
    beyond = False
    for r in transactions.stored_readings(db, tx.id):
        if r.energy_wh is not None:
            beyond = beyond or r.at > stop
            # A reading stamped a little outside the session (a meter value's timestamp in whole seconds, the
            # event's with milliseconds) counts at its edge: the latest one before the start, the latest after
            # the stop.
            at = min(max(r.at, start), stop)
            current = r.port_current_a
            found[at] = Reading(at, Decimal(str(r.energy_wh)), None if current is None else Decimal(str(current)))
    if tx.meter_start_explicit and tx.meter_start_wh is not None and start not in found:
        found[start] = Reading(start, Decimal(str(tx.meter_start_wh)))
    newest = max(found.values(), key=lambda r: r.at, default=None)
    end = meter.end_register(tx.meter_stop_wh, None if newest is None else float(newest.wh))
    if tx.stopped_at is not None and end is not None and (newest is None or newest.at < stop):
        found[stop] = Reading(stop, Decimal(str(end)))
    return [found[at] for at in sorted(found)], beyond


def _states(db: Session, tx: Transaction, start: datetime, stop: datetime) -> list[StateChange]:
    events = db.execute(
        select(EventRow.timestamp, EventRow.charging_state)
        .where(EventRow.transaction_id == tx.id, EventRow.charging_state.is_not(None))
        .order_by(EventRow.timestamp, EventRow.seq_no)
    ).all()
    if events:
        changes = [(at, STATES_201.get(state or "")) for at, state in events]
    else:
        statuses = db.execute(
            select(StatusChange.timestamp, StatusChange.status)
            .where(
                StatusChange.station_id == tx.station_id,
                StatusChange.evse_id == (tx.evse_id or 0),
                StatusChange.timestamp >= start,
                StatusChange.timestamp <= stop,
            )
            .order_by(StatusChange.timestamp, StatusChange.id)
        ).all()
        changes = [(at, STATES_16.get(status)) for at, status in statuses]
    out: list[StateChange] = []
    current = State.CHARGING
    for at, state in changes:
        if state is None or state is current:
            continue
        current = state
        out.append(StateChange(min(max(at, start), stop), state))
    return out


def timeline_of(db: Session, tx: Transaction, stop: datetime, time_zone: str) -> SessionTimeline:
    start = tx.started_at or tx.meter_start_at or stop
    stop = max(stop, start)
    return SessionTimeline(
        start, stop, time_zone, tuple(_readings(db, tx, start, stop)), tuple(_states(db, tx, start, stop))
    )


@dataclasses.dataclass(frozen=True)
class Priced:
    tariff: TariffRow
    versions: tuple[Version, ...]
    result: CdrResult


def _priced_versions(db: Session, tariff: TariffRow, timeline: SessionTimeline) -> tuple[Version, ...]:
    found = versions_in_force(db, tariff, timeline.start, timeline.stop)
    # a session is priced in one currency: the latest version's (one that changed it replaces the others)
    kept = [v for v in found if v[1].currency == found[-1][1].currency]
    if kept[0] is not found[0]:  # the first one kept prices from the start, as the first version would have
        number, _, body = kept[0]
        kept[0] = (number, parse_tariff(body), body)
    return tuple(kept)


def price(db: Session, tx: Transaction, stop: datetime, config: CsmsConfig, *, final: bool) -> Priced | None:
    """The session priced up to ``stop``; None when no tariff applies (or the session has no EVSE)."""
    if tx.evse_id is None:
        return None
    tariff = tariffs.resolve(db, tx.station_id, tx.evse_id, group_of(db, tx.id_token))
    if tariff is None:
        return None
    timeline = timeline_of(db, tx, stop, config.tariff_time_zone)
    versions = _priced_versions(db, tariff, timeline)
    result = price_session([t for _, t, _ in versions], timeline, final=final)
    return Priced(tariff, versions, result)


# ---- the CDR ---------------------------------------------------------------------------------------------------
def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _number(value: Decimal) -> float | int:
    return int(value) if value == value.to_integral_value() else float(value)


def _cost(result: CdrResult, dimension: Dimension) -> dict[str, Any] | None:
    cost = result.cost(dimension)
    return None if cost is None else {"excl_vat": _number(cost.excl_vat), "incl_vat": _number(cost.incl_vat)}


def charging_periods(result: CdrResult) -> list[dict[str, Any]]:
    """The OCPI ChargingPeriods of a priced session (a CDR's, and a live OCPI Session's so far)."""
    return [
        {
            "start_date_time": _iso(period.start_date_time),
            "dimensions": [
                {"type": d.value, "volume": _number(v)} for d, v in period.dimensions if d in _CDR_DIMENSIONS
            ],
            "tariff_id": period.tariff_id,
        }
        for period in result.charging_periods
    ]


def ocpi_body(
    tx: Transaction, priced: Priced, config: CsmsConfig, now: datetime, token_type: str = "RFID"
) -> dict[str, Any]:
    """The OCPI 2.2.1 CDR object. The location is what the CSMS knows of it (station, EVSE, connector)."""
    result = priced.result
    incl = result.total_cost.incl_vat
    body: dict[str, Any] = {
        "country_code": config.ocpi_country_code,
        "party_id": config.ocpi_party_id,
        "id": cdr_id(tx.id),
        "start_date_time": _iso(result.start),
        "end_date_time": _iso(result.stop),
        "session_id": str(tx.id),
        "cdr_token": {
            "country_code": config.ocpi_country_code,
            "party_id": config.ocpi_party_id,
            "uid": tx.id_token or "",
            "type": token_type,
            "contract_id": tx.id_token or "",
        },
        "auth_method": "COMMAND" if tx.remote_start_id is not None else "AUTH_REQUEST",
        "cdr_location": {
            "id": tx.station_id,
            "evse_uid": f"{tx.station_id}*{tx.evse_id}",
            "evse_id": f"{tx.station_id}*{tx.evse_id}",
            "connector_id": str(tx.connector_id or 1),
        },
        "currency": result.currency,
        "tariffs": [body for _, _, body in priced.versions],
        "charging_periods": charging_periods(result),
        "total_cost": {
            "excl_vat": _number(result.total_cost.excl_vat),
            **({} if incl is None else {"incl_vat": _number(incl)}),
        },
        "total_energy": _number(result.total_energy),
        "total_time": _number(result.total_time),
        "total_parking_time": _number(result.total_parking_time),
        "last_updated": _iso(now),
    }
    for key, dimension in (
        ("total_fixed_cost", Dimension.FLAT),
        ("total_energy_cost", Dimension.ENERGY),
        ("total_time_cost", Dimension.TIME),
        ("total_parking_cost", Dimension.PARKING_TIME),
    ):
        cost = _cost(result, dimension)
        if cost is not None:
            body[key] = cost
    if result.review_reasons:
        body["remark"] = "; ".join(result.review_reasons)[:255]
    return body


def _minor(amount: Decimal, code: str) -> int:
    return int(amount.scaleb(currency.minor_units(code)))


def close(db: Session, tx: Transaction, config: CsmsConfig, now: datetime) -> Cdr | None:
    """Store (or rebuild) the transaction's CDR and debit its account once; None when no tariff applies."""
    stop = tx.stopped_at or tx.last_meter_at or now
    priced = price(db, tx, stop, config, final=True)
    if priced is None:
        return None
    result = priced.result
    token = db.get(IdToken, tx.id_token) if tx.id_token else None
    token_type = OCPI_TOKEN_TYPES.get(token.token_type, "OTHER") if token else "OTHER"
    if payments.hold_of(db, tx.id_token) is not None:
        token_type = "AD_HOC_USER"  # paid at the charger's payment terminal
    body = ocpi_body(tx, priced, config, now, token_type)
    incl = result.total_cost.incl_vat if result.total_cost.incl_vat is not None else result.total_cost.excl_vat
    row = db.scalar(select(Cdr).where(Cdr.transaction_id == tx.id))
    fields = {
        "tariff_id": priced.tariff.id,
        "tariff_version": priced.versions[-1][0],
        "currency": result.currency,
        "total_energy": str(result.total_energy),
        "total_time": str(result.total_time),
        "total_parking_time": str(result.total_parking_time),
        "total_cost_excl_vat": str(result.total_cost.excl_vat),
        "total_cost_incl_vat": str(incl),
        "review_reasons": list(result.review_reasons),
        "body": body,
        "updated_at": now,
    }
    if row is None:
        row = Cdr(id=cdr_id(tx.id), transaction_id=tx.id, created_at=now, **fields)
        db.add(row)
    else:
        for key, value in fields.items():
            setattr(row, key, value)
    db.flush()
    _debit(db, tx, row, result, incl, stop, now)
    review = payments.settle(db, tx, now, config.card_processor)
    if review and review not in row.review_reasons:
        row.review_reasons = [*row.review_reasons, review]
        db.flush()
    return row


def _debit(
    db: Session, tx: Transaction, row: Cdr, result: CdrResult, incl: Decimal, at: datetime, now: datetime
) -> None:
    if multifamily.billed_by_statement(db, tx.id_token, tx.station_id):
        return  # the unit's monthly statement bills the resident's charging at their garage
    code = result.currency
    gross = _minor(incl, code)
    try:
        entries = billing.charge_session(
            db,
            tx.id_token,
            transaction_id=str(tx.id),
            gross_minor=gross,
            vat_minor=gross - _minor(result.total_cost.excl_vat, code),
            currency=code,
            description=f"charging at {tx.station_id} EVSE {tx.evse_id}: {result.total_energy} kWh ({row.id})",
            at=at,
            now=now,
        )
    except Invalid as exc:  # an account in another currency: the CDR stands, the debit is for a person
        row.review_reasons = [*row.review_reasons, f"not debited: {exc}"]
        db.flush()
        return
    charged = next((e for e in entries if e.kind == "charge"), None)
    if charged is not None and charged.amount_minor != gross:  # a CDR rebuilt after the debit: a person settles it
        debited = Decimal(charged.amount_minor).scaleb(-currency.minor_units(code))
        row.review_reasons = [*row.review_reasons, f"the account was debited {debited} {code} before this CDR changed"]
        db.flush()


def stored(db: Session, transaction_id: int) -> Cdr:
    """The CDR of a finished transaction.

    Raises:
        NotFound: no such transaction; it is still running; or no tariff applied (the reason says which).
    """
    tx = db.get(Transaction, transaction_id)
    if tx is None:
        raise NotFound(f"transaction {transaction_id} not found")
    row = db.scalar(select(Cdr).where(Cdr.transaction_id == transaction_id))
    if row is not None:
        return row
    if tx.stopped_at is None:
        raise NotFound(f"transaction {transaction_id} is still running: its CDR is made when it ends")
    raise NotFound(f"transaction {transaction_id} has no CDR: no tariff applied at {tx.station_id} EVSE {tx.evse_id}")


# ---- what the charger is told ----------------------------------------------------------------------------------
def price_text(tariff: TariffRow) -> str:
    """The tariff for a display: its own ``tariff_alt_text`` when it has one, else its prices."""
    alt = tariff.body.get("tariff_alt_text")
    if isinstance(alt, list) and alt and isinstance(alt[0], dict) and alt[0].get("text"):
        return str(alt[0]["text"])
    parsed = parse_tariff(tariff.body)
    units = {
        Dimension.ENERGY: "/kWh",
        Dimension.TIME: "/h charging",
        Dimension.PARKING_TIME: "/h parked",
        Dimension.FLAT: " per session",
    }
    parts: list[str] = []
    vat: set[Decimal] = set()
    for element in parsed.elements:
        for c in element.price_components:
            text = f"{c.price} {parsed.currency}{units[c.type]}"
            if element.restrictions is not None:
                text += " (some times)"
            if text not in parts:
                parts.append(text)
            if c.vat:
                vat.add(c.vat)
    suffix = f", excl. {'/'.join(str(v) for v in sorted(vat))} % VAT" if vat else ""
    return " + ".join(parts) + suffix


def with_price_text(
    uow: UnitOfWork, auth: ev.AuthorizationInfo, station_id: str, evse_id: int | None, id_token: str
) -> ev.AuthorizationInfo:
    """An accepted token's answer carries the tariff's text when a tariff applies."""
    if auth.status != "Accepted":
        return auth
    tariff = tariff_for(uow, station_id, evse_id, id_token)
    return auth if tariff is None else dataclasses.replace(auth, price_text=price_text(tariff))


def _contained(uow: UnitOfWork, what: str, work: Callable[[], T]) -> T | None:
    """Pricing never costs a station its answer: should it fail, its writes roll back alone, the failure is
    logged and the answer goes without a cost (the station would otherwise resend the report for ever)."""
    try:
        with uow.savepoint():
            return work()
    except Exception:
        log.exception("pricing %s failed: answered without a cost", what)
        return None


#: How long a kept running cost goes without looking its tariff up again (a tariff or an assignment changed
#: meanwhile then rebuilds it; the CDR at the end always prices with the tariff as it is then).
TARIFF_RECHECK = timedelta(minutes=5)


def running_cost(
    uow: UnitOfWork,
    station_id: str,
    ack: ev.TransactionAck,
    report: ev.TransactionStarted | ev.TransactionUpdated,
    config: CsmsConfig,
) -> ev.TransactionAck:
    """The answer to a running 2.0.1 session's report with its cost so far (incl. VAT) when a tariff applies.

    The cost is kept per live transaction (``uow.live``, :class:`~csms.services.live_transactions.LiveCost`)
    and fed with each report's own readings and charging state, so a report costs the same late in a long
    session as early; it is rebuilt from the stored samples only when it is not kept (a restart, a rollback) or
    no longer fits (:func:`_fed`); its tariff is looked up again every :data:`TARIFF_RECHECK` of the session.
    Sessions found to have no tariff are remembered, so their reports stay cheap."""
    if ack.duplicate or not ack.transaction_id or ack.transaction_id in uow.live.unpriced:
        return ack
    tx_id = ack.transaction_id
    priced: tuple[CdrResult, LiveCost] | None = None
    try:  # a kept cost is fed without a savepoint: nothing is written
        priced = _kept(uow, station_id, tx_id, report)
    except Exception:
        log.exception("pricing transaction %s from its kept cost failed: rebuilt", tx_id)
    if priced is None:
        priced = _contained(uow, f"transaction {tx_id} so far", lambda: _rebuilt_now(uow, tx_id, report, config))
    if priced is None:
        uow.live.unpriced.add(tx_id)
        return ack
    result, live = priced
    total = result.total_cost
    cost = total.incl_vat if total.incl_vat is not None else total.excl_vat
    return dataclasses.replace(ack, total_cost=cost, cost_limit=live.cost_limit)


Place = tuple[Transaction, TariffRow, datetime]


def _looked_up(db: Session, tx_id: int, report: ev.TransactionStarted | ev.TransactionUpdated) -> Place | None:
    """The transaction, its tariff and the instant it is priced to; None when no tariff applies."""
    tx = db.get(Transaction, tx_id)
    if tx is None or tx.evse_id is None:
        return None
    tariff = tariffs.resolve(db, tx.station_id, tx.evse_id, group_of(db, tx.id_token))
    return None if tariff is None else (tx, tariff, max(report.timestamp, tx.started_at or report.timestamp))


def _kept(
    uow: UnitOfWork, station_id: str, tx_id: int, report: ev.TransactionStarted | ev.TransactionUpdated
) -> tuple[CdrResult, LiveCost] | None:
    """The cost so far from the kept running cost fed with ``report``; None: it must be rebuilt."""
    live = uow.live.cost(station_id, tx_id)
    if live is None:
        return None
    stop = max(report.timestamp, live.start)
    if stop - live.checked_at >= TARIFF_RECHECK:  # look the tariff up again
        place = _looked_up(uow.session, tx_id, report)
        if place is None or (place[1].id, place[1].version) != live.tariff:
            return None
        live.checked_at = stop
    if not _fed(live, report, stop):
        return None
    return live.running.estimate(stop), live


def _rebuilt_now(
    uow: UnitOfWork, tx_id: int, report: ev.TransactionStarted | ev.TransactionUpdated, config: CsmsConfig
) -> tuple[CdrResult, LiveCost] | None:
    """The cost so far rebuilt from the stored samples, kept for the next report where it may be."""
    db = uow.session
    place = _looked_up(db, tx_id, report)
    if place is None:
        return None
    tx, tariff, stop = place
    uow.flush_batches()  # the report's own samples are read back
    live, keep = _rebuilt(db, tx, tariff, stop, config)
    uow.live.keep_cost(tx.station_id, tx.id, live if keep else None)
    return live.running.estimate(stop), live


def _rebuilt(
    db: Session, tx: Transaction, tariff: TariffRow, stop: datetime, config: CsmsConfig
) -> tuple[LiveCost, bool]:
    """A running session's cost built from its stored samples up to ``stop``, and whether it may be kept and fed:
    not when a reading stamped after ``stop`` was counted at it (the next report prices that one again)."""
    live, keep, _, _ = _built(db, tx, tariff, stop, config)
    return live, keep


def _built(
    db: Session, tx: Transaction, tariff: TariffRow, stop: datetime, config: CsmsConfig
) -> tuple[LiveCost, bool, tuple[Version, ...], list[StateChange]]:
    """:func:`_rebuilt`, with the versions it prices with and the state changes it was fed."""
    start = tx.started_at or tx.meter_start_at or stop
    stop = max(stop, start)
    samples, beyond = _readings_beyond(db, tx, start, stop)
    states = _states(db, tx, start, stop)
    timeline = SessionTimeline(start, stop, config.tariff_time_zone, tuple(samples), tuple(states))
    versions = _priced_versions(db, tariff, timeline)
    running = pricing.running_cost([t for _, t, _ in versions], timeline)
    later = db.scalar(
        select(func.min(TariffVersion.valid_from)).where(
            TariffVersion.tariff_id == tariff.id, TariffVersion.valid_from >= stop
        )
    )
    fed = max([start, *(s.at for s in samples), *(c.at for c in states)])
    state = states[-1].state if states else State.CHARGING
    limit = payments.cost_limit(db, tx.id_token)
    live = LiveCost(running, start, (tariff.id, tariff.version), stop, fed, state, later, limit)
    return live, not beyond, versions, states


def _fed(live: LiveCost, report: ev.TransactionStarted | ev.TransactionUpdated, stop: datetime) -> bool:
    """Feed ``live`` with the report's own readings and charging state, exactly as a rebuild from the stored
    samples would price them; False (``live`` is then spent) when it cannot: a version of the tariff set for later
    has taken over, or the report has something at or before what ``live`` has priced (an offline replay, a
    repeated timestamp) or after the report itself."""
    if live.valid_until is not None and stop >= live.valid_until:
        return False
    changes: list[StateChange] = []
    state = STATES_201.get(report.charging_state or "")
    if state is not None and state is not live.state:
        changes.append(StateChange(min(max(report.timestamp, live.start), stop), state))
    return _feed(live, meter.readings(report.samples), changes, stop)


def _feed(live: LiveCost, readings: list[meter.Reading], changes: list[StateChange], stop: datetime) -> bool:
    """Feed ``live`` with readings and state changes that came after all it was fed, as :func:`_readings_beyond`
    and :func:`_states` read them from the store; False (``live`` is then spent) when one is at or before what it
    has priced, or a reading after ``stop``."""
    start = live.start
    samples: list[Reading] = []
    for r in readings:
        if r.energy_wh is None:
            continue
        at = max(r.at, start)
        if at <= live.fed_until or at > stop:
            return False
        current = r.port_current_a
        samples.append(Reading(at, Decimal(str(r.energy_wh)), None if current is None else Decimal(str(current))))
    if any(change.at <= live.fed_until for change in changes):
        return False
    try:
        pricing.feed(live.running, samples, changes)
    except ValueError:
        return False
    live.fed_until = max([live.fed_until, *(s.at for s in samples), *(c.at for c in changes)])
    if changes:
        live.state = changes[-1].state
    return True


def final_cost(uow: UnitOfWork, ack: ev.TransactionAck, config: CsmsConfig, now: datetime) -> ev.TransactionAck:
    """The answer to a session's end with its final cost: the CDR made now, or the one made at the first end."""
    if not ack.transaction_id:
        return ack
    uow.live.unpriced.discard(ack.transaction_id)
    db = uow.session
    uow.flush_batches()
    tx = db.get(Transaction, ack.transaction_id)
    if tx is None:
        return ack
    uow.live.keep_cost(tx.station_id, tx.id, None)
    if ack.duplicate:
        row = stored_for(db, tx.id)
    else:
        row = _contained(uow, f"transaction {tx.id}'s CDR", lambda: close(db, tx, config, now))
    return ack if row is None else dataclasses.replace(ack, total_cost=Decimal(row.total_cost_incl_vat))


def after_end(uow: UnitOfWork, ack: ev.TransactionAck, config: CsmsConfig, now: datetime) -> bool:
    """A report of a session that has ended already (an offline replay out of order): its CDR is rebuilt.
    Returns whether a CDR was."""
    if ack.duplicate or not ack.transaction_id:
        return False
    db = uow.session
    tx = db.get(Transaction, ack.transaction_id)
    if tx is None or tx.stopped_at is None:
        return False
    uow.flush_batches()
    return _contained(uow, f"transaction {tx.id}'s CDR again", lambda: close(db, tx, config, now)) is not None


# ---- what a running session has cost, for the periodic updates -------------------------------------------------
#: The 1.6 configuration key by which a charger declares it shows California Pricing messages.
CALIFORNIA_KEY = "CustomDisplayCostAndPrice"


def shows_cost_16(db: Session, station_id: str) -> bool:
    """Whether a 1.6 charger declared ``CustomDisplayCostAndPrice`` true (as its configuration was last read)."""
    value = db.scalar(
        select(StationVariable.value).where(
            StationVariable.station_id == station_id,
            StationVariable.component == configuration.NO_COMPONENT,
            StationVariable.variable == CALIFORNIA_KEY,
            StationVariable.attribute == "Actual",
        )
    )
    return (value or "").strip().lower() == "true"


def _incl(component: PriceComponent) -> Decimal:
    return component.price if not component.vat else component.price * (1 + component.vat / 100)


def display_prices(tariff: Tariff) -> tuple[dict[str, Decimal], dict[str, Decimal | int]]:
    """The tariff's prices incl. VAT as California Pricing names them: the first price of each dimension
    (``kWhPrice``, ``hourPrice``, ``flatFee``), and the parking price with the grace before it."""
    names = {Dimension.ENERGY: "kWhPrice", Dimension.TIME: "hourPrice", Dimension.FLAT: "flatFee"}
    charging: dict[str, Decimal] = {}
    idle: dict[str, Decimal | int] = {}
    for element in tariff.elements:
        for component in element.price_components:
            name = names.get(component.type)
            if name is not None and name not in charging:
                charging[name] = _incl(component)
            elif component.type is Dimension.PARKING_TIME and "hourPrice" not in idle:
                idle["hourPrice"] = _incl(component)
                grace = element.restrictions.min_duration if element.restrictions is not None else None
                if grace:
                    idle["graceMinutes"] = grace // 60
    return charging, idle


@dataclasses.dataclass(slots=True)
class ShownCost:
    """A running session's cost as last shown on the charger's display, kept by :func:`session_cost`'s caller
    between the periodic updates and fed only with what was stored since (:func:`_shown_fed`), so an update
    costs the same late in a long session as early; built again from all the session's stored samples when it
    is not kept (a restart) or no longer fits."""

    live: LiveCost
    #: the session's stored meter samples read so far, and the newest one's timestamp (read after it next)
    rows: int
    read_until: datetime | None
    #: the state changes fed, in order (they are read again each time, a handful, and must begin with these)
    states: tuple[StateChange, ...]
    #: the transaction's start register as priced (a reading at the start when no sample is there)
    meter_start: tuple[bool, float | None]
    #: the prices of the latest version, for the display (:func:`display_prices`)
    prices: tuple[dict[str, Decimal], dict[str, Decimal | int]]


def session_cost(
    db: Session, transaction_id: int, at: datetime, config: CsmsConfig, kept: dict[int, ShownCost] | None = None
) -> SessionCost | None:
    """The running session's cost at ``at`` for the charger's display; None when it has ended or has no tariff.

    ``kept``: the caller's costs of running sessions by transaction id, from the previous updates; this one's is
    fed with what was stored since, or built again and kept (the same Decimal as pricing it all again, which
    :func:`price` does)."""
    tx = db.get(Transaction, transaction_id)
    if tx is None or tx.stopped_at is not None or tx.evse_id is None:
        return None
    stop = max(at, tx.started_at or at)
    tariff = tariffs.resolve(db, tx.station_id, tx.evse_id, group_of(db, tx.id_token))
    shown = None if kept is None else kept.pop(tx.id, None)
    if tariff is None:
        return None
    start = tx.started_at or tx.meter_start_at or stop
    priced_to = max(stop, start)
    states = _states(db, tx, start, priced_to)
    keep = True
    if shown is None or not _shown_fed(db, tx, shown, (tariff.id, tariff.version), priced_to, states):
        rows, newest = transactions.stored_samples_seen(db, tx.id)  # before the samples are read: none is missed
        live, keep, versions, states = _built(db, tx, tariff, priced_to, config)
        meter_start = (tx.meter_start_explicit, tx.meter_start_wh)
        shown = ShownCost(live, rows, newest, tuple(states), meter_start, display_prices(versions[-1][1]))
    if kept is not None and keep:  # not when a reading after the stop was counted at it: built again next time
        kept[tx.id] = shown
    total = shown.live.running.estimate(priced_to).total_cost
    if tx.started_at is None:  # (never: a running session has started) the states as priced from the stop
        states = _states(db, tx, stop, stop)
    charging, idle = shown.prices
    return SessionCost(
        transaction_id=tx.id,
        charger_tx_id=tx.charger_tx_id,
        total=total.incl_vat if total.incl_vat is not None else total.excl_vat,
        at=stop,
        meter_wh=int(tx.last_meter_wh or tx.meter_start_wh or 0),
        charging=not states or states[-1].state is State.CHARGING,
        prices=charging,
        idle_prices=idle,
    )


def _shown_fed(
    db: Session, tx: Transaction, shown: ShownCost, tariff: tuple[str, int], stop: datetime, states: list[StateChange]
) -> bool:
    """Feed ``shown`` with what the session stored since it was last fed; False (it is then spent) when it no
    longer fits: another tariff or version (or one set for later has taken over), another start, a sample stored
    out of order (an offline replay: the count of samples tells) or stamped after ``stop``, other earlier states."""
    live = shown.live
    if (
        live.tariff != tariff
        or live.start != (tx.started_at or tx.meter_start_at or stop)
        or shown.meter_start != (tx.meter_start_explicit, tx.meter_start_wh)
        or stop < live.fed_until
        or (live.valid_until is not None and stop >= live.valid_until)
        or tuple(states[: len(shown.states)]) != shown.states
    ):
        return False
    rows, _ = transactions.stored_samples_seen(db, tx.id)  # before the samples are read: none is missed
    readings, read, newest = transactions.readings_after(db, tx.id, shown.read_until)
    if rows != shown.rows + read or (newest is not None and newest > stop):
        return False  # a sample stored out of order (at or before one read), or stamped after the stop
    if not _feed(live, readings, states[len(shown.states) :], stop):
        return False
    shown.rows += read
    shown.read_until = newest or shown.read_until
    shown.states = tuple(states)
    live.checked_at = stop
    return True


def receipt_text(row: Cdr) -> str:
    """One line for the charger's display at the end of a session."""
    hours = Decimal(row.total_time)
    minutes = int(hours * 60)
    return (
        f"Total {row.total_cost_incl_vat} {row.currency} incl. VAT: {Decimal(row.total_energy).normalize():f} kWh,"
        f" {minutes // 60}:{minutes % 60:02d} h"
    )


def stored_for(db: Session, transaction_id: int) -> Cdr | None:
    return db.scalar(select(Cdr).where(Cdr.transaction_id == transaction_id))


def listed(db: Session) -> list[tuple[Cdr, str, str]]:
    """Every CDR with its transaction's station and the transaction id the charger knows, oldest first."""
    rows = db.execute(
        select(Cdr, Transaction.station_id, Transaction.charger_tx_id).join(Transaction).order_by(Cdr.transaction_id)
    ).all()
    return [(cdr, station_id, key) for cdr, station_id, key in rows]


def after_late_values(uow: UnitOfWork, station_id: str, charger_tx_id: str, config: CsmsConfig, now: datetime) -> bool:
    """1.6 meter values of a transaction that has ended (firmware that sends the closing register after the
    StopTransaction, docs/hardware.md): its CDR is rebuilt with them. A running or unpriced one costs nothing.
    Returns whether a CDR was rebuilt."""
    live = uow.live.get(station_id, charger_tx_id)
    if live is not None and (live.status == TransactionStatus.ACTIVE or live.id in uow.live.unpriced):
        return False
    if not charger_tx_id.isdigit():
        return False
    db = uow.session
    uow.flush_batches()
    tx = db.get(Transaction, int(charger_tx_id))
    if tx is None or tx.station_id != station_id or tx.stopped_at is None or stored_for(db, tx.id) is None:
        return False
    rebuilt = _contained(uow, f"transaction {tx.id}'s CDR after late meter values", lambda: close(db, tx, config, now))
    return rebuilt is not None
