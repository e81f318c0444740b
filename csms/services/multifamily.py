"""Multifamily garages: properties and units, onboarding by invitation, access passes, and the monthly
statement per unit with the owner's reconciliation against the site meter.

* An **invitation** is a one-time code (only its SHA-256 is stored) for a resident of a unit, a visitor or
  property staff. Redeeming it creates the person's id token (or takes theirs) and an **access pass**; a
  resident's unit gets a billing account (``unit:<property>:<unit>``) that pays for its tokens.
* **Access**: at a property's stations a token needs a pass valid now — its window, its local hours, its energy
  cap. Otherwise Authorize answers ``NotAtThisLocation`` or ``NotAtThisTime`` (1.6: ``Invalid``).
* **Statements**: a unit's sessions of a local month at the property's stations, priced by cost recovery
  (energy × utility rate × (1 + margin)) or as a flat monthly fee with an energy allowance and the rest at
  cost recovery. The **reconciliation** sets what every unit and visitor was billed against what the site
  meter measured; the difference is the common area's (and losses').
* **Posting** a statement debits the unit's billing account with its lines (reference
  ``statement:<property>:<unit>:<YYYY-MM>``): posted again unchanged it stays, corrected (a late session, a
  changed term) its lines are reversed and the new ones posted. A resident's session at the property's own
  stations is therefore not debited on its own (:func:`billed_by_statement`): the statement bills it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, bindparam, func, select
from sqlalchemy.orm import Session

from csms.domain import money
from csms.services import authorization, billing, rows
from csms.services.errors import Conflict, Invalid, NotFound
from csms.store.bulk import Bulk
from csms.store.models import (
    AccessPass,
    BillingAccount,
    IdToken,
    Invitation,
    LedgerEntry,
    Property,
    PropertyUnit,
    SiteEvse,
    SiteMeterReading,
    Transaction,
)

KINDS = ("resident", "visitor", "staff")
MODES = ("cost_recovery", "flat_fee")
_HOURS = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$")


# ---- properties and units -------------------------------------------------------------------------------------
def create_property(  # noqa: PLR0913 - one keyword-only argument per term of the property
    db: Session,
    property_id: str,
    *,
    name: str,
    site_id: str | None,
    currency: str,
    billing_mode: str,
    utility_rate: str,
    now: datetime,
    margin_pct: str = "0",
    flat_fee: str = "0",
    allowance_kwh: str = "0",
    vat_pct: str = "0",
    tz: str = "UTC",
) -> Property:
    if db.get(Property, property_id) is not None:
        raise Conflict(f"property {property_id!r} exists")
    if billing_mode not in MODES:
        raise Invalid(f"billing_mode: one of {', '.join(MODES)}")
    try:
        money.minor_units(currency)
    except money.UnknownCurrency as exc:
        raise Invalid(f"currency: {exc}") from None
    for field, value in (("utility_rate", utility_rate), ("margin_pct", margin_pct), ("flat_fee", flat_fee),
                         ("allowance_kwh", allowance_kwh), ("vat_pct", vat_pct)):  # fmt: skip
        _amount(field, value)
    _zone(tz)
    row = Property(id=property_id, name=name, site_id=site_id, tz=tz, currency=currency, billing_mode=billing_mode,
                   utility_rate=utility_rate, margin_pct=margin_pct, flat_fee=flat_fee, allowance_kwh=allowance_kwh,
                   vat_pct=vat_pct, created_at=now)  # fmt: skip
    db.add(row)
    db.flush()
    return row


def get_property(db: Session, property_id: str) -> Property:
    return rows.found(db, Property, property_id, "property")


def find_property(db: Session, property_id: str) -> Property | None:
    return db.get(Property, property_id)


def units(db: Session, property_id: str) -> list[PropertyUnit]:
    stmt = select(PropertyUnit).where(PropertyUnit.property_id == property_id)
    return list(db.scalars(stmt.order_by(PropertyUnit.name)))


def add_unit(db: Session, property_id: str, name: str, *, now: datetime) -> PropertyUnit:
    """A unit, with the billing account that pays for its residents' sessions."""
    prop = get_property(db, property_id)
    if db.scalar(select(PropertyUnit).where(PropertyUnit.property_id == property_id, PropertyUnit.name == name)):
        raise Conflict(f"unit {name!r} exists at {property_id!r}")
    account_id = f"unit:{property_id}:{name}"[:36]
    if db.get(BillingAccount, account_id) is None:
        billing.create_account(db, account_id, kind="property", name=f"{prop.name}, unit {name}", billing="postpaid",
                               currency=prop.currency, now=now)  # fmt: skip
    unit = PropertyUnit(property_id=property_id, name=name, account_id=account_id)
    db.add(unit)
    db.flush()
    return unit


def unit_by_name(db: Session, property_id: str, name: str) -> PropertyUnit:
    unit = db.scalar(select(PropertyUnit).where(PropertyUnit.property_id == property_id, PropertyUnit.name == name))
    if unit is None:
        raise NotFound(f"unit {name!r} not found at {property_id!r}")
    return unit


# ---- invitations and passes -----------------------------------------------------------------------------------
def invite(  # noqa: PLR0913 - one keyword-only argument per term of the invitation
    db: Session,
    property_id: str,
    code: str,
    *,
    kind: str,
    now: datetime,
    unit: str | None = None,
    valid_days: int = 14,
    pass_days: int | None = None,
    max_kwh: float | None = None,
) -> Invitation:
    """An invitation redeemable with ``code`` (the caller makes it unguessable; only its hash is kept)."""
    get_property(db, property_id)
    if kind not in KINDS:
        raise Invalid(f"kind: one of {', '.join(KINDS)}")
    if kind == "resident" and unit is None:
        raise Invalid("unit: a resident's invitation names the unit")
    unit_row = unit_by_name(db, property_id, unit) if unit is not None else None
    if kind == "visitor" and pass_days is None:
        pass_days = 1
    row = Invitation(code_hash=_hash(code), property_id=property_id, unit_id=None if unit_row is None else unit_row.id,
                     kind=kind, expires_at=now + timedelta(days=valid_days), pass_days=pass_days, max_kwh=max_kwh,
                     created_at=now)  # fmt: skip
    db.add(row)
    db.flush()
    return row


def redeem(
    db: Session, code: str, *, holder: str, now: datetime, id_token: str | None = None, new_token: str,
    hours: str | None = None,
) -> AccessPass:  # fmt: skip
    """Turn an invitation into a token (the person's own ``id_token``, or ``new_token``) and an access pass; a
    resident's token is paid for by their unit's account. An invitation is redeemed once, before it expires."""
    invitation = db.get(Invitation, _hash(code))
    if invitation is None:
        raise NotFound("no such invitation")
    if invitation.redeemed_at is not None:
        raise Conflict("this invitation was already used")
    if invitation.expires_at <= now:
        raise Invalid("this invitation has expired")
    if hours is not None and not _HOURS.match(hours):
        raise Invalid("hours: HH:MM-HH:MM")
    token = id_token or new_token
    if db.get(IdToken, token) is None:
        authorization.create(db, token, now, group_id=f"{invitation.kind}s")
    valid_to = None if invitation.pass_days is None else now + timedelta(days=invitation.pass_days)
    access = AccessPass(property_id=invitation.property_id, id_token=token, unit_id=invitation.unit_id,
                        kind=invitation.kind, holder=holder[:200], valid_from=now, valid_to=valid_to, hours=hours,
                        max_kwh=invitation.max_kwh)  # fmt: skip
    db.add(access)
    if invitation.kind == "resident" and invitation.unit_id is not None:
        unit = db.get(PropertyUnit, invitation.unit_id)
        if unit is not None and unit.account_id is not None:
            billing.link_token(db, unit.account_id, token)
    invitation.redeemed_at, invitation.redeemed_token = now, token
    db.flush()
    return access


def passes(db: Session, property_id: str) -> list[AccessPass]:
    get_property(db, property_id)
    return list(db.scalars(select(AccessPass).where(AccessPass.property_id == property_id).order_by(AccessPass.id)))


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


# ---- access ---------------------------------------------------------------------------------------------------
#: Both straight to the driver (``Bulk.fetch_one``): they run at every 1.6 StartTransaction.
_SITE_OF_STATION = Bulk(select(SiteEvse.site_id).where(SiteEvse.station_id == bindparam("station")).limit(1))
_PROPERTY_AT = Bulk(select(Property.id).where(Property.site_id == bindparam("site")).limit(1))


def property_of_station(db: Session, station_id: str) -> Property | None:
    site = db.scalar(select(SiteEvse.site_id).where(SiteEvse.station_id == station_id).limit(1))
    return None if site is None else db.scalar(select(Property).where(Property.site_id == site))


def in_a_garage(connection: Connection, station_id: str) -> bool:
    """Does :func:`property_of_station` find a property? Read with Core statements (no ORM session)."""
    site = _SITE_OF_STATION.fetch_one(connection, {"station": station_id})
    return site is not None and _PROPERTY_AT.fetch_one(connection, {"site": site[0]}) is not None


def access(db: Session, id_token: str, station_id: str, now: datetime) -> str | None:
    """None when the token may charge at the station now (or the station is in no property's garage), else the
    OCPP 2.0.1 status that says why not."""
    prop = property_of_station(db, station_id)
    if prop is None:
        return None
    held = list(
        db.scalars(select(AccessPass).where(AccessPass.property_id == prop.id, AccessPass.id_token == id_token))
    )
    if not held:
        return "NotAtThisLocation"
    zone = _zone(prop.tz)
    for p in held:
        in_window = p.valid_from <= now and (p.valid_to is None or now < p.valid_to) and _in_hours(p.hours, now, zone)
        if in_window and (p.max_kwh is None or _used_kwh(db, prop, id_token, p.valid_from) < p.max_kwh):
            return None
    return "NotAtThisTime"


def _in_hours(hours: str | None, now: datetime, zone: ZoneInfo) -> bool:
    if hours is None:
        return True
    start, end = (time.fromisoformat(part) for part in hours.split("-"))
    local = now.astimezone(zone).time()
    return start <= local < end if start <= end else (local >= start or local < end)  # a window over midnight


def _used_kwh(db: Session, prop: Property, id_token: str, since: datetime) -> float:
    rows = db.scalars(
        select(Transaction).where(
            Transaction.id_token == id_token,
            Transaction.started_at >= since,
            Transaction.station_id.in_(_stations(db, prop)),
        )
    )
    return sum(t.energy_wh for t in rows) / 1000


def _stations(db: Session, prop: Property) -> list[str]:
    if prop.site_id is None:
        return []
    return list(db.scalars(select(SiteEvse.station_id).where(SiteEvse.site_id == prop.site_id).distinct()))


# ---- statements and reconciliation ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Statement:
    property_id: str
    unit: str
    month: str
    currency: str
    sessions: int
    energy_wh: float
    lines: list[dict[str, Any]]
    total_minor: int
    vat_minor: int


def statement(db: Session, property_id: str, unit_name: str, year: int, month: int) -> Statement:
    """What the unit's residents charged in the local month and what it costs them."""
    prop = get_property(db, property_id)
    unit = unit_by_name(db, property_id, unit_name)
    start, end = _month(prop, year, month)
    tokens = list(db.scalars(select(AccessPass.id_token).where(AccessPass.unit_id == unit.id).distinct()))
    sessions = _sessions(db, prop, start, end, tokens)
    energy_wh = sum(t.energy_wh for t in sessions)
    lines = _price(prop, energy_wh)
    total = sum(line["amount_minor"] for line in lines)
    vat = _vat(prop, total)
    return Statement(prop.id, unit.name, f"{year}-{month:02d}", prop.currency, len(sessions), round(energy_wh, 3),
                     lines, total, vat)  # fmt: skip


def post_statement(
    db: Session, property_id: str, unit_name: str, year: int, month: int, *, now: datetime, by: str | None = None
) -> tuple[Statement, billing.Posting]:
    """Debit the unit's account with its statement of the local month (once; a corrected one replaces it). A
    month can be posted from its first day on: a month still running is posted as it stands and corrected later.
    """
    prop = get_property(db, property_id)
    unit = unit_by_name(db, property_id, unit_name)
    start, end = _month(prop, year, month)
    if now < start:
        raise Invalid(f"{year}-{month:02d} has not begun at {prop.id!r}")
    if unit.account_id is None:
        raise Invalid(f"unit {unit_name!r} has no billing account")
    found = statement(db, property_id, unit_name, year, month)
    vats = _split_vat(prop, [line["amount_minor"] for line in found.lines], found.vat_minor)
    lines = [(f"{found.month} statement, unit {unit.name}: {line['description']}", line["amount_minor"], vat)
             for line, vat in zip(found.lines, vats, strict=True)]  # fmt: skip
    at = min(now, end - timedelta(seconds=1))
    posting = billing.post_document(db, unit.account_id, kind="statement", reference=statement_reference(found),
                                    lines=lines, at=at, now=now, by=by)  # fmt: skip
    return found, posting


def statement_reference(found: Statement) -> str:
    return f"statement:{found.property_id}:{found.unit}:{found.month}"


def posted_minor(db: Session, property_id: str, unit_name: str, year: int, month: int) -> int:
    """What the unit's ledger holds for its statement of the month: its statement lines net of reversals."""
    unit = unit_by_name(db, property_id, unit_name)
    if unit.account_id is None:
        return 0
    reference = f"statement:{property_id}:{unit.name}:{year}-{month:02d}"
    return int(
        db.scalar(
            select(func.coalesce(func.sum(LedgerEntry.amount_minor), 0)).where(
                LedgerEntry.account_id == unit.account_id, LedgerEntry.reference == reference
            )
        )
        or 0
    )


def billed_by_statement(db: Session, id_token: str | None, station_id: str) -> bool:
    """Whether a session of ``id_token`` at ``station_id`` is a unit resident's at their property's stations,
    billed by the unit's monthly statement rather than on its own."""
    if id_token is None:
        return False
    prop = property_of_station(db, station_id)
    if prop is None:
        return False
    return (
        db.scalar(
            select(AccessPass.id)
            .where(AccessPass.property_id == prop.id, AccessPass.id_token == id_token, AccessPass.unit_id.is_not(None))
            .limit(1)
        )
        is not None
    )


def _split_vat(prop: Property, amounts: list[int], vat_minor: int) -> list[int]:
    """The statement's VAT over its lines: each line's share, the last one taking the rounding remainder."""
    if not amounts:
        return []
    shares = [_vat(prop, amount) for amount in amounts[:-1]]
    return [*shares, vat_minor - sum(shares)]


def _price(prop: Property, energy_wh: float) -> list[dict[str, Any]]:
    rate = Decimal(prop.utility_rate) * (1 + Decimal(prop.margin_pct) / 100)
    kwh = Decimal(str(round(energy_wh, 3))) / 1000
    if prop.billing_mode == "cost_recovery":
        return [_line(f"{kwh:.3f} kWh at {rate:.4f} {prop.currency}/kWh (utility rate + {prop.margin_pct} %)",
                      kwh * rate, prop.currency)]  # fmt: skip
    allowance = Decimal(prop.allowance_kwh)
    over = max(Decimal(0), kwh - allowance)
    lines = [_line(f"monthly fee, {allowance:g} kWh included", Decimal(prop.flat_fee), prop.currency)]
    if over:
        lines.append(_line(f"{over:.3f} kWh beyond the allowance at {rate:.4f} {prop.currency}/kWh", over * rate,
                           prop.currency))  # fmt: skip
    return lines


def _line(text: str, amount: Decimal, currency: str) -> dict[str, Any]:
    return {"description": text, "amount_minor": money.to_minor(amount, currency)}


def _vat(prop: Property, gross_minor: int) -> int:
    """The VAT included in a gross amount at the property's rate."""
    rate = Decimal(prop.vat_pct) / 100
    return int((Decimal(gross_minor) * rate / (1 + rate)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def reconciliation(db: Session, property_id: str, year: int, month: int) -> dict[str, Any]:
    """Energy billed to units and visitors against energy the site meter measured in the local month."""
    prop = get_property(db, property_id)
    start, end = _month(prop, year, month)
    units = list(
        db.scalars(select(PropertyUnit).where(PropertyUnit.property_id == property_id).order_by(PropertyUnit.name))
    )
    per_unit = {u.name: statement(db, property_id, u.name, year, month) for u in units}
    unit_tokens = set(
        db.scalars(
            select(AccessPass.id_token).where(AccessPass.property_id == property_id, AccessPass.unit_id.is_not(None))
        )
    )
    others = [t for t in _sessions(db, prop, start, end, None) if t.id_token not in unit_tokens]
    billed_wh = sum(s.energy_wh for s in per_unit.values()) + sum(t.energy_wh for t in others)
    measured_wh = _metered_wh(db, prop, start, end)
    return {
        "property_id": property_id,
        "month": f"{year}-{month:02d}",
        "units": {
            name: {
                "energy_kwh": round(s.energy_wh / 1000, 3),
                "billed": str(money.from_minor(s.total_minor, s.currency)),
            }
            for name, s in per_unit.items()
        },
        "visitors_and_staff_kwh": round(sum(t.energy_wh for t in others) / 1000, 3),
        "billed_kwh": round(billed_wh / 1000, 3),
        "site_meter_kwh": None if measured_wh is None else round(measured_wh / 1000, 3),
        "common_area_kwh": None if measured_wh is None else round((measured_wh - billed_wh) / 1000, 3),
        "billed_total": str(money.from_minor(sum(s.total_minor for s in per_unit.values()), prop.currency)),
        "currency": prop.currency,
    }


def _sessions(
    db: Session, prop: Property, start: datetime, end: datetime, tokens: Iterable[str] | None
) -> list[Transaction]:
    stmt = select(Transaction).where(
        Transaction.station_id.in_(_stations(db, prop)), Transaction.started_at >= start, Transaction.started_at < end
    )
    if tokens is not None:
        stmt = stmt.where(Transaction.id_token.in_(list(tokens)))
    return list(db.scalars(stmt.order_by(Transaction.started_at, Transaction.id)))


def _metered_wh(db: Session, prop: Property, start: datetime, end: datetime) -> float | None:
    """The site meter's energy over the month: its power readings integrated (each held until the next)."""
    if prop.site_id is None:
        return None
    rows = list(
        db.execute(
            select(SiteMeterReading.timestamp, SiteMeterReading.power_w)
            .where(SiteMeterReading.site_id == prop.site_id, SiteMeterReading.timestamp < end)
            .where(SiteMeterReading.timestamp >= start - timedelta(hours=1), SiteMeterReading.power_w.is_not(None))
            .order_by(SiteMeterReading.timestamp)
        )
    )
    if not rows:
        return None
    total = 0.0
    for (at, power), (following, _) in zip(rows, [*rows[1:], (end, None)], strict=True):
        a, b = max(at, start), min(following, end)
        if b > a and power is not None:
            total += power * (b - a).total_seconds() / 3600
    return total


def _month(prop: Property, year: int, month: int) -> tuple[datetime, datetime]:
    if not 1 <= month <= 12:
        raise Invalid("month: 1 to 12")
    zone = _zone(prop.tz)
    start = datetime(year, month, 1, tzinfo=zone)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid(f"tz: unknown time zone {name!r}") from None


def _amount(field: str, value: str) -> Decimal:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise Invalid(f"{field}: not a number: {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise Invalid(f"{field}: a number ≥ 0")
    return amount


def count_units(db: Session, property_id: str) -> int:
    return int(
        db.scalar(select(func.count()).select_from(PropertyUnit).where(PropertyUnit.property_id == property_id)) or 0
    )
