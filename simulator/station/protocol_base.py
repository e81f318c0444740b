"""What both versions' protocol modules answer alike (each version's module holds the rest, mirrored)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from simulator.station.auth import IdTokenInfo, ListLimits

if TYPE_CHECKING:
    from simulator.station.connector import Connector
    from simulator.station.firmware import FirmwareCore


class ProtocolBase:
    # Slots all the way down: every charger holds an adapter (a dict of its own was ~0.1 kB a charger).
    __slots__ = ()
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
        """Rejected when the charger keeps no cache (1.6 AuthorizationCacheEnabled, 2.0.1 AuthCacheCtrlr.Enabled
        false: C11.FR.04)."""
        if not self.charger.config.flag("auth_cache_enabled"):
            return {"status": "Rejected"}
        self.charger.auth.cache.clear()
        return {"status": "Accepted"}

    def apply_local_list(
        self, version: int, full: bool, entries: dict[str, IdTokenInfo | None], payload: dict[str, Any]
    ) -> str:
        """A SendLocalList within the limits the configuration reports; the answer's status."""
        config = self.charger.config
        limits = ListLimits(
            config.integer("local_list_max"),
            config.integer("local_list_per_message"),
            config.integer("local_list_bytes") if config.has("local_list_bytes") else None,
        )
        size = len(json.dumps(payload, separators=(",", ":")))
        return self.charger.auth.local_list.update(version, full, entries, limits, message_bytes=size).value

    def data_transfer(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        return {"status": "UnknownVendorId"}
