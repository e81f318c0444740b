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

    def clear_cache(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        self.charger.auth.cache.clear()
        return {"status": "Accepted"}

    def data_transfer(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        return {"status": "UnknownVendorId"}
