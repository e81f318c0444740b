"""Typed operator commands rendered as the OCPP call each version expects (pure functions, no I/O)."""

from __future__ import annotations

from typing import Any

from csms.ocpp.versions import OCPP16

Call = tuple[str, dict[str, Any]]

RESET_TYPES = {OCPP16: {"soft": "Soft", "hard": "Hard"}, "2.0.1": {"soft": "OnIdle", "hard": "Immediate"}}


def remote_start(
    version: str, id_token: str, evse_id: int | None, *, remote_start_id: int, id_token_type: str = "ISO14443"
) -> Call:
    """1.6 RemoteStartTransaction (idTag, connectorId) or 2.0.1 RequestStartTransaction (with remoteStartId)."""
    if version == OCPP16:
        payload: dict[str, Any] = {"idTag": id_token}
        if evse_id is not None:
            payload["connectorId"] = evse_id
        return "RemoteStartTransaction", payload
    payload = {"idToken": {"idToken": id_token, "type": id_token_type}, "remoteStartId": remote_start_id}
    if evse_id is not None:
        payload["evseId"] = evse_id
    return "RequestStartTransaction", payload


def remote_stop(version: str, transaction_id: int, charger_tx_id: str) -> Call:
    """1.6 names a transaction by our integer id, 2.0.1 by the charger's own transactionId string."""
    if version == OCPP16:
        return "RemoteStopTransaction", {"transactionId": transaction_id}
    return "RequestStopTransaction", {"transactionId": charger_tx_id}


def reset(version: str, kind: str) -> Call:
    return "Reset", {"type": RESET_TYPES[version][kind]}


def get_diagnostics(
    version: str,
    location: str,
    request_id: int,
    *,
    start_time: str | None = None,
    stop_time: str | None = None,
    log_type: str = "DiagnosticsLog",
    retries: int | None = None,
    retry_interval: int | None = None,
) -> Call:
    """1.6 GetDiagnostics (location, startTime/stopTime) or 2.0.1 GetLog (log.remoteLocation, requestId)."""
    extra = {k: v for k, v in (("retries", retries), ("retryInterval", retry_interval)) if v is not None}
    if version == OCPP16:
        payload: dict[str, Any] = {"location": location, **extra}
        if start_time:
            payload["startTime"] = start_time
        if stop_time:
            payload["stopTime"] = stop_time
        return "GetDiagnostics", payload
    log: dict[str, Any] = {"remoteLocation": location}
    if start_time:
        log["oldestTimestamp"] = start_time
    if stop_time:
        log["latestTimestamp"] = stop_time
    return "GetLog", {"logType": log_type, "requestId": request_id, "log": log, **extra}


def update_firmware(
    version: str,
    location: str,
    request_id: int,
    retrieve_at: str,
    *,
    retries: int | None = None,
    retry_interval: int | None = None,
) -> Call:
    extra = {k: v for k, v in (("retries", retries), ("retryInterval", retry_interval)) if v is not None}
    if version == OCPP16:
        return "UpdateFirmware", {"location": location, "retrieveDate": retrieve_at, **extra}
    firmware = {"location": location, "retrieveDateTime": retrieve_at}
    return "UpdateFirmware", {"requestId": request_id, "firmware": firmware, **extra}


def change_availability(version: str, evse_id: int, operative: bool) -> Call:
    """EVSE 0 is the whole station (1.6 connectorId 0; 2.0.1 without ``evse``)."""
    kind = "Operative" if operative else "Inoperative"
    if version == OCPP16:
        return "ChangeAvailability", {"connectorId": evse_id, "type": kind}
    payload: dict[str, Any] = {"operationalStatus": kind}
    if evse_id:
        payload["evse"] = {"id": evse_id}
    return "ChangeAvailability", payload


#: Message names that differ between the versions' TriggerMessage enums.
_TRIGGER_NAMES = {
    OCPP16: {"LogStatusNotification": "DiagnosticsStatusNotification"},
    "2.0.1": {"DiagnosticsStatusNotification": "LogStatusNotification"},
}


def trigger(version: str, message: str, evse_id: int | None) -> Call:
    requested = _TRIGGER_NAMES.get(version, {}).get(message, message)
    payload: dict[str, Any] = {"requestedMessage": requested}
    if evse_id is not None:
        if version == OCPP16:
            payload["connectorId"] = evse_id
        else:
            payload["evse"] = {"id": evse_id}
    return "TriggerMessage", payload
