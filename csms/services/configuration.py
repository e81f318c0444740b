"""A station's settings as the CSMS last learned them: 2.0.1 device-model variables (NotifyReport, GetVariables,
SetVariables) and 1.6 configuration keys (GetConfiguration, ChangeConfiguration), one row per component,
EVSE, variable and attribute. A value is kept only when the station reported it or said it took it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from csms.ocpp.outgoing import VariableResult
from csms.services import station_rows
from csms.store.models import StationVariable

#: The component column of a 1.6 configuration key (1.6 has no components).
NO_COMPONENT = ""
#: Answers that carry the station's value (a get) or say it took the value sent (a set).
_KNOWN = ("Accepted", "RebootRequired")


def as_dict(row: StationVariable) -> dict[str, Any]:
    return {
        "component": row.component or None,
        "evse_id": row.evse_id,
        "variable": row.variable,
        "instance": row.instance or None,
        "attribute": row.attribute,
        "value": row.value,
        "readonly": row.readonly,
        "updated_at": row.updated_at.isoformat(),
    }


def listed(
    db: Session, station_id: str, *, component: str | None = None, variable: str | None = None
) -> list[StationVariable]:
    """Raises NotFound: no such station."""
    station_rows.get(db, station_id)
    query = select(StationVariable).where(StationVariable.station_id == station_id)
    if component is not None:
        query = query.where(StationVariable.component == component)
    if variable is not None:
        query = query.where(StationVariable.variable == variable)
    order = (StationVariable.component, StationVariable.evse_id, StationVariable.variable, StationVariable.attribute)
    return list(db.scalars(query.order_by(*order)))


def remember_results(db: Session, station_id: str, results: list[VariableResult], now: datetime) -> int:
    """Keep what a station's answer told of its settings; returns how many rows it touched."""
    kept = 0
    for result in results:
        if result.status in _KNOWN and result.value is not None:
            ref = result.ref
            _upsert(db, station_id, (ref.component or NO_COMPONENT, ref.evse_id, ref.variable, ref.instance or "",
                                     "Actual"), result.value, result.readonly, now)  # fmt: skip
            kept += 1
    return kept


def remember_report(db: Session, station_id: str, report_data: list[dict[str, Any]], now: datetime) -> None:
    """A 2.0.1 NotifyReport's ``reportData``: every attribute of every variable it lists."""
    for item in report_data:
        component = item["component"]["name"]
        evse_id = item["component"].get("evse", {}).get("id", 0)
        variable = item["variable"]["name"]
        instance = item["variable"].get("instance", "")
        for attribute in item["variableAttribute"]:
            key = (component, evse_id, variable, instance, attribute.get("type", "Actual"))
            _upsert(db, station_id, key, attribute.get("value"), attribute.get("mutability") == "ReadOnly", now)


def _upsert(
    db: Session,
    station_id: str,
    key: tuple[str, int, str, str, str],
    value: str | None,
    readonly: bool | None,
    now: datetime,
) -> None:
    component, evse_id, variable, instance, attribute = key
    row = db.scalars(
        select(StationVariable).where(
            StationVariable.station_id == station_id,
            StationVariable.component == component,
            StationVariable.evse_id == evse_id,
            StationVariable.variable == variable,
            StationVariable.instance == instance,
            StationVariable.attribute == attribute,
        )
    ).first()
    if row is None:
        row = StationVariable(
            station_id=station_id, component=component, evse_id=evse_id, variable=variable, instance=instance,
            attribute=attribute,
        )  # fmt: skip
        db.add(row)
    row.value = value
    if readonly is not None:
        row.readonly = readonly
    row.updated_at = now
    db.flush()


#: Where a station says how many settings one message may carry: 1.6 a key, 2.0.1 a device-model variable.
_PER_MESSAGE = {
    ("1.6", "get"): (NO_COMPONENT, "GetConfigurationMaxKeys", ""),
    ("2.0.1", "get"): ("DeviceDataCtrlr", "ItemsPerMessage", "GetVariables"),
    ("2.0.1", "set"): ("DeviceDataCtrlr", "ItemsPerMessage", "SetVariables"),
}


def per_message(db: Session, station_id: str, version: str, direction: str) -> int | None:
    """How many settings the station takes in one GetConfiguration/GetVariables (``get``) or SetVariables
    (``set``), as it last reported it (None: not known)."""
    name = _PER_MESSAGE.get(("2.0.1" if version != "1.6" else "1.6", direction))
    if name is None:
        return None
    component, variable, instance = name
    value = db.scalar(
        select(StationVariable.value).where(
            StationVariable.station_id == station_id,
            StationVariable.component == component,
            StationVariable.evse_id == 0,
            StationVariable.variable == variable,
            StationVariable.instance == instance,
            StationVariable.attribute == "Actual",
        )
    )
    return int(value) if value is not None and value.isdigit() and int(value) > 0 else None
