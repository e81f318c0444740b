"""OCPP 2.0.1: payloads from the charging station <-> version-neutral events and decisions."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from csms.domain import events as ev
from csms.ocpp.convert import base_unit, format_time, parse_time
from csms.ocpp.errors import ErrorKind, OcppError
from csms.ocpp.versions import OCPP201

VERSION = OCPP201


def _scaled(value: float, multiplier: int) -> float:
    """``value * 10**multiplier`` as a finite float.

    Raises:
        OcppError: PROPERTY_CONSTRAINT when the result is not a finite number. (The exponent is applied as a
            float: ``10 ** multiplier`` as an int would take minutes for a multiplier in the millions.)
    """
    try:
        scaled = float(value) * 10.0**multiplier
    except OverflowError:
        scaled = math.inf
    if not math.isfinite(scaled):
        raise OcppError(
            ErrorKind.PROPERTY_CONSTRAINT, f"sampledValue {value!r} x 10^{multiplier} is not a finite number"
        )
    return scaled


_NO_UNIT: dict[str, Any] = {}


def samples(meter_values: list[dict[str, Any]]) -> tuple[ev.Sample, ...]:
    """Sampled values in base units: the multiplier applied, kWh as Wh, kW as W, …"""
    out: list[ev.Sample] = []
    for meter_value in meter_values:
        timestamp = parse_time(meter_value["timestamp"])
        assert timestamp is not None
        for sv in meter_value["sampledValue"]:
            get = sv.get
            measurand = get("measurand", ev.ENERGY_REGISTER)
            unit_of_measure = get("unitOfMeasure", _NO_UNIT)
            exponent, unit = base_unit(unit_of_measure.get("unit", "Wh" if measurand.startswith("Energy") else None))
            value = _scaled(sv["value"], unit_of_measure.get("multiplier", 0) + exponent)
            out.append(ev.sampled(timestamp, measurand, value, unit, get))
    return tuple(out)


def _transaction_event(p: dict[str, Any]) -> ev.StationReport:
    info = p["transactionInfo"]
    evse = p.get("evse", {})
    token = p.get("idToken", {}).get("idToken")
    common: dict[str, Any] = {
        "timestamp": parse_time(p["timestamp"]),
        "seq_no": p["seqNo"],
        "offline": p.get("offline", False),
        "trigger_reason": p["triggerReason"],
        "samples": samples(p.get("meterValue", [])),
    }
    kind = p["eventType"]
    reserved = {"reservation_id": p["reservationId"]} if "reservationId" in p else {}
    if kind == "Started":
        return ev.TransactionStarted(
            evse_id=evse.get("id", 0),
            connector_id=evse.get("connectorId", 1),
            id_token=token,
            charger_tx_id=info["transactionId"],
            remote_start_id=info.get("remoteStartId"),
            charging_state=info.get("chargingState"),
            **reserved,
            **common,
        )
    if kind == "Updated":
        return ev.TransactionUpdated(
            charger_tx_id=info["transactionId"],
            evse_id=evse.get("id"),
            connector_id=evse.get("connectorId"),
            id_token=token,
            charging_state=info.get("chargingState"),
            **reserved,
            **common,
        )
    return ev.TransactionEnded(
        charger_tx_id=info["transactionId"],
        reason=info.get("stoppedReason", "Local"),
        id_token=token,
        evse_id=evse.get("id"),
        connector_id=evse.get("connectorId"),
        charging_state=info.get("chargingState"),
        **common,
    )


def _notice(kind: str, time_key: str | None = None) -> Callable[[dict[str, Any]], ev.StationReport]:
    return lambda p: ev.StationNotice(kind, parse_time(p.get(time_key)) if time_key else None, p)


def _charging_needs(p: dict[str, Any]) -> ev.ChargingNeedsReported:
    needs = p["chargingNeeds"]
    energy = None
    for part in ("acChargingParameters", "dcChargingParameters"):  # energyAmount: Wh
        if needs.get(part, {}).get("energyAmount") is not None:
            energy = float(needs[part]["energyAmount"])
    ac, dc = needs.get("acChargingParameters") or {}, needs.get("dcChargingParameters") or {}
    max_a = float(ac["evMaxCurrent"]) if "evMaxCurrent" in ac else None
    max_w = None
    if dc:
        max_w = float(dc["evMaxPower"]) if "evMaxPower" in dc else float(dc["evMaxCurrent"]) * dc["evMaxVoltage"]
    return ev.ChargingNeedsReported(
        p["evseId"], energy, parse_time(needs.get("departureTime")), p, max_a, max_w, p.get("maxScheduleTuples")
    )


def _ev_schedule(p: dict[str, Any]) -> ev.EvScheduleReported:
    time_base = parse_time(p["timeBase"])
    assert time_base is not None  # required by the schema
    return ev.EvScheduleReported(p["evseId"], time_base, p["chargingSchedule"])


#: Hex digits of a hash of each HashAlgorithmEnumType.
HASH_HEX_DIGITS = {"SHA256": 64, "SHA384": 96, "SHA512": 128}


def certificate_id(data: dict[str, Any]) -> ev.CertificateId:
    """OCSPRequestDataType; hashes and serial number must be hex (RFC 6960 puts them in OCTET STRINGs and an
    INTEGER), the hashes as long as the algorithm's digest.

    Raises:
        OcppError: PROPERTY_CONSTRAINT for a value that is not hex, or a hash of the wrong length.
    """
    fields = (data["issuerNameHash"], data["issuerKeyHash"], data["serialNumber"])
    try:
        for value in fields:
            int(value, 16)
    except ValueError:
        raise OcppError(ErrorKind.PROPERTY_CONSTRAINT, "OCSPRequestData hashes and serialNumber must be hex") from None
    digits = HASH_HEX_DIGITS[data["hashAlgorithm"]]
    if len(fields[0]) != digits or len(fields[1]) != digits:
        raise OcppError(ErrorKind.PROPERTY_CONSTRAINT, f"{data['hashAlgorithm']} hashes have {digits} hex digits")
    return ev.CertificateId(
        data["hashAlgorithm"],
        fields[0].lower(),
        fields[1].lower(),
        fields[2].lower().lstrip("0") or "0",
        data["responderURL"],
    )


def _authorize(p: dict[str, Any]) -> ev.AuthorizationRequested:
    token = p["idToken"]
    contract = tuple(certificate_id(one) for one in p.get("iso15118CertificateHashData", ()))
    card = next((i["additionalIdToken"] for i in token.get("additionalInfo", ()) if i["type"] == ev.PAYMENT_CARD), None)
    return ev.AuthorizationRequested(token["idToken"], token["type"], p.get("certificate"), contract, card)


PARSERS: dict[str, Callable[[dict[str, Any]], ev.StationReport]] = {
    "BootNotification": lambda p: ev.BootReported(
        vendor=p["chargingStation"]["vendorName"],
        model=p["chargingStation"]["model"],
        serial_number=p["chargingStation"].get("serialNumber"),
        firmware_version=p["chargingStation"].get("firmwareVersion"),
        reason=p["reason"],
    ),
    "Heartbeat": lambda p: ev.HeartbeatReceived(),
    "StatusNotification": lambda p: ev.StatusReported(
        p["evseId"],
        p["connectorId"],
        status=p["connectorStatus"],
        state=ev.port_state(p["connectorStatus"]),
        timestamp=parse_time(p["timestamp"]),
    ),
    "Authorize": _authorize,
    "GetCertificateStatus": lambda p: ev.CertificateStatusRequested(certificate_id(p["ocspRequestData"])),
    "Get15118EVCertificate": lambda p: ev.EvCertificateRequested(
        p["iso15118SchemaVersion"], p["action"], p["exiRequest"]
    ),
    "TransactionEvent": _transaction_event,
    "MeterValues": lambda p: ev.MeterValuesReported(evse_id=p["evseId"], samples=samples(p["meterValue"])),
    "DataTransfer": lambda p: ev.VendorDataReceived(p["vendorId"], p.get("messageId"), p.get("data")),
    "FirmwareStatusNotification": _notice("firmware_status"),
    "LogStatusNotification": _notice("diagnostics_status"),
    "SecurityEventNotification": _notice("security_event", "timestamp"),
    "NotifyReport": _notice("report", "generatedAt"),
    "NotifyEvent": _notice("device_event", "generatedAt"),
    "NotifyMonitoringReport": _notice("monitoring_report", "generatedAt"),
    "NotifyChargingLimit": _notice("charging_limit"),
    "ClearedChargingLimit": _notice("charging_limit_cleared"),
    "ReportChargingProfiles": _notice("charging_profiles_report"),
    "ReservationStatusUpdate": lambda p: ev.ReservationStatusReported(
        p["reservationId"], p["reservationUpdateStatus"], p
    ),
    "NotifyCustomerInformation": _notice("customer_information", "generatedAt"),
    "NotifyDisplayMessages": _notice("display_messages"),
    "PublishFirmwareStatusNotification": _notice("publish_firmware_status"),
    "NotifyEVChargingNeeds": _charging_needs,
    "NotifyEVChargingSchedule": _ev_schedule,
    "SignCertificate": lambda p: ev.CertificateSigningRequested(
        p["csr"], p.get("certificateType", "ChargingStationCertificate")
    ),
}

HANDLED_ACTIONS = frozenset(PARSERS)


def to_event(action: str, payload: dict[str, Any]) -> ev.StationReport:
    return PARSERS[action](payload)


def _id_token_info(auth: ev.AuthorizationInfo) -> dict[str, Any]:
    info: dict[str, Any] = {"status": auth.status}
    if auth.expiry is not None:
        info["cacheExpiryDateTime"] = format_time(auth.expiry)
    if auth.group_id:
        info["groupIdToken"] = {"idToken": auth.group_id, "type": "Central"}
    if auth.price_text:
        info["personalMessage"] = {"format": "UTF8", "content": auth.price_text[:512]}
    return info


def _transaction_answer(ack: ev.TransactionAck) -> dict[str, Any]:
    """TransactionEventResponse: the token's status when one was given, the cost so far (I02) or the final
    cost (I03) when a tariff applies."""
    body: dict[str, Any] = {"idTokenInfo": _id_token_info(ack.authorization)} if ack.authorization else {}
    if ack.total_cost is not None:
        body["totalCost"] = float(ack.total_cost)
    return body


def _plug_and_charge(
    decision: ev.ContractAuthorization | ev.CertificateStatusAnswer | ev.EvCertificateAnswer,
) -> dict[str, Any]:
    if isinstance(decision, ev.ContractAuthorization):
        return {"idTokenInfo": _id_token_info(decision.token), "certificateStatus": decision.certificate_status}
    if isinstance(decision, ev.CertificateStatusAnswer):
        status = {"status": decision.status}
        return status if decision.ocsp_result is None else {**status, "ocspResult": decision.ocsp_result}
    return {"status": decision.status, "exiResponse": decision.exi_response}


def _status_answer(
    decision: ev.DataTransferDecision | ev.CertificateSigningDecision | ev.EvChargingAnswer,
) -> dict[str, Any]:
    body: dict[str, Any] = {"status": decision.status}
    if isinstance(decision, ev.EvChargingAnswer):
        if decision.reason:
            body["statusInfo"] = {"reasonCode": "ExceedsLimits", "additionalInfo": decision.reason[:512]}
    elif isinstance(decision, ev.DataTransferDecision):
        if decision.data is not None:
            body["data"] = decision.data
    elif decision.reason:
        body["statusInfo"] = {"reasonCode": "InvalidCSR", "additionalInfo": decision.reason[:512]}
    return body


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
            return {"idTokenInfo": _id_token_info(decision)}
        case ev.TransactionAck():
            return _transaction_answer(decision)
        case ev.ContractAuthorization() | ev.CertificateStatusAnswer() | ev.EvCertificateAnswer():
            return _plug_and_charge(decision)
        case ev.DataTransferDecision() | ev.CertificateSigningDecision() | ev.EvChargingAnswer():
            return _status_answer(decision)
        case _:
            return {}
