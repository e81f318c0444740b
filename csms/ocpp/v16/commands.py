"""OCPP 1.6J: the calls the CSMS sends, as 1.6 payloads (the mirror of ``v201/commands.py``)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from csms.ocpp import outgoing
from csms.ocpp.convert import format_time
from csms.ocpp.outgoing import (
    MASK,
    Call,
    ChargingProfile,
    CredentialChange,
    MonitorSpec,
    Reservation,
    ResetKind,
    SignedFirmware,
    VariableRef,
    VariableResult,
    retry_fields,
)

RESET_TYPES: dict[ResetKind, str] = {"soft": "Soft", "hard": "Hard"}
#: 2.0.1 message names that 1.6's TriggerMessage calls otherwise.
TRIGGER_NAMES = {"LogStatusNotification": "DiagnosticsStatusNotification"}
#: 2.0.1 profile purposes that 1.6 calls otherwise.
PURPOSE_NAMES = {"ChargingStationMaxProfile": "ChargePointMaxProfile"}
#: 2.0.1 names of ExtendedTriggerMessage's requested messages that the 1.6 security extension calls otherwise.
EXTENDED_TRIGGER_NAMES = {"SignChargingStationCertificate": "SignChargePointCertificate"}
#: ChangeConfiguration statuses that mean the station took the value (now, or at its next reboot).
_TAKEN = ("Accepted", "RebootRequired")


def remote_start(id_token: str, evse_id: int | None, *, remote_start_id: int, id_token_type: str) -> Call:
    """RemoteStartTransaction: 1.6 has neither a remoteStartId nor token types."""
    payload: dict[str, Any] = {"idTag": id_token}
    if evse_id is not None:
        payload["connectorId"] = evse_id
    return "RemoteStartTransaction", payload


def remote_stop(transaction_id: int, charger_tx_id: str) -> Call:
    """1.6 names a transaction by the integer id we assigned."""
    return "RemoteStopTransaction", {"transactionId": transaction_id}


def reset(kind: ResetKind) -> Call:
    return "Reset", {"type": RESET_TYPES[kind]}


def get_diagnostics(
    location: str,
    request_id: int,
    *,
    start_time: str | None,
    stop_time: str | None,
    log_type: str,
    retries: int | None,
    retry_interval: int | None,
) -> Call:
    """GetDiagnostics (location, startTime/stopTime); 1.6 has no request id and one kind of log."""
    payload: dict[str, Any] = {"location": location, **retry_fields(retries, retry_interval)}
    if start_time:
        payload["startTime"] = start_time
    if stop_time:
        payload["stopTime"] = stop_time
    return "GetDiagnostics", payload


def update_firmware(
    location: str, request_id: int, retrieve_at: str, *, retries: int | None, retry_interval: int | None
) -> Call:
    return "UpdateFirmware", {
        "location": location,
        "retrieveDate": retrieve_at,
        **retry_fields(retries, retry_interval),
    }


def change_availability(evse_id: int, operative: bool) -> Call:
    """Connector 0 is the whole charge point."""
    return "ChangeAvailability", {"connectorId": evse_id, "type": "Operative" if operative else "Inoperative"}


def trigger(message: str, evse_id: int | None) -> Call:
    payload: dict[str, Any] = {"requestedMessage": TRIGGER_NAMES.get(message, message)}
    if evse_id is not None:
        payload["connectorId"] = evse_id
    return "TriggerMessage", payload


def set_charging_profile(profile: ChargingProfile) -> Call:
    """SetChargingProfile. Checked against the schema where every CALL is, in the session's ``send_call``.

    Raises:
        ValueError: a TxProfile bound to a transaction id that is not an integer (1.6 ids are).
    """
    start = profile.start_text
    body: dict[str, Any] = {
        "chargingProfileId": profile.profile_id,
        "stackLevel": profile.stack_level,
        "chargingProfilePurpose": PURPOSE_NAMES.get(profile.purpose, profile.purpose),
        "chargingProfileKind": "Absolute",
        "validFrom": start,
        "chargingSchedule": {
            "chargingRateUnit": profile.unit,
            "startSchedule": start,
            "chargingSchedulePeriod": profile.periods_payload(),
        },
    }
    if profile.purpose == "TxProfile":
        try:
            body["transactionId"] = int(profile.transaction_id or "")
        except ValueError:
            raise ValueError(f"1.6 transaction ids are integers, got {profile.transaction_id!r}") from None
    return "SetChargingProfile", {"connectorId": profile.evse_id, "csChargingProfiles": body}


#: The root certificates of the 1.6 security extension, by their 2.0.1 names (the API's) -> 1.6 names.
ROOT_TYPES = {
    "CSMSRootCertificate": "CentralSystemRootCertificate",
    "ManufacturerRootCertificate": "ManufacturerRootCertificate",
}


def _root_type(certificate_type: str) -> str:
    """Raises ValueError: a type 1.6 does not have (V2G and MO roots are 2.0.1 only)."""
    if certificate_type in ROOT_TYPES.values():
        return certificate_type
    try:
        return ROOT_TYPES[certificate_type]
    except KeyError:
        raise ValueError(f"OCPP 1.6 has no {certificate_type}: use {' or '.join(ROOT_TYPES)}") from None


def certificate_signed(chain_pem: str, certificate_type: str) -> Call:
    """1.6 CertificateSigned has no type: it is always the charge point certificate."""
    return "CertificateSigned", {"certificateChain": chain_pem}


def trigger_certificate_renewal(certificate_type: str) -> Call:
    """ExtendedTriggerMessage SignChargePointCertificate (1.6 has only the station's certificate)."""
    return "ExtendedTriggerMessage", {"requestedMessage": "SignChargePointCertificate"}


def install_certificate(certificate_type: str, certificate_pem: str) -> Call:
    return "InstallCertificate", {"certificateType": _root_type(certificate_type), "certificate": certificate_pem}


def get_installed_certificate_ids(certificate_types: list[str]) -> Call:
    """1.6 asks for one type at a time. Raises ValueError: none or more than one type, or a 2.0.1-only one."""
    if len(certificate_types) != 1:
        raise ValueError("OCPP 1.6 lists one certificate type at a time")
    return "GetInstalledCertificateIds", {"certificateType": _root_type(certificate_types[0])}


def delete_certificate(hash_data: dict[str, str]) -> Call:
    return "DeleteCertificate", {"certificateHashData": hash_data}


# ---- the 1.6 security extension (OCPP 1.6 Security Whitepaper, edition 3) --------------------------------------
def set_password(password: str) -> Call:
    """ChangeConfiguration AuthorizationKey: the password's bytes as hexadecimal digits."""
    return "ChangeConfiguration", {"key": "AuthorizationKey", "value": password.encode().hex()}


def upgrade_profile(profile: int, csms_url: str, slot: int) -> list[Call]:
    """ChangeConfiguration SecurityProfile, then a hard Reset: the charge point comes back at the new profile
    (to the same Central System URL; 1.6 has no network profiles, so ``csms_url`` and ``slot`` are unused)."""
    return [("ChangeConfiguration", {"key": "SecurityProfile", "value": str(profile)}), reset("hard")]


def credential_change(action: str, payload: dict[str, Any]) -> CredentialChange | None:
    """What a ChangeConfiguration of AuthorizationKey or SecurityProfile changes (None for any other call)."""
    if action != "ChangeConfiguration":
        return None
    key, value = payload.get("key"), str(payload.get("value", ""))
    if key == "AuthorizationKey":
        try:
            return CredentialChange(password=bytes.fromhex(value).decode("utf-8"))
        except ValueError:  # not hex, or not the bytes of a text password (UnicodeDecodeError is a ValueError)
            return CredentialChange(problem="AuthorizationKey must be the hexadecimal digits of a text password")
    if key == "SecurityProfile":
        if value.isdigit():
            return CredentialChange(profile=int(value))
        return CredentialChange(problem=f"SecurityProfile must be 1, 2 or 3, got {value!r}")
    return None


def change_taken(action: str, payload: dict[str, Any], result: dict[str, Any]) -> bool:
    """The station's answer to a :func:`credential_change` call says it took the new value."""
    return result.get("status") in _TAKEN


def masked(action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
    """The payload with its secrets masked, or None when it carries none: the AuthorizationKey we send, and
    one a charge point reports in GetConfiguration (it should not: the key is write-only)."""
    if action == "ChangeConfiguration" and payload.get("key") == "AuthorizationKey":
        return {**payload, "value": MASK}
    keys = payload.get("configurationKey")
    if isinstance(keys, list) and any(isinstance(k, dict) and k.get("key") == "AuthorizationKey" for k in keys):
        hidden = [
            {**k, "value": MASK} if isinstance(k, dict) and k.get("key") == "AuthorizationKey" else k for k in keys
        ]
        return {**payload, "configurationKey": hidden}
    return None


def extended_trigger(message: str, evse_id: int | None) -> Call:
    payload: dict[str, Any] = {"requestedMessage": EXTENDED_TRIGGER_NAMES.get(message, message)}
    if evse_id is not None:
        payload["connectorId"] = evse_id
    return "ExtendedTriggerMessage", payload


get_log = outgoing.get_log


def signed_update_firmware(firmware: SignedFirmware) -> Call:
    return "SignedUpdateFirmware", {
        "requestId": firmware.request_id,
        "firmware": firmware.firmware_payload("retrieveDateTime", "installDateTime"),
        **retry_fields(firmware.retries, firmware.retry_interval),
    }


# ---- configuration, connectors, charging profiles -------------------------------------------------------------
def get_configuration(refs: list[VariableRef], per_message: int | None) -> list[Call]:
    """GetConfiguration of these keys (none: every key), at most ``per_message`` keys a call (the station's
    GetConfigurationMaxKeys)."""
    if not refs:
        return [("GetConfiguration", {})]
    size = per_message if per_message and per_message > 0 else len(refs)
    return [("GetConfiguration", {"key": [r.variable for r in refs[i : i + size]]}) for i in range(0, len(refs), size)]


def set_configuration(values: list[tuple[VariableRef, str]], per_message: int | None) -> list[Call]:
    """One ChangeConfiguration per key (1.6 changes one key a call)."""
    return [("ChangeConfiguration", {"key": ref.variable, "value": value}) for ref, value in values]


def configuration_results(action: str, payload: dict[str, Any], result: dict[str, Any]) -> list[VariableResult]:
    if action == "GetConfiguration":
        known = [
            VariableResult(VariableRef(str(item["key"])), "Accepted", item.get("value"), item.get("readonly"))
            for item in result.get("configurationKey", [])
        ]
        return known + [VariableResult(VariableRef(str(key)), "UnknownKey") for key in result.get("unknownKey", [])]
    ref = VariableRef(str(payload["key"]))
    status = str(result.get("status", ""))
    return [VariableResult(ref, status, str(payload["value"]) if status in _TAKEN else None)]


def unlock_connector(evse_id: int, connector_id: int) -> Call:
    """1.6 connector N is EVSE N (``connector_id`` is 1)."""
    return "UnlockConnector", {"connectorId": evse_id}


def clear_charging_profile(
    profile_id: int | None, evse_id: int | None, purpose: str | None, stack_level: int | None
) -> Call:
    payload: dict[str, Any] = {}
    if profile_id is not None:
        payload["id"] = profile_id
    if evse_id is not None:
        payload["connectorId"] = evse_id
    if purpose is not None:
        payload["chargingProfilePurpose"] = PURPOSE_NAMES.get(purpose, purpose)
    if stack_level is not None:
        payload["stackLevel"] = stack_level
    return "ClearChargingProfile", payload


def get_composite_schedule(evse_id: int, duration_s: int, unit: str | None) -> Call:
    payload: dict[str, Any] = {"connectorId": evse_id, "duration": duration_s}
    if unit is not None:
        payload["chargingRateUnit"] = unit
    return "GetCompositeSchedule", payload


# ---- display messages: 1.6 has none; chargers that support ours take them through DataTransfer ------------
DISPLAY_VENDOR = "org.chargetwin"


def set_display_message(info: dict[str, Any]) -> Call:
    """DataTransfer ``org.chargetwin`` SetDisplayMessage, whose data is the 2.0.1 payload as JSON."""
    data = json.dumps({"message": info})
    return "DataTransfer", {"vendorId": DISPLAY_VENDOR, "messageId": "SetDisplayMessage", "data": data}


def clear_display_message(message_id: int) -> Call:
    data = json.dumps({"id": message_id})
    return "DataTransfer", {"vendorId": DISPLAY_VENDOR, "messageId": "ClearDisplayMessage", "data": data}


def get_display_messages(request_id: int, ids: list[int], priority: str | None, state: str | None) -> Call:
    raise ValueError("OCPP 1.6 has no GetDisplayMessages")


def display_status(action: str, result: dict[str, Any]) -> str:
    """The display's answer inside the DataTransfer's; a charger without our vendor extension: NotSupported."""
    if result.get("status") != "Accepted":
        return "NotSupported"
    try:
        return str(json.loads(result.get("data") or "{}").get("status", "NotSupported"))
    except (ValueError, AttributeError):
        return "NotSupported"


def reserve_now(reservation: Reservation) -> Call:
    payload: dict[str, Any] = {
        "connectorId": reservation.evse_id or 0,
        "expiryDate": format_time(reservation.expires_at),
        "idTag": reservation.id_token[:20],
        "reservationId": reservation.reservation_id,
    }
    if reservation.group_id:
        payload["parentIdTag"] = reservation.group_id[:20]
    return "ReserveNow", payload


def cancel_reservation(reservation_id: int) -> Call:
    return "CancelReservation", {"reservationId": reservation_id}


# ---- 1.6 has no device model reports or monitoring ----------------------------------------------------------
def get_base_report(request_id: int, base: str) -> Call:
    raise ValueError("OCPP 1.6 has no base report: GetConfiguration of every key reads its settings")


def set_variable_monitoring(monitors: list[MonitorSpec]) -> Call:
    raise ValueError("OCPP 1.6 has no variable monitoring")


def clear_variable_monitoring(ids: list[int]) -> Call:
    raise ValueError("OCPP 1.6 has no variable monitoring")


#: The OCA's California Pricing extension of 1.6 (the "OCPP & California Pricing Requirements" application note).
COST_VENDOR = "org.openchargealliance.costmsg"


def _cost_message(message_id: str, data: dict[str, Any]) -> Call:
    return "DataTransfer", {"vendorId": COST_VENDOR, "messageId": message_id, "data": json.dumps(data)}


def _amount(value: Decimal | int) -> float | int:
    return value if isinstance(value, int) else float(value)


def running_cost(cost: outgoing.SessionCost) -> Call:
    data: dict[str, Any] = {
        "transactionId": cost.transaction_id,
        "timestamp": format_time(cost.at),
        "meterValue": cost.meter_wh,
        "cost": float(cost.total),
        "state": "Charging" if cost.charging else "Idle",
        "chargingPrice": {k: _amount(v) for k, v in (cost.prices or {}).items()},
    }
    if cost.idle_prices:
        data["idlePrice"] = {k: _amount(v) for k, v in cost.idle_prices.items()}
    return _cost_message("RunningCost", data)


def final_cost(transaction_id: int, total: Decimal, price_text: str, receipt: str) -> Call:
    data = {"transactionId": transaction_id, "cost": float(total), "priceText": price_text, "qrCodeText": receipt}
    return _cost_message("FinalCost", data)


def user_price(id_token: str, price_text: str) -> Call:
    return _cost_message("SetUserPrice", {"idToken": id_token, "priceText": price_text})
