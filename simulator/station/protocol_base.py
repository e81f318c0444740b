"""What both versions' protocol modules answer alike (each version's module holds the rest, mirrored)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simulator.station.connector import Connector
    from simulator.station.firmware import FirmwareCore


class ProtocolBase:
    charger: FirmwareCore

    def status_payload(self, c: Connector, now: float) -> dict[str, Any]:
        """The version's StatusNotification payload for ``c``."""
        raise NotImplementedError

    def remote_stop(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        tx = self.charger.transaction_by_id(p["transactionId"])
        if tx is None:
            return {"status": "Rejected"}
        self.charger.after_reply(lambda when: self.charger.stop_transaction(tx, "Remote", when))
        return {"status": "Accepted"}

    def _send_status(self, c: Connector, now: float) -> None:
        self.charger.send("StatusNotification", self.status_payload(c, now), now)
        c.reported_status = c.status

    # ---- TriggerMessage: what follows the answer ----------------------------------------------------
    def _after_statuses(self, targets: list[Connector]) -> None:
        def send(when: float) -> None:
            for c in targets:
                self._send_status(c, when)

        self.charger.after_reply(send)

    def _after_meter_values(self, targets: list[Connector]) -> None:
        def send(when: float) -> None:
            for c in targets:
                self.charger.send_meter_values(c.connector_id, when)

        self.charger.after_reply(send)

    def _after_idle_notification(self, action: str) -> None:
        """A triggered FirmwareStatus/DiagnosticsStatus/LogStatusNotification: what the firmware update or log
        upload is doing (Idle when none runs)."""

        def send(when: float) -> None:
            self.charger.send(action, self.charger.maintenance.triggered(action), when)

        self.charger.after_reply(send)

    def clear_cache(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        self.charger.auth.cache.clear()
        return {"status": "Accepted"}

    def data_transfer(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        return {"status": "UnknownVendorId"}
