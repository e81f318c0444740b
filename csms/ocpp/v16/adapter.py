"""OCPP 1.6J: payloads from the charge point <-> version-neutral events and decisions.

1.6 connector N is reported to the domain as EVSE N, connector 1 (connector 0: the whole charge point),
so ports look alike in both versions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from csms.domain import events as ev
from csms.ocpp.convert import base_unit, format_time, parse_time
from csms.ocpp.errors import ErrorKind, OcppError
from csms.ocpp.versions import OCPP16

VERSION = OCPP16

#: 1.6 has no "Unknown" authorization status; an unknown idTag is Invalid.
AUTH_STATUS = {
    "Unknown": "Invalid",
    "NoCredit": "Invalid",
    "NotAllowedTypeEVSE": "Invalid",
    "NotAtThisLocation": "Invalid",
    "NotAtThisTime": "Invalid",
}


def port(connector_id: int) -> tuple[int, int]:
    return (connector_id, 1) if connector_id > 0 else (0, 0)


def samples(meter_values: list[dict[str, Any]]) -> tuple[ev.Sample, ...]:
    """Sampled values in base units (kWh as Wh, kW as W, …)."""
    out: list[ev.Sample] = []
    for meter_value in meter_values:
        timestamp = parse_time(meter_value["timestamp"])
        assert timestamp is not None
        for sv in meter_value["sampledValue"]:
            get = sv.get
            measurand = get("measurand", ev.ENERGY_REGISTER)
            exponent, unit = base_unit(get("unit", "Wh" if measurand.startswith("Energy") else None))
            try:
                value = float(sv["value"])
            except ValueError:
                raise OcppError(
                    ErrorKind.PROPERTY_CONSTRAINT, f"sampledValue.value {sv['value']!r} is not a number"
                ) from None
            if exponent:
                value *= 10.0**exponent
            if not math.isfinite(value):
                problem = "is out of range" if math.isfinite(float(sv["value"])) else "is not a finite number"
                raise OcppError(ErrorKind.PROPERTY_CONSTRAINT, f"sampledValue.value {sv['value']!r} {problem}")
            out.append(ev.sampled(timestamp, measurand, value, unit, get))
    return tuple(out)


def _tx_id(value: int) -> str:
    return str(value)


def _time(p: dict[str, Any], key: str = "timestamp") -> Any:
    return parse_time(p.get(key))


PARSERS: dict[str, Callable[[dict[str, Any]], ev.StationReport]] = {
    "BootNotification": lambda p: ev.BootReported(
        vendor=p["chargePointVendor"],
        model=p["chargePointModel"],
        serial_number=p.get("chargePointSerialNumber") or p.get("chargeBoxSerialNumber"),
        firmware_version=p.get("firmwareVersion"),
    ),
    "Heartbeat": lambda p: ev.HeartbeatReceived(),
    "StatusNotification": lambda p: ev.StatusReported(
        *port(p["connectorId"]),
        status=p["status"],
        state=ev.port_state(p["status"]),
        timestamp=_time(p),
        error_code=p["errorCode"],
        info=p.get("info"),
        vendor_error_code=p.get("vendorErrorCode"),
    ),
    "Authorize": lambda p: ev.AuthorizationRequested(p["idTag"]),
    "StartTransaction": lambda p: ev.TransactionStarted(
        *port(p["connectorId"]),
        timestamp=_time(p),
        id_token=p["idTag"],
        meter_start_wh=float(p["meterStart"]),
        reservation_id=p.get("reservationId"),
    ),
    "StopTransaction": lambda p: ev.TransactionEnded(
        charger_tx_id=_tx_id(p["transactionId"]),
        timestamp=_time(p),
        meter_stop_wh=float(p["meterStop"]),
        reason=p.get("reason", "Local"),
        id_token=p.get("idTag"),
        samples=samples(p.get("transactionData", [])),
    ),
    "MeterValues": lambda p: ev.MeterValuesReported(
        evse_id=p["connectorId"],
        samples=samples(p["meterValue"]),
        charger_tx_id=_tx_id(p["transactionId"]) if "transactionId" in p else None,
    ),
    "DataTransfer": lambda p: ev.VendorDataReceived(p["vendorId"], p.get("messageId"), p.get("data")),
    "FirmwareStatusNotification": lambda p: ev.StationNotice("firmware_status", None, p),
    "DiagnosticsStatusNotification": lambda p: ev.StationNotice("diagnostics_status", None, p),
    # Security extension for 1.6 (OCPP 1.6 Security Whitepaper):
    "SecurityEventNotification": lambda p: ev.StationNotice("security_event", _time(p), p),
    "LogStatusNotification": lambda p: ev.StationNotice("diagnostics_status", None, p),
    "SignedFirmwareStatusNotification": lambda p: ev.StationNotice("firmware_status", None, p),
    "SignCertificate": lambda p: ev.CertificateSigningRequested(p["csr"]),
}

HANDLED_ACTIONS = frozenset(PARSERS)


def to_event(action: str, payload: dict[str, Any]) -> ev.StationReport:
    """Raises OcppError for values the schema allows but the CSMS cannot use."""
    return PARSERS[action](payload)


def _id_tag_info(auth: ev.AuthorizationInfo) -> dict[str, Any]:
    info: dict[str, Any] = {"status": AUTH_STATUS.get(auth.status, auth.status)}
    if auth.expiry is not None:
        info["expiryDate"] = format_time(auth.expiry)
    if auth.group_id:
        info["parentIdTag"] = auth.group_id[:20]
    return info


def to_payload(action: str, decision: ev.Decision) -> dict[str, Any]:
    match decision:
        case ev.BootDecision():
            return {
                "status": decision.status,
                "currentTime": format_time(decision.current_time),
                "interval": decision.interval_s,
            }
        case ev.TimeNow():
            return {"currentTime": format_time(decision.current_time)}
        case ev.AuthorizationInfo():
            return {"idTagInfo": _id_tag_info(decision)}
        case ev.TransactionAck() if action == "StartTransaction":
            assert decision.authorization is not None
            return {"transactionId": decision.transaction_id, "idTagInfo": _id_tag_info(decision.authorization)}
        case ev.TransactionAck():
            return {"idTagInfo": _id_tag_info(decision.authorization)} if decision.authorization else {}
        case ev.DataTransferDecision():
            body: dict[str, Any] = {"status": decision.status}
            if decision.data is not None:
                body["data"] = decision.data if isinstance(decision.data, str) else str(decision.data)
            return body
        case ev.CertificateSigningDecision():
            return {"status": decision.status}
        case _:
            return {}
