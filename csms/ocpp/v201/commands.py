"""OCPP 2.0.1: the calls the CSMS sends, as 2.0.1 payloads (the mirror of ``v16/commands.py``)."""

from __future__ import annotations

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

RESET_TYPES: dict[ResetKind, str] = {"soft": "OnIdle", "hard": "Immediate"}
#: 1.6 message names that 2.0.1's TriggerMessage calls otherwise.
TRIGGER_NAMES = {
    "DiagnosticsStatusNotification": "LogStatusNotification",
    "SignChargePointCertificate": "SignChargingStationCertificate",
}
PASSWORD_VARIABLE = ("SecurityCtrlr", "BasicAuthPassword")
PRIORITY_VARIABLE = ("OCPPCommCtrlr", "NetworkConfigurationPriority")
#: attributeStatus / status values that mean the station took the value (now, or at its next reboot).
_TAKEN = ("Accepted", "RebootRequired")


def remote_start(id_token: str, evse_id: int | None, *, remote_start_id: int, id_token_type: str) -> Call:
    payload: dict[str, Any] = {
        "idToken": {"idToken": id_token, "type": id_token_type},
        "remoteStartId": remote_start_id,
    }
    if evse_id is not None:
        payload["evseId"] = evse_id
    return "RequestStartTransaction", payload


def remote_stop(transaction_id: int, charger_tx_id: str) -> Call:
    """2.0.1 names a transaction by the charger's own transactionId string."""
    return "RequestStopTransaction", {"transactionId": charger_tx_id}


def reset(kind: ResetKind) -> Call:
    return "Reset", {"type": RESET_TYPES[kind]}


get_diagnostics = outgoing.get_log


def update_firmware(
    location: str, request_id: int, retrieve_at: str, *, retries: int | None, retry_interval: int | None
) -> Call:
    firmware = {"location": location, "retrieveDateTime": retrieve_at}
    return "UpdateFirmware", {"requestId": request_id, "firmware": firmware, **retry_fields(retries, retry_interval)}


def change_availability(evse_id: int, operative: bool) -> Call:
    """EVSE 0 is the whole station: the call then names no ``evse``."""
    payload: dict[str, Any] = {"operationalStatus": "Operative" if operative else "Inoperative"}
    if evse_id:
        payload["evse"] = {"id": evse_id}
    return "ChangeAvailability", payload


def trigger(message: str, evse_id: int | None) -> Call:
    payload: dict[str, Any] = {"requestedMessage": TRIGGER_NAMES.get(message, message)}
    if evse_id is not None:
        payload["evse"] = {"id": evse_id}
    return "TriggerMessage", payload


def set_charging_profile(profile: ChargingProfile) -> Call:
    """SetChargingProfile. Checked against the station's schema where every CALL is, in the session's
    ``send_call``."""
    start = profile.start_text
    schedule = {
        "id": profile.profile_id,
        "chargingRateUnit": profile.unit,
        "startSchedule": start,
        "chargingSchedulePeriod": profile.periods_payload(),
    }
    body: dict[str, Any] = {
        "id": profile.profile_id,
        "stackLevel": profile.stack_level,
        "chargingProfilePurpose": profile.purpose,
        "chargingProfileKind": "Absolute",
        "validFrom": start,
        "chargingSchedule": [schedule],
    }
    if profile.purpose == "TxProfile":
        body["transactionId"] = str(profile.transaction_id)
    return "SetChargingProfile", {"evseId": profile.evse_id, "chargingProfile": body}


#: The root certificates an operator installs (InstallCertificate) and lists (GetInstalledCertificateIds).
ROOT_TYPES = ("CSMSRootCertificate", "ManufacturerRootCertificate", "V2GRootCertificate", "MORootCertificate")


def certificate_signed(chain_pem: str, certificate_type: str) -> Call:
    return "CertificateSigned", {"certificateChain": chain_pem, "certificateType": certificate_type}


def trigger_certificate_renewal(certificate_type: str) -> Call:
    """TriggerMessage SignChargingStationCertificate (or SignV2GCertificate): the station sends a new CSR."""
    requested = "SignV2GCertificate" if certificate_type == "V2GCertificate" else "SignChargingStationCertificate"
    return "TriggerMessage", {"requestedMessage": requested}


def install_certificate(certificate_type: str, certificate_pem: str) -> Call:
    """Raises ValueError: not one of :data:`ROOT_TYPES`."""
    if certificate_type not in ROOT_TYPES:
        raise ValueError(f"certificate type must be one of {', '.join(ROOT_TYPES)}")
    return "InstallCertificate", {"certificateType": certificate_type, "certificate": certificate_pem}


def get_installed_certificate_ids(certificate_types: list[str]) -> Call:
    """All of them when ``certificate_types`` is empty. Raises ValueError for an unknown type."""
    unknown = [t for t in certificate_types if t not in (*ROOT_TYPES, "V2GCertificateChain")]
    if unknown:
        raise ValueError(f"unknown certificate type {unknown[0]!r}")
    return "GetInstalledCertificateIds", ({"certificateType": certificate_types} if certificate_types else {})


def delete_certificate(hash_data: dict[str, str]) -> Call:
    return "DeleteCertificate", {"certificateHashData": hash_data}


# ---- security: the station's credentials and security profile ------------------------------------------------
def _variable(component: str, variable: str, value: str) -> dict[str, Any]:
    return {"component": {"name": component}, "variable": {"name": variable}, "attributeValue": value}


def _names(item: dict[str, Any]) -> tuple[Any, Any]:
    return item.get("component", {}).get("name"), item.get("variable", {}).get("name")


def set_password(password: str) -> Call:
    """SetVariables SecurityCtrlr.BasicAuthPassword."""
    return "SetVariables", {"setVariableData": [_variable(*PASSWORD_VARIABLE, password)]}


def set_network_profile(slot: int, csms_url: str, profile: int) -> Call:
    """SetNetworkProfile: ``csms_url`` at ``profile`` in configuration ``slot`` (used once a priority names it)."""
    connection = {
        "ocppVersion": "OCPP20",
        "ocppTransport": "JSON",
        "ocppCsmsUrl": csms_url,
        "messageTimeout": 30,
        "securityProfile": profile,
        "ocppInterface": "Wired0",
    }
    return "SetNetworkProfile", {"configurationSlot": slot, "connectionData": connection}


def set_network_priority(slots: list[int]) -> Call:
    """SetVariables OCPPCommCtrlr.NetworkConfigurationPriority: the slots in the order the station tries them."""
    value = ",".join(str(slot) for slot in slots)
    return "SetVariables", {"setVariableData": [_variable(*PRIORITY_VARIABLE, value)]}


def upgrade_profile(profile: int, csms_url: str, slot: int) -> list[Call]:
    """A05: SetNetworkProfile (the new profile and URL in ``slot``), NetworkConfigurationPriority naming only
    that slot (no fallback to a lower profile is offered), then Reset OnIdle: the station comes back on it."""
    return [set_network_profile(slot, csms_url, profile), set_network_priority([slot]), reset("soft")]


def credential_change(action: str, payload: dict[str, Any]) -> CredentialChange | None:
    """What SetVariables BasicAuthPassword or SetNetworkProfile changes (None for any other call)."""
    if action == "SetNetworkProfile":
        return CredentialChange(profile=payload.get("connectionData", {}).get("securityProfile"))
    if action == "SetVariables":
        for item in payload.get("setVariableData", []):
            if _names(item) == PASSWORD_VARIABLE:
                return CredentialChange(password=str(item.get("attributeValue", "")))
    return None


def change_taken(action: str, payload: dict[str, Any], result: dict[str, Any]) -> bool:
    """The station's answer to a :func:`credential_change` call says it took the new value."""
    if action == "SetNetworkProfile":
        return result.get("status") == "Accepted"
    return any(
        _names(item) == PASSWORD_VARIABLE and item.get("attributeStatus") in _TAKEN
        for item in result.get("setVariableResult", [])
    )


def masked(action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
    """The payload with BasicAuthPassword values masked (SetVariables we send; a GetVariables answer that
    reports one, which a station should not: the variable is write-only), or None when it carries none."""
    for key, value_key in (("setVariableData", "attributeValue"), ("getVariableResult", "attributeValue")):
        items = payload.get(key)
        if isinstance(items, list) and any(isinstance(i, dict) and _names(i) == PASSWORD_VARIABLE for i in items):
            hidden = [
                {**i, value_key: MASK}
                if isinstance(i, dict) and _names(i) == PASSWORD_VARIABLE and value_key in i
                else i
                for i in items
            ]
            return {**payload, key: hidden}
    return None


def extended_trigger(message: str, evse_id: int | None) -> Call:
    """2.0.1's TriggerMessage covers what 1.6's ExtendedTriggerMessage adds."""
    return trigger(message, evse_id)


get_log = outgoing.get_log  # 2.0.1 GetLog is also what get_diagnostics sends


def signed_update_firmware(firmware: SignedFirmware) -> Call:
    """UpdateFirmware with the signing certificate and signature."""
    return "UpdateFirmware", {
        "requestId": firmware.request_id,
        "firmware": firmware.firmware_payload("retrieveDateTime", "installDateTime"),
        **retry_fields(firmware.retries, firmware.retry_interval),
    }


# ---- configuration (the device model), connectors, charging profiles ---------------------------------------
def _component(ref: VariableRef) -> dict[str, Any]:
    component: dict[str, Any] = {"name": ref.component or ""}
    if ref.evse_id:
        component["evse"] = {"id": ref.evse_id}
    return component


def _variable_of(ref: VariableRef) -> dict[str, Any]:
    return {"name": ref.variable} if ref.instance is None else {"name": ref.variable, "instance": ref.instance}


def _chunks(items: list[Any], per_message: int | None) -> list[list[Any]]:
    size = per_message if per_message and per_message > 0 else max(1, len(items))
    return [items[i : i + size] for i in range(0, len(items), size)] or [[]]


def get_configuration(refs: list[VariableRef], per_message: int | None) -> list[Call]:
    """GetVariables of these variables (Actual attribute), at most ``per_message`` a call (B06.FR.05: the
    station's ItemsPerMessage[GetVariables])."""
    calls: list[Call] = []
    for chunk in _chunks(refs, per_message):
        data = [{"component": _component(ref), "variable": _variable_of(ref)} for ref in chunk]
        calls.append(("GetVariables", {"getVariableData": data}))
    return calls


def set_configuration(values: list[tuple[VariableRef, str]], per_message: int | None) -> list[Call]:
    """SetVariables, at most ``per_message`` a call (the station's ItemsPerMessage[SetVariables])."""
    calls: list[Call] = []
    for chunk in _chunks(values, per_message):
        data = [{"component": _component(ref), "variable": _variable_of(ref), "attributeValue": v} for ref, v in chunk]
        calls.append(("SetVariables", {"setVariableData": data}))
    return calls


def _ref(item: dict[str, Any]) -> VariableRef:
    component = item.get("component", {})
    variable = item.get("variable", {})
    return VariableRef(
        str(variable.get("name", "")),
        str(component.get("name", "")),
        int(component.get("evse", {}).get("id", 0)),
        variable.get("instance"),
    )


def configuration_results(action: str, payload: dict[str, Any], result: dict[str, Any]) -> list[VariableResult]:
    if action == "GetVariables":
        return [
            VariableResult(_ref(item), str(item.get("attributeStatus", "")), item.get("attributeValue"))
            for item in result.get("getVariableResult", [])
        ]
    sent = {(_ref(item)): str(item.get("attributeValue", "")) for item in payload.get("setVariableData", [])}
    out = []
    for item in result.get("setVariableResult", []):
        ref, status = _ref(item), str(item.get("attributeStatus", ""))
        out.append(VariableResult(ref, status, sent.get(ref) if status in _TAKEN else None))
    return out


def unlock_connector(evse_id: int, connector_id: int) -> Call:
    return "UnlockConnector", {"evseId": evse_id, "connectorId": connector_id}


def clear_charging_profile(
    profile_id: int | None, evse_id: int | None, purpose: str | None, stack_level: int | None
) -> Call:
    payload: dict[str, Any] = {}
    if profile_id is not None:
        payload["chargingProfileId"] = profile_id
    criteria: dict[str, Any] = {}
    if evse_id is not None:
        criteria["evseId"] = evse_id
    if purpose is not None:
        criteria["chargingProfilePurpose"] = purpose
    if stack_level is not None:
        criteria["stackLevel"] = stack_level
    if criteria:
        payload["chargingProfileCriteria"] = criteria
    return "ClearChargingProfile", payload


def get_composite_schedule(evse_id: int, duration_s: int, unit: str | None) -> Call:
    payload: dict[str, Any] = {"evseId": evse_id, "duration": duration_s}
    if unit is not None:
        payload["chargingRateUnit"] = unit
    return "GetCompositeSchedule", payload


# ---- display messages (block O) ------------------------------------------------------------------------------
def set_display_message(info: dict[str, Any]) -> Call:
    return "SetDisplayMessage", {"message": info}


def clear_display_message(message_id: int) -> Call:
    return "ClearDisplayMessage", {"id": message_id}


def get_display_messages(request_id: int, ids: list[int], priority: str | None, state: str | None) -> Call:
    payload: dict[str, Any] = {"requestId": request_id}
    if ids:
        payload["id"] = ids
    if priority is not None:
        payload["priority"] = priority
    if state is not None:
        payload["state"] = state
    return "GetDisplayMessages", payload


def display_status(action: str, result: dict[str, Any]) -> str:
    return str(result.get("status", ""))


def reserve_now(reservation: Reservation) -> Call:
    payload: dict[str, Any] = {
        "id": reservation.reservation_id,
        "expiryDateTime": format_time(reservation.expires_at),
        "idToken": {"idToken": reservation.id_token, "type": reservation.id_token_type},
    }
    if reservation.evse_id is not None:
        payload["evseId"] = reservation.evse_id
    if reservation.connector_type:
        payload["connectorType"] = reservation.connector_type
    if reservation.group_id:
        payload["groupIdToken"] = {"idToken": reservation.group_id, "type": "Central"}
    return "ReserveNow", payload


def cancel_reservation(reservation_id: int) -> Call:
    return "CancelReservation", {"reservationId": reservation_id}


# ---- the device model: reports and monitoring (blocks B and N) --------------------------------------------
def get_base_report(request_id: int, base: str) -> Call:
    return "GetBaseReport", {"requestId": request_id, "reportBase": base}


def set_variable_monitoring(monitors: list[MonitorSpec]) -> Call:
    data = []
    for monitor in monitors:
        item: dict[str, Any] = {
            "value": monitor.value,
            "type": monitor.type,
            "severity": monitor.severity,
            "component": _component(monitor.ref),
            "variable": {"name": monitor.ref.variable},
        }
        if monitor.transaction:
            item["transaction"] = True
        if monitor.id is not None:
            item["id"] = monitor.id
        data.append(item)
    return "SetVariableMonitoring", {"setMonitoringData": data}


def clear_variable_monitoring(ids: list[int]) -> Call:
    return "ClearVariableMonitoring", {"id": ids}


def running_cost(cost: outgoing.SessionCost) -> Call:
    return "CostUpdated", {"totalCost": float(cost.total), "transactionId": cost.charger_tx_id}


def final_cost(transaction_id: int, total: Decimal, price_text: str, receipt: str) -> Call:
    raise ValueError("OCPP 2.0.1 gives the final cost as totalCost in the answer to TransactionEvent Ended")


def user_price(id_token: str, price_text: str) -> Call:
    raise ValueError("OCPP 2.0.1 gives the tariff's text as idTokenInfo.personalMessage")
