"""OCPP 2.0.1 for the charger: payloads out, answers in, and a handler for every call a CSMS sends.

Mirrors :mod:`.v16` method for method. 2.0.1 specifics: the station names its transactions (ids drawn
from the run's RNG, so a seed gives the same ids), every TransactionEvent carries a per-transaction
``seqNo`` assigned when the event happens, and events that happen while offline say ``offline: true``.
EVSE N has one connector, numbered 1.
"""

from __future__ import annotations

import functools
import uuid
from typing import TYPE_CHECKING, Any

from csms.ocpp.convert import parse_time
from simulator.station.auth import IdTokenInfo
from simulator.station.config import MEASURANDS, SetStatus, ValueType
from simulator.station.connector import Connector
from simulator.station.iso15118 import schedule_payload
from simulator.station.offline_queue import QueuedMessage
from simulator.station.protocol_base import ProtocolBase
from simulator.station.registration import Registration
from simulator.station.smart_charging import clear_charging_profile_response, set_charging_profile_response_v201
from simulator.station.wire_time import wire_time

if TYPE_CHECKING:
    from simulator.station.firmware import FirmwareCore, Handler
    from simulator.station.reservations import Reservation
    from simulator.station.transactions import Reading, Transaction

#: Our stop reasons (1.6 spelling) -> 2.0.1 stoppedReason and the Ended event's triggerReason.
STOPPED_REASON = {"HardReset": "ImmediateReset", "SoftReset": "ImmediateReset", "UnlockCommand": "Other"}
STOP_TRIGGER = {
    "EVDisconnected": "EVCommunicationLost",
    "Remote": "RemoteStop",
    "Local": "StopAuthorized",
    "DeAuthorized": "Deauthorized",
    "HardReset": "ResetCommand",
    "SoftReset": "ResetCommand",
    "Reboot": "ResetCommand",
    "UnlockCommand": "UnlockCommand",
}
DATA_TYPES = {
    ValueType.INTEGER: "integer",
    ValueType.BOOLEAN: "boolean",
    ValueType.MEMBER_LIST: "MemberList",
    ValueType.STRING: "string",
}


def _id_info(raw: dict[str, Any] | None) -> IdTokenInfo | None:
    if raw is None:
        return None
    expiry = parse_time(raw.get("cacheExpiryDateTime"))
    group = raw.get("groupIdToken", {}).get("idToken")
    return IdTokenInfo(raw["status"], None if expiry is None else expiry.timestamp(), group)


def _list_entries(kind: str, charger: FirmwareCore) -> tuple[str, str | None]:
    """LocalAuthListCtrlr.Entries: its Actual value counts the entries held (its capacity is the variable's
    maxLimit characteristic, the configured value)."""
    if kind == "Actual":
        return "Accepted", str(len(charger.auth.local_list))
    return "NotSupportedAttributeType", None


def _name(item: dict[str, Any]) -> str:
    return f"{item['component']['name']}.{item['variable']['name']}"


class Protocol(ProtocolBase):
    __slots__ = ("charger",)

    def __init__(self, charger: FirmwareCore) -> None:
        self.charger = charger

    def handlers(self) -> dict[str, Handler]:
        return {
            "RequestStartTransaction": self.remote_start,
            "RequestStopTransaction": self.remote_stop,
            "Reset": self.reset,
            "ChangeAvailability": self.change_availability,
            "UnlockConnector": self.unlock_connector,
            "GetVariables": self.get_variables,
            "SetVariables": self.set_variables,
            "GetBaseReport": self.get_base_report,
            "TriggerMessage": self.trigger_message,
            "ClearCache": self.clear_cache,
            "DataTransfer": self.data_transfer,
            "SetChargingProfile": self.set_charging_profile,
            "ClearChargingProfile": self.clear_charging_profile,
            "GetCompositeSchedule": self.get_composite_schedule,
            "SendLocalList": self.send_local_list,
            "GetLocalListVersion": self.get_local_list_version,
            "ReserveNow": self.reserve_now,
            "CancelReservation": self.cancel_reservation,
            "GetTransactionStatus": self.get_transaction_status,
        }

    # ---- messages we send ---------------------------------------------------------------------------
    def boot_payload(self, reason: str) -> dict[str, Any]:
        identity = self.charger.identity
        station: dict[str, Any] = {
            "model": identity.model[:20],
            "vendorName": identity.vendor[:50],
            "firmwareVersion": identity.firmware_version[:50],
        }
        if identity.serial_number:
            station["serialNumber"] = identity.serial_number[:25]
        return {"chargingStation": station, "reason": reason}

    def status_payload(self, c: Connector, now: float) -> dict[str, Any]:
        return {"timestamp": wire_time(now), "connectorStatus": c.status, "evseId": c.connector_id, "connectorId": 1}

    def all_status_payloads(self, now: float) -> list[dict[str, Any]]:
        return [self.status_payload(c, now) for c in self.charger.connectors.values()]

    def authorize_payload(
        self, token: str, token_type: str, contract: tuple[dict[str, str], ...] = ()
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"idToken": {"idToken": token[:36], "type": token_type}}
        terminal = self.charger.payment_terminal
        card = [] if terminal is None else terminal.additional_info(token)
        if card:  # an ad-hoc payment: the card's reference for the CSMS to pre-authorise on
            payload["idToken"]["additionalInfo"] = card
        if contract:  # C07.FR.02: at least the contract certificate's OCSP data
            payload["iso15118CertificateHashData"] = list(contract)
        return payload

    def parse_id_info(self, payload: dict[str, Any]) -> IdTokenInfo:
        info = _id_info(payload["idTokenInfo"])
        assert info is not None
        return info

    def new_transaction_id(self) -> str:
        return str(uuid.UUID(int=self.charger.rng.getrandbits(128), version=4))

    def meter_value(self, readings: list[Reading], context: str, now: float) -> dict[str, Any]:
        values = []
        for r in readings:
            sv: dict[str, Any] = {
                "value": round(r.value, 3),
                "context": context,
                "measurand": r.measurand,
                "location": "EV" if r.measurand == "SoC" else "Outlet",
                "unitOfMeasure": {"unit": r.unit},
            }
            if r.phase:
                sv["phase"] = r.phase
            values.append(sv)
        return {"timestamp": wire_time(now), "sampledValue": values}

    def meter_values_payload(
        self, connector_id: int, readings: list[Reading], now: float, context: str = "Trigger"
    ) -> dict[str, Any]:
        return {"evseId": connector_id, "meterValue": [self.meter_value(readings, context, now)]}

    def _event(
        self,
        tx: Transaction,
        event_type: str,
        trigger: str,
        now: float,
        *,
        readings: list[Reading] | None = None,
        context: str = "Sample.Periodic",
        info: dict[str, Any] | None = None,
        with_token: bool = False,
    ) -> QueuedMessage:
        c = self.charger.connectors[tx.connector_id]
        transaction_info: dict[str, Any] = {"transactionId": tx.transaction_id, **(info or {})}
        payload: dict[str, Any] = {
            "eventType": event_type,
            "timestamp": wire_time(now),
            "triggerReason": trigger,
            "seqNo": tx.seq_no,
            "transactionInfo": transaction_info,
            "evse": {"id": c.connector_id, "connectorId": 1},
        }
        tx.seq_no += 1
        if not self.charger.online:
            payload["offline"] = True
        if with_token and tx.id_token:
            payload["idToken"] = {"idToken": tx.id_token, "type": tx.token_type}
        if readings:
            payload["meterValue"] = [self.meter_value(readings, context, now)]
        droppable = event_type == "Updated" and trigger in ("MeterValuePeriodic", "MeterValueClock")
        return QueuedMessage("TransactionEvent", payload, tx.key, droppable=droppable)

    def tx_started(self, tx: Transaction, readings: list[Reading], now: float) -> QueuedMessage:
        c = self.charger.connectors[tx.connector_id]
        info: dict[str, Any] = {"chargingState": c.charging_state} if c.charging_state else {}
        if tx.remote_start_id is not None:
            info["remoteStartId"] = tx.remote_start_id
        message = self._event(
            tx, "Started", tx.trigger, now, readings=readings, context="Transaction.Begin", info=info, with_token=True
        )
        if tx.reservation_id is not None:
            message.payload["reservationId"] = tx.reservation_id
        return message

    def tx_meter_values(
        self, tx: Transaction, readings: list[Reading], now: float, *, clock: bool = False
    ) -> QueuedMessage:
        if clock:
            return self._event(tx, "Updated", "MeterValueClock", now, readings=readings, context="Sample.Clock")
        return self._event(tx, "Updated", "MeterValuePeriodic", now, readings=readings)

    def tx_charging_state_changed(self, tx: Transaction, now: float) -> QueuedMessage | None:
        state = self.charger.connectors[tx.connector_id].charging_state
        if state is None:
            return None
        return self._event(tx, "Updated", "ChargingStateChanged", now, info={"chargingState": state})

    def tx_ended(self, tx: Transaction, readings: list[Reading], now: float) -> QueuedMessage:
        assert tx.stop_reason is not None
        reason = tx.stop_reason
        info = {"stoppedReason": STOPPED_REASON.get(reason, reason)}
        trigger = STOP_TRIGGER.get(reason, "AbnormalCondition")
        return self._event(
            tx,
            "Ended",
            trigger,
            now,
            readings=readings,
            context="Transaction.End",
            info=info,
            with_token=reason == "Local",
        )

    def prepare(self, message: QueuedMessage) -> dict[str, Any] | None:
        return message.payload

    def tx_answered(self, message: QueuedMessage, payload: dict[str, Any], now: float) -> None:
        info = _id_info(payload.get("idTokenInfo"))
        if message.payload["eventType"] == "Ended":
            token = message.payload.get("idToken", {}).get("idToken")
            self.charger.remember(token, info, now)
        else:
            self.charger.transaction_answered(message.tx_key, info, now)

    def install_remote_profile(self, tx: Transaction, profile: dict[str, Any], now: float) -> None:
        bound = {**profile, "transactionId": tx.transaction_id}
        self.charger.profiles.set_charging_profile_v201({"evseId": tx.connector_id, "chargingProfile": bound}, now)

    # ---- calls we answer ----------------------------------------------------------------------------
    def remote_start(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        profile = p.get("chargingProfile")
        if profile is not None and profile["chargingProfilePurpose"] != "TxProfile":
            return {"status": "Rejected"}
        token = p["idToken"]
        ok = self.charger.remote_start(
            p.get("evseId"), token["idToken"], token["type"], now, remote_start_id=p["remoteStartId"], profile=profile
        )
        return {"status": "Accepted" if ok else "Rejected"}

    def reset(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        if "evseId" in p:
            return {"status": "Rejected"}  # resetting a single EVSE is not modelled
        return {"status": self.charger.reset(p["type"], now)}

    def change_availability(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        evse = p.get("evse", {}).get("id", 0)
        return {"status": self.charger.change_availability([evse], p["operationalStatus"] == "Operative", now)}

    def unlock_connector(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        if p["connectorId"] != 1:
            return {"status": "UnknownConnector"}
        return {"status": self.charger.unlock(p["evseId"], now)}

    def _lookup(self, item: dict[str, Any]) -> tuple[str, Any]:
        if self.charger.security_ops.read(_name(item)) is not None:
            return "Accepted", None
        config = self.charger.config
        component, variable = item["component"]["name"], item["variable"]["name"]
        entry = config.entry(f"{component}.{variable}")
        if entry is not None:
            return "Accepted", entry
        if not any(e.component == component for e in config):
            return "UnknownComponent", None
        return "UnknownVariable", None

    def get_variables(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        results = []
        for item in p["getVariableData"]:
            status, entry = self._lookup(item)
            kind = item.get("attributeType", "Actual")
            result: dict[str, Any] = {
                "attributeType": kind,
                "component": item["component"],
                "variable": item["variable"],
            }
            if status == "Accepted" and entry is not None and entry.setting == "local_list_max":
                status, value = _list_entries(kind, self.charger)
                result.update({"attributeValue": value} if value is not None else {})
            elif status == "Accepted" and kind != "Actual":
                status = "NotSupportedAttributeType"
            elif status == "Accepted":
                secured = self.charger.security_ops.read(_name(item))
                value = secured if secured is not None else self.charger.config.value(entry.name)
                result["attributeValue"] = value[:2500]
            result["attributeStatus"] = status
            results.append(result)
        return {"getVariableResult": results}

    def set_variables(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        results = []
        for item in p["setVariableData"]:
            status, entry = self._lookup(item)
            kind = item.get("attributeType", "Actual")
            if status == "Accepted" and kind != "Actual":
                status = "NotSupportedAttributeType"
            secured = self.charger.security_ops.write(_name(item), item["attributeValue"], now)
            if secured is not None and kind == "Actual":
                status = secured
            elif status == "Accepted":
                outcome = self.charger.config.set(entry.name, item["attributeValue"])
                status = outcome.value
                if outcome in (SetStatus.ACCEPTED, SetStatus.REBOOT_REQUIRED):
                    self.charger.setting_changed(entry.setting, now)
            results.append(
                {
                    "attributeType": kind,
                    "attributeStatus": status,
                    "component": item["component"],
                    "variable": item["variable"],
                }
            )
        return {"setVariableResult": results}

    def report_data(self) -> list[dict[str, Any]]:
        config = self.charger.config
        data = []
        for e in config:
            characteristics: dict[str, Any] = {"dataType": DATA_TYPES[e.type], "supportsMonitoring": False}
            if e.type is ValueType.MEMBER_LIST:
                characteristics["valuesList"] = ",".join(MEASURANDS)
            data.append(
                {
                    "component": {"name": e.component},
                    "variable": {"name": e.variable},
                    "variableAttribute": [
                        {
                            "type": "Actual",
                            "value": config.value(e.name)[:2500],
                            "mutability": "ReadOnly" if e.readonly else "ReadWrite",
                        }
                    ],
                    "variableCharacteristics": characteristics,
                }
            )
        return data

    def get_base_report(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        request_id = p["requestId"]
        data = self.report_data()
        page = max(1, self.charger.config.integer("items_per_report"))

        def notify(when: float) -> None:
            pages = [data[i : i + page] for i in range(0, len(data), page)] or [[]]
            for seq_no, items in enumerate(pages):
                body: dict[str, Any] = {
                    "requestId": request_id,
                    "generatedAt": wire_time(when),
                    "seqNo": seq_no,
                    "tbc": seq_no < len(pages) - 1,
                }
                if items:
                    body["reportData"] = items
                self.charger.send("NotifyReport", body, when)

        self.charger.after_reply(notify)
        return {"status": "Accepted"}

    def trigger_message(self, p: dict[str, Any], now: float) -> dict[str, Any]:  # noqa: C901, PLR0912 - one per message
        charger, what = self.charger, p["requestedMessage"]
        evse = p.get("evse", {}).get("id")
        if evse is not None and evse not in charger.connectors:
            return {"status": "Rejected"}
        targets = [charger.connectors[evse]] if evse else list(charger.connectors.values())
        if what == "BootNotification":
            if charger.registration is Registration.ACCEPTED:
                return {"status": "Rejected"}  # F06.FR.17
            charger.boot_reason = "Triggered"
            charger.after_reply(charger.trigger_boot)
        elif what == "Heartbeat":
            charger.after_reply(charger.send_heartbeat)
        elif what == "StatusNotification":
            self._after_statuses(targets)
        elif what == "MeterValues":
            self._after_meter_values(targets)
        elif what == "TransactionEvent":
            running = [charger.transactions[c.connector_id] for c in targets if c.connector_id in charger.transactions]
            if not running:
                return {"status": "Rejected"}
            for tx in running:
                charger.after_reply(functools.partial(self._triggered_event, tx))
        elif charger.security_ops.trigger_sign(what):
            pass
        elif what == "FirmwareStatusNotification":
            self._after_idle_notification("FirmwareStatusNotification")
        elif what == "LogStatusNotification":
            self._after_idle_notification("LogStatusNotification")
        else:
            return {"status": "NotImplemented"}
        return {"status": "Accepted"}

    def _triggered_event(self, tx: Transaction, now: float) -> None:
        readings = self.charger.readings(tx.connector_id, now)
        self.charger.queue_message(self._event(tx, "Updated", "Trigger", now, readings=readings), now)

    def set_charging_profile(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        profiles = self.charger.profiles
        outcome = self.charger.set_charging_profile(lambda: profiles.set_charging_profile_v201(p, now), now)
        answer = set_charging_profile_response_v201(outcome)
        needs = self.charger.ev_needs.get(p["evseId"])
        tx_profile = p["chargingProfile"]["chargingProfilePurpose"] == "TxProfile"
        if answer["status"] == "Accepted" and needs is not None and tx_profile:
            schedule = schedule_payload(p["evseId"], p["chargingProfile"], needs, now)
            self.charger.after_reply(lambda when: self._send_ev_schedule(schedule, when))
        return answer

    def _send_ev_schedule(self, schedule: dict[str, Any], now: float) -> None:
        """The station renegotiated with the EV (K16): what it will draw goes to the CSMS."""
        self.charger.send("NotifyEVChargingSchedule", schedule, now)

    def clear_charging_profile(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        status = self.charger.profiles.clear_charging_profile_v201(p)
        self.charger.profiles_changed(now)
        return clear_charging_profile_response(status)

    def get_composite_schedule(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        charger = self.charger
        spec = charger.connectors.get(p["evseId"], charger.connectors[1]).spec
        return charger.profiles.get_composite_schedule_v201(
            p, now, volts_per_phase=spec.voltage_v, phases=1 if spec.dc else spec.phases
        )

    def send_local_list(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        if not self.charger.config.flag("local_list_enabled"):
            return {"status": "Failed"}
        entries = {e["idToken"]["idToken"]: _id_info(e.get("idTokenInfo")) for e in p.get("localAuthorizationList", [])}
        return {"status": self.apply_local_list(p["versionNumber"], p["updateType"] == "Full", entries, p)}

    def get_local_list_version(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        return {"versionNumber": self.charger.auth.local_list.version}

    def get_transaction_status(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        charger = self.charger
        tx_id = p.get("transactionId")
        pending = any(
            m.action == "TransactionEvent" and (tx_id is None or m.payload["transactionInfo"]["transactionId"] == tx_id)
            for m in charger.queue
        )
        body: dict[str, Any] = {"messagesInQueue": pending}
        if tx_id is not None:
            body["ongoingIndicator"] = charger.transaction_by_id(tx_id) is not None
        return body

    def reserve_now(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        """H01: a specific EVSE, or any (no evseId) when ReservationCtrlr.NonEvseSpecific; a connector type."""
        config = self.charger.config
        evse_id = p.get("evseId")
        if not config.flag("reservation_enabled") or (evse_id is None and not config.flag("reserve_any")):
            return {"status": "Rejected"}
        expiry = parse_time(p["expiryDateTime"])
        assert expiry is not None
        group = p.get("groupIdToken", {}).get("idToken")
        status = self.charger.reserve(
            p["id"], evse_id, p["idToken"]["idToken"], group, expiry.timestamp(), now, p.get("connectorType")
        )
        return {"status": status}

    def cancel_reservation(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        return {"status": "Accepted" if self.charger.cancel_reservation(p["reservationId"], now) else "Rejected"}

    def reservation_ended(self, reservation: Reservation, why: str, now: float) -> None:
        """H01.FR.?: the station tells the CSMS of a reservation it ended itself (Expired, Removed)."""
        if self.charger.online:
            payload = {"reservationId": reservation.reservation_id, "reservationUpdateStatus": why}
            self.charger.send("ReservationStatusUpdate", payload, now)
