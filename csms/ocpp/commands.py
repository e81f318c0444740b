"""The calls the CSMS sends, for any version: each function picks the station's version module
(``v16/commands.py`` or ``v201/commands.py``), which renders the payload. Pure functions, no I/O."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Protocol

from csms.ocpp.outgoing import (
    Call,
    ChargingProfile,
    CredentialChange,
    MonitorSpec,
    Reservation,
    ResetKind,
    SessionCost,
    SignedFirmware,
    VariableRef,
    VariableResult,
)
from csms.ocpp.v16 import commands as v16
from csms.ocpp.v201 import commands as v201
from csms.ocpp.versions import OCPP16, OCPP21, OCPP201


class CallBuilder(Protocol):
    """What each version module provides (the functions below without their ``version``)."""

    def remote_start(self, id_token: str, evse_id: int | None, *, remote_start_id: int, id_token_type: str) -> Call: ...
    def remote_stop(self, transaction_id: int, charger_tx_id: str) -> Call: ...
    def reset(self, kind: ResetKind) -> Call: ...
    def get_diagnostics(
        self,
        location: str,
        request_id: int,
        *,
        start_time: str | None,
        stop_time: str | None,
        log_type: str,
        retries: int | None,
        retry_interval: int | None,
    ) -> Call: ...
    def update_firmware(
        self, location: str, request_id: int, retrieve_at: str, *, retries: int | None, retry_interval: int | None
    ) -> Call: ...
    def change_availability(self, evse_id: int, operative: bool) -> Call: ...
    def trigger(self, message: str, evse_id: int | None) -> Call: ...
    def set_charging_profile(self, profile: ChargingProfile) -> Call: ...
    def certificate_signed(self, chain_pem: str, certificate_type: str) -> Call: ...
    def trigger_certificate_renewal(self, certificate_type: str) -> Call: ...
    def install_certificate(self, certificate_type: str, certificate_pem: str) -> Call: ...
    def get_installed_certificate_ids(self, certificate_types: list[str]) -> Call: ...
    def delete_certificate(self, hash_data: dict[str, str]) -> Call: ...
    def set_password(self, password: str) -> Call: ...
    def upgrade_profile(self, profile: int, csms_url: str, slot: int) -> list[Call]: ...
    def credential_change(self, action: str, payload: dict[str, Any]) -> CredentialChange | None: ...
    def change_taken(self, action: str, payload: dict[str, Any], result: dict[str, Any]) -> bool: ...
    def masked(self, action: str, payload: dict[str, Any]) -> dict[str, Any] | None: ...
    def extended_trigger(self, message: str, evse_id: int | None) -> Call: ...
    def get_log(
        self,
        location: str,
        request_id: int,
        *,
        start_time: str | None,
        stop_time: str | None,
        log_type: str,
        retries: int | None,
        retry_interval: int | None,
    ) -> Call: ...
    def signed_update_firmware(self, firmware: SignedFirmware) -> Call: ...
    def get_configuration(self, refs: list[VariableRef], per_message: int | None) -> list[Call]: ...
    def set_configuration(self, values: list[tuple[VariableRef, str]], per_message: int | None) -> list[Call]: ...
    def configuration_results(
        self, action: str, payload: dict[str, Any], result: dict[str, Any]
    ) -> list[VariableResult]: ...
    def unlock_connector(self, evse_id: int, connector_id: int) -> Call: ...
    def clear_charging_profile(
        self, profile_id: int | None, evse_id: int | None, purpose: str | None, stack_level: int | None
    ) -> Call: ...
    def get_composite_schedule(self, evse_id: int, duration_s: int, unit: str | None) -> Call: ...
    def set_display_message(self, info: dict[str, Any]) -> Call: ...
    def clear_display_message(self, message_id: int) -> Call: ...
    def get_display_messages(
        self, request_id: int, ids: list[int], priority: str | None, state: str | None
    ) -> Call: ...
    def display_status(self, action: str, result: dict[str, Any]) -> str: ...
    def get_base_report(self, request_id: int, base: str) -> Call: ...
    def set_variable_monitoring(self, monitors: list[MonitorSpec]) -> Call: ...
    def clear_variable_monitoring(self, ids: list[int]) -> Call: ...
    def reserve_now(self, reservation: Reservation) -> Call: ...
    def cancel_reservation(self, reservation_id: int) -> Call: ...
    def running_cost(self, cost: SessionCost) -> Call: ...
    def final_cost(self, transaction_id: int, total: Decimal, price_text: str, receipt: str) -> Call: ...
    def user_price(self, id_token: str, price_text: str) -> Call: ...


#: 2.1 stations get the 2.0.1 payloads, which its schemas accept unchanged (tests/csms/test_ocpp21.py checks).
BUILDERS: dict[str, CallBuilder] = {OCPP16: v16, OCPP201: v201, OCPP21: v201}


def builder(version: str) -> CallBuilder:
    """Raises ValueError for a version we do not speak."""
    try:
        return BUILDERS[version]
    except KeyError:
        raise ValueError(f"unknown OCPP version {version!r}") from None


def remote_start(
    version: str, id_token: str, evse_id: int | None, *, remote_start_id: int, id_token_type: str = "ISO14443"
) -> Call:
    """1.6 RemoteStartTransaction (idTag, connectorId) or 2.0.1 RequestStartTransaction (with remoteStartId)."""
    return builder(version).remote_start(
        id_token, evse_id, remote_start_id=remote_start_id, id_token_type=id_token_type
    )


def remote_stop(version: str, transaction_id: int, charger_tx_id: str) -> Call:
    """1.6 names a transaction by our integer id, 2.0.1 by the charger's own transactionId string."""
    return builder(version).remote_stop(transaction_id, charger_tx_id)


def reset(version: str, kind: ResetKind) -> Call:
    return builder(version).reset(kind)


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
    return builder(version).get_diagnostics(
        location,
        request_id,
        start_time=start_time,
        stop_time=stop_time,
        log_type=log_type,
        retries=retries,
        retry_interval=retry_interval,
    )


def update_firmware(
    version: str,
    location: str,
    request_id: int,
    retrieve_at: str,
    *,
    retries: int | None = None,
    retry_interval: int | None = None,
) -> Call:
    return builder(version).update_firmware(
        location, request_id, retrieve_at, retries=retries, retry_interval=retry_interval
    )


def change_availability(version: str, evse_id: int, operative: bool) -> Call:
    """EVSE 0 is the whole station (1.6 connectorId 0; 2.0.1 without ``evse``)."""
    return builder(version).change_availability(evse_id, operative)


def trigger(version: str, message: str, evse_id: int | None) -> Call:
    """TriggerMessage for ``message`` under either version's name for it."""
    return builder(version).trigger(message, evse_id)


def set_charging_profile(version: str, profile: ChargingProfile) -> Call:
    """SetChargingProfile (see the version modules for what raises); the session's ``send_call`` checks it against
    the station's schema, as every CALL."""
    return builder(version).set_charging_profile(profile)


def certificate_signed(version: str, chain_pem: str, certificate_type: str) -> Call:
    """CertificateSigned: the certificate the CSMS's CA issued, with its CAs (PEM)."""
    return builder(version).certificate_signed(chain_pem, certificate_type)


def trigger_certificate_renewal(version: str, certificate_type: str = "ChargingStationCertificate") -> Call:
    """Ask the station for a new CSR: 2.0.1 TriggerMessage SignChargingStationCertificate, 1.6
    ExtendedTriggerMessage SignChargePointCertificate."""
    return builder(version).trigger_certificate_renewal(certificate_type)


def install_certificate(version: str, certificate_type: str, certificate_pem: str) -> Call:
    """InstallCertificate of a root (types by their 2.0.1 names). Raises ValueError: not for this version."""
    return builder(version).install_certificate(certificate_type, certificate_pem)


def get_installed_certificate_ids(version: str, certificate_types: list[str]) -> Call:
    """Raises ValueError: a type (or, in 1.6, a number of types) the version does not take."""
    return builder(version).get_installed_certificate_ids(certificate_types)


def delete_certificate(version: str, hash_data: dict[str, str]) -> Call:
    """DeleteCertificate by OCPP CertificateHashData (as GetInstalledCertificateIds reported it)."""
    return builder(version).delete_certificate(hash_data)


# ---- security ---------------------------------------------------------------------------------------------
def set_password(version: str, password: str) -> Call:
    """The station's new HTTP Basic password: 1.6 ChangeConfiguration AuthorizationKey (hex), 2.0.1
    SetVariables SecurityCtrlr.BasicAuthPassword."""
    return builder(version).set_password(password)


def upgrade_profile(version: str, profile: int, csms_url: str, slot: int = 2) -> list[Call]:
    """The calls, in order, that move a station to ``profile`` (each sent once the one before was accepted):
    2.0.1 SetNetworkProfile + NetworkConfigurationPriority + Reset, 1.6 ChangeConfiguration SecurityProfile +
    Reset. ``csms_url`` is the URL the station reconnects to (2.0.1; wss:// for profiles 2 and 3)."""
    return builder(version).upgrade_profile(profile, csms_url, slot)


def credential_change(version: str, action: str, payload: dict[str, Any]) -> CredentialChange | None:
    """Whether a call (typed or sent raw by an operator) changes the station's password or security profile."""
    return builder(version).credential_change(action, payload)


def change_taken(version: str, action: str, payload: dict[str, Any], result: dict[str, Any]) -> bool:
    """The station's CALLRESULT to a :func:`credential_change` call says it took the new value."""
    return builder(version).change_taken(action, payload, result)


def accepted(result: dict[str, Any]) -> bool:
    """A station's CALLRESULT says it did, or will do, what was asked (both versions: ``status`` Accepted,
    RebootRequired or Scheduled; every ``setVariableResult`` Accepted or RebootRequired)."""
    results = result.get("setVariableResult")
    if results is not None:
        return all(item.get("attributeStatus") in ("Accepted", "RebootRequired") for item in results)
    return result.get("status") in ("Accepted", "RebootRequired", "Scheduled")


def masked(version: str, action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
    """``payload`` (a call's, or the result of one) with station passwords masked; None when there are none."""
    return builder(version).masked(action, payload)


def extended_trigger(version: str, message: str, evse_id: int | None) -> Call:
    """1.6 ExtendedTriggerMessage (security extension) or 2.0.1 TriggerMessage."""
    return builder(version).extended_trigger(message, evse_id)


def get_log(
    version: str,
    location: str,
    request_id: int,
    *,
    log_type: str,
    start_time: str | None = None,
    stop_time: str | None = None,
    retries: int | None = None,
    retry_interval: int | None = None,
) -> Call:
    """GetLog (1.6 security extension and 2.0.1: the same shape): DiagnosticsLog or SecurityLog."""
    return builder(version).get_log(
        location,
        request_id,
        start_time=start_time,
        stop_time=stop_time,
        log_type=log_type,
        retries=retries,
        retry_interval=retry_interval,
    )


def signed_update_firmware(version: str, firmware: SignedFirmware) -> Call:
    """1.6 SignedUpdateFirmware (security extension) or 2.0.1 UpdateFirmware with signature."""
    return builder(version).signed_update_firmware(firmware)


def get_configuration(version: str, refs: list[VariableRef], per_message: int | None = None) -> list[Call]:
    """1.6 GetConfiguration (no keys: all), 2.0.1 GetVariables (names required); at most ``per_message``
    settings a call (the station's limit, when known)."""
    return builder(version).get_configuration(refs, per_message)


def set_configuration(
    version: str, values: list[tuple[VariableRef, str]], per_message: int | None = None
) -> list[Call]:
    """1.6 one ChangeConfiguration per key, 2.0.1 SetVariables of at most ``per_message`` settings a call."""
    return builder(version).set_configuration(values, per_message)


def configuration_results(
    version: str, action: str, payload: dict[str, Any], result: dict[str, Any]
) -> list[VariableResult]:
    """Per setting, what the station answered to a :func:`get_configuration` / :func:`set_configuration` call."""
    return builder(version).configuration_results(action, payload, result)


def unlock_connector(version: str, evse_id: int, connector_id: int = 1) -> Call:
    return builder(version).unlock_connector(evse_id, connector_id)


def clear_charging_profile(
    version: str,
    *,
    profile_id: int | None = None,
    evse_id: int | None = None,
    purpose: str | None = None,
    stack_level: int | None = None,
) -> Call:
    """Purposes by their 2.0.1 names (ChargingStationMaxProfile, TxDefaultProfile, TxProfile)."""
    return builder(version).clear_charging_profile(profile_id, evse_id, purpose, stack_level)


def get_composite_schedule(version: str, evse_id: int, duration_s: int, unit: str | None = None) -> Call:
    return builder(version).get_composite_schedule(evse_id, duration_s, unit)


def set_display_message(version: str, info: dict[str, Any]) -> Call:
    """2.0.1 SetDisplayMessage of a MessageInfoType; 1.6 the same in DataTransfer ``org.chargetwin``."""
    return builder(version).set_display_message(info)


def clear_display_message(version: str, message_id: int) -> Call:
    return builder(version).clear_display_message(message_id)


def get_display_messages(
    version: str, request_id: int, ids: list[int] | None = None, priority: str | None = None, state: str | None = None
) -> Call:
    """2.0.1 only. Raises ValueError for 1.6."""
    return builder(version).get_display_messages(request_id, ids or [], priority, state)


def display_status(version: str, action: str, result: dict[str, Any]) -> str:
    """The display's answer to a :func:`set_display_message` / :func:`clear_display_message` call."""
    return builder(version).display_status(action, result)


def reserve_now(version: str, reservation: Reservation) -> Call:
    """ReserveNow: 1.6 connectorId (0: the charge point) and idTag; 2.0.1 evseId (absent: any), idToken,
    connectorType, groupIdToken."""
    return builder(version).reserve_now(reservation)


def cancel_reservation(version: str, reservation_id: int) -> Call:
    return builder(version).cancel_reservation(reservation_id)


def get_base_report(version: str, request_id: int, base: str = "FullInventory") -> Call:
    """2.0.1 GetBaseReport. Raises ValueError for 1.6 (no device model)."""
    return builder(version).get_base_report(request_id, base)


def set_variable_monitoring(version: str, monitors: list[MonitorSpec]) -> Call:
    """2.0.1 SetVariableMonitoring. Raises ValueError for 1.6."""
    return builder(version).set_variable_monitoring(monitors)


def clear_variable_monitoring(version: str, ids: list[int]) -> Call:
    """2.0.1 ClearVariableMonitoring. Raises ValueError for 1.6."""
    return builder(version).clear_variable_monitoring(ids)


def running_cost(version: str, cost: SessionCost) -> Call:
    """2.0.1 CostUpdated; 1.6 the California Pricing DataTransfer ``RunningCost`` (for chargers that declare
    ``CustomDisplayCostAndPrice``)."""
    return builder(version).running_cost(cost)


def final_cost(version: str, transaction_id: int, total: Decimal, price_text: str, receipt: str) -> Call:
    """1.6 California Pricing ``FinalCost`` (2.0.1 gives it as totalCost in the answer to Ended: ValueError)."""
    return builder(version).final_cost(transaction_id, total, price_text, receipt)


def user_price(version: str, id_token: str, price_text: str) -> Call:
    """1.6 California Pricing ``SetUserPrice`` (2.0.1 gives it as personalMessage: ValueError)."""
    return builder(version).user_price(id_token, price_text)
