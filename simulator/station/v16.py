"""OCPP 1.6J for the charger: payloads out, answers in, and a handler for every call a Central System sends.

Mirrors :mod:`.v201` method for method. 1.6 specifics: the CSMS assigns transaction ids, so a
StopTransaction or MeterValues queued behind a StartTransaction carries a placeholder (our ``tx_key``) that
:meth:`Protocol.prepare` replaces with the real id once StartTransaction.conf arrived.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from csms.ocpp.convert import parse_time
from simulator.station.auth import IdTokenInfo
from simulator.station.config import SetStatus
from simulator.station.connector import AVAILABLE, UNAVAILABLE, Connector
from simulator.station.offline_queue import QueuedMessage
from simulator.station.protocol_base import ProtocolBase
from simulator.station.smart_charging import (
    clear_charging_profile_response,
    set_charging_profile_response_v16,
)
from simulator.station.wire_time import wire_time

if TYPE_CHECKING:
    from simulator.station.firmware import FirmwareCore, Handler
    from simulator.station.reservations import Reservation
    from simulator.station.transactions import Reading, Transaction


def _number(value: float) -> str:
    """A sampled value as 1.6 writes it: to the milliunit, every digit kept (a lifetime register of a few MWh
    in Wh has 7+ digits; ``:g`` alone would keep six and round the energy away)."""
    text = _WRITTEN.get(value)
    if text is not None and value:  # 0.0 and -0.0 are one key but two texts ("0", "-0")
        return text
    # ``%`` writes a float as ``format(v, ".15g")`` does (the same routine), ~0.25 us faster (no builtin call).
    text = "%.15g" % round(value, 3) if abs(value) < 1e12 else str(round(value))  # noqa: UP031
    if len(_WRITTEN) >= _WRITTEN_MAX:
        _WRITTEN.clear()
    _WRITTEN[value] = text
    return text


#: Sampled values already written: ~9 in 10 repeat one (voltage, a phase current, the offered power, a current
#: that holds while the limit does), and writing one costs ~1.7 us against ~0.1 us to look it up.
_WRITTEN: dict[float, str] = {}
_WRITTEN_MAX = 4096


def _id_info(raw: dict[str, Any] | None) -> IdTokenInfo | None:
    if raw is None:
        return None
    expiry = parse_time(raw.get("expiryDate"))
    return IdTokenInfo(raw["status"], None if expiry is None else expiry.timestamp(), raw.get("parentIdTag"))


#: The security extension's keys, kept by the charger's security (not the configuration table).
SECURITY_KEYS = ("SecurityProfile", "AuthorizationKey", "CpoName")


class Protocol(ProtocolBase):
    __slots__ = ("_real_ids", "charger")

    def __init__(self, charger: FirmwareCore) -> None:
        self.charger = charger
        self._real_ids: dict[int, int] = {}  # tx_key -> the CSMS's transactionId

    def handlers(self) -> dict[str, Handler]:
        return {
            "RemoteStartTransaction": self.remote_start,
            "RemoteStopTransaction": self.remote_stop,
            "Reset": self.reset,
            "ChangeAvailability": self.change_availability,
            "UnlockConnector": self.unlock_connector,
            "GetConfiguration": self.get_configuration,
            "ChangeConfiguration": self.change_configuration,
            "TriggerMessage": self.trigger_message,
            "ExtendedTriggerMessage": self.extended_trigger_message,
            "ClearCache": self.clear_cache,
            "DataTransfer": self.data_transfer,
            "SetChargingProfile": self.set_charging_profile,
            "ClearChargingProfile": self.clear_charging_profile,
            "GetCompositeSchedule": self.get_composite_schedule,
            "SendLocalList": self.send_local_list,
            "GetLocalListVersion": self.get_local_list_version,
            "ReserveNow": self.reserve_now,
            "CancelReservation": self.cancel_reservation,
        }

    # ---- messages we send ---------------------------------------------------------------------------
    def boot_payload(self, reason: str) -> dict[str, Any]:
        identity = self.charger.identity
        body: dict[str, Any] = {
            "chargePointVendor": identity.vendor[:20],
            "chargePointModel": identity.model[:20],
            "firmwareVersion": identity.firmware_version[:50],
        }
        if identity.serial_number:
            body["chargePointSerialNumber"] = identity.serial_number[:25]
        return body

    def status_payload(self, c: Connector, now: float) -> dict[str, Any]:
        return {
            "connectorId": c.connector_id,
            "errorCode": c.error_code,
            "status": c.status,
            "timestamp": wire_time(now),
        }

    def all_status_payloads(self, now: float) -> list[dict[str, Any]]:
        station = UNAVAILABLE if self.charger.station_inoperative else AVAILABLE
        first = {"connectorId": 0, "errorCode": "NoError", "status": station, "timestamp": wire_time(now)}
        return [first, *(self.status_payload(c, now) for c in self.charger.connectors.values())]

    def authorize_payload(
        self, token: str, token_type: str, contract: tuple[dict[str, str], ...] = ()
    ) -> dict[str, Any]:
        return {"idTag": token[:20]}  # 1.6 has no contract certificates: the eMAID goes as an idTag

    def parse_id_info(self, payload: dict[str, Any]) -> IdTokenInfo:
        info = _id_info(payload["idTagInfo"])
        assert info is not None
        return info

    def new_transaction_id(self) -> None:
        return None  # the CSMS assigns it

    def meter_value(self, readings: list[Reading], context: str, now: float) -> dict[str, Any]:
        values = []
        for r in readings:
            sv: dict[str, Any] = {
                "value": _number(r.value),
                "context": context,
                "measurand": r.measurand,
                "unit": r.unit,
                "location": "EV" if r.measurand == "SoC" else "Outlet",
            }
            if r.phase:
                sv["phase"] = r.phase
            values.append(sv)
        return {"timestamp": wire_time(now), "sampledValue": values}

    def meter_values_payload(
        self, connector_id: int, readings: list[Reading], now: float, context: str = "Trigger"
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "connectorId": connector_id,
            "meterValue": [self.meter_value(readings, context, now)],
        }
        tx = self.charger.transactions.get(connector_id)
        if tx is not None and tx.key in self._real_ids:
            body["transactionId"] = self._real_ids[tx.key]
        return body

    def tx_started(self, tx: Transaction, readings: list[Reading], now: float) -> QueuedMessage:
        payload = {
            "connectorId": tx.connector_id,
            "idTag": (tx.id_token or "")[:20],
            "meterStart": round(tx.meter_start_wh),
            "timestamp": wire_time(now),
        }
        if tx.reservation_id is not None:
            payload["reservationId"] = tx.reservation_id
        return QueuedMessage("StartTransaction", payload, tx.key)

    def tx_meter_values(
        self, tx: Transaction, readings: list[Reading], now: float, *, clock: bool = False
    ) -> QueuedMessage:
        context = "Sample.Clock" if clock else "Sample.Periodic"
        payload = {"connectorId": tx.connector_id, "meterValue": [self.meter_value(readings, context, now)]}
        return QueuedMessage("MeterValues", payload, tx.key, droppable=True)

    def tx_charging_state_changed(self, tx: Transaction, now: float) -> None:
        return None  # 1.6 reports it with StatusNotification only

    def tx_ended(self, tx: Transaction, readings: list[Reading], now: float) -> QueuedMessage:
        assert tx.meter_stop_wh is not None and tx.stop_reason is not None
        payload: dict[str, Any] = {
            "meterStop": round(tx.meter_stop_wh),
            "timestamp": wire_time(now),
            "reason": tx.stop_reason,
        }
        if tx.id_token and tx.stop_reason == "Local":
            payload["idTag"] = tx.id_token[:20]
        return QueuedMessage("StopTransaction", payload, tx.key)

    def prepare(self, message: QueuedMessage) -> dict[str, Any] | None:
        """The payload to send now; None when its transaction never got an id (its start was dropped)."""
        if message.action == "StartTransaction":
            return message.payload
        real = self._real_ids.get(message.tx_key)
        if real is None:
            return None
        return {**message.payload, "transactionId": real}

    def tx_answered(self, message: QueuedMessage, payload: dict[str, Any], now: float) -> None:
        info = _id_info(payload.get("idTagInfo"))
        if message.action == "StartTransaction":
            real = int(payload["transactionId"])
            self._real_ids[message.tx_key] = real
            tx = next((t for t in reversed(self.charger.history) if t.key == message.tx_key), None)
            if tx is not None:
                tx.transaction_id = real  # also when it already ended offline: the report matches by this id
                if tx.ended_at is None:
                    self.charger.profiles.start_transaction(tx.connector_id, real, tx.started_at)
            self.charger.transaction_answered(message.tx_key, info, now)
        elif message.action == "StopTransaction":
            self.charger.remember(message.payload.get("idTag"), info, now)

    def install_remote_profile(self, tx: Transaction, profile: dict[str, Any], now: float) -> None:
        self.charger.profiles.set_charging_profile_v16(
            {"connectorId": tx.connector_id, "csChargingProfiles": profile}, now
        )

    def reservation_ended(self, reservation: Reservation, why: str, now: float) -> None:
        return None  # 1.6 has no message for it: the connector's StatusNotification says it

    # ---- calls we answer ----------------------------------------------------------------------------
    def remote_start(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        profile = p.get("chargingProfile")
        if profile is not None and profile["chargingProfilePurpose"] != "TxProfile":
            return {"status": "Rejected"}
        ok = self.charger.remote_start(p.get("connectorId"), p["idTag"], "ISO14443", now, profile=profile)
        return {"status": "Accepted" if ok else "Rejected"}

    def reset(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        return {"status": self.charger.reset(p["type"], now)}

    def change_availability(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        status = self.charger.change_availability([p["connectorId"]], p["type"] == "Operative", now)
        if p["connectorId"] == 0 and status != "Rejected":
            self.charger.after_reply(lambda when: self._send_station_status(when))
        return {"status": status}

    def _send_station_status(self, now: float) -> None:
        if self.charger.online:
            self.charger.send("StatusNotification", self.all_status_payloads(now)[0], now)

    def unlock_connector(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        status = self.charger.unlock(p["connectorId"], now)
        return {"status": "NotSupported" if status == "UnknownConnector" else status}

    def get_configuration(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        config, security = self.charger.config, self.charger.security_ops
        wanted = p.get("key")
        names = wanted or [e.name for e in config] + list(SECURITY_KEYS)
        known = [n for n in names if config.entry(n) is not None]
        keys = [
            {"key": n, "readonly": config.entry(n).readonly, "value": config.value(n)[:500]}  # type: ignore[union-attr]
            for n in known
        ]
        for n in (n for n in names if n in SECURITY_KEYS):
            value = security.read(n)  # None for the write-only AuthorizationKey: listed, never shown
            keys.append({"key": n, "readonly": False} | ({} if value is None else {"value": value}))
        body: dict[str, Any] = {"configurationKey": keys}
        unknown = [n for n in names if config.entry(n) is None and n not in SECURITY_KEYS]
        if unknown:
            body["unknownKey"] = unknown
        return body

    def change_configuration(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        secured = self.charger.security_ops.write(p["key"], p["value"], now)
        if secured is not None:
            return {"status": secured}
        status = self.charger.config.set(p["key"], p["value"])
        if status in (SetStatus.ACCEPTED, SetStatus.REBOOT_REQUIRED):
            entry = self.charger.config.entry(p["key"])
            assert entry is not None
            self.charger.setting_changed(entry.setting, now)
        return {"status": status.value}

    def trigger_message(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        charger, what = self.charger, p["requestedMessage"]
        cid = p.get("connectorId")
        if cid is not None and cid != 0 and cid not in charger.connectors:
            return {"status": "Rejected"}
        targets = [charger.connectors[cid]] if cid else list(charger.connectors.values())
        if what == "BootNotification":
            charger.after_reply(charger.trigger_boot)
        elif what == "Heartbeat":
            charger.after_reply(charger.send_heartbeat)
        elif what == "StatusNotification":
            if cid == 0:
                charger.after_reply(self._send_station_status)
            else:
                self._after_statuses(targets)
        elif what == "MeterValues":
            self._after_meter_values(targets)
        elif what == "FirmwareStatusNotification":
            self._after_idle_notification("FirmwareStatusNotification")
        elif what == "DiagnosticsStatusNotification":
            self._after_idle_notification("DiagnosticsStatusNotification")
        else:
            return {"status": "NotImplemented"}
        return {"status": "Accepted"}

    def extended_trigger_message(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        """The security extension's TriggerMessage: the core messages, plus a SignCertificate."""
        if self.charger.security_ops.trigger_sign(p["requestedMessage"]):
            return {"status": "Accepted"}
        if p["requestedMessage"] == "LogStatusNotification":
            self._after_idle_notification("LogStatusNotification")
            return {"status": "Accepted"}
        return self.trigger_message(p, now)

    def set_charging_profile(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        outcome = self.charger.set_charging_profile(lambda: self.charger.profiles.set_charging_profile_v16(p, now), now)
        return set_charging_profile_response_v16(outcome)

    def clear_charging_profile(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        status = self.charger.profiles.clear_charging_profile_v16(p)
        self.charger.profiles_changed(now)
        return clear_charging_profile_response(status)

    def get_composite_schedule(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        charger = self.charger
        spec = charger.connectors.get(p["connectorId"], charger.connectors[1]).spec
        return charger.profiles.get_composite_schedule_v16(
            p, now, volts_per_phase=spec.voltage_v, phases=1 if spec.dc else spec.phases
        )

    def send_local_list(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        if not self.charger.config.flag("local_list_enabled"):
            return {"status": "NotSupported"}
        entries = {e["idTag"]: _id_info(e.get("idTagInfo")) for e in p.get("localAuthorizationList", [])}
        return {"status": self.apply_local_list(p["listVersion"], p["updateType"] == "Full", entries, p)}

    def get_local_list_version(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        if not self.charger.config.flag("local_list_enabled"):
            return {"listVersion": -1}
        return {"listVersion": self.charger.auth.local_list.version}

    def reserve_now(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        """Connector 0 reserves any connector, when ReserveConnectorZeroSupported."""
        connector_id = p["connectorId"]
        if connector_id == 0 and not self.charger.config.flag("reserve_any"):
            return {"status": "Rejected"}
        expiry = parse_time(p["expiryDate"])
        assert expiry is not None
        status = self.charger.reserve(
            p["reservationId"], connector_id or None, p["idTag"], p.get("parentIdTag"), expiry.timestamp(), now
        )
        return {"status": status}

    def cancel_reservation(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        return {"status": "Accepted" if self.charger.cancel_reservation(p["reservationId"], now) else "Rejected"}
