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
