"""The charger's maintenance jobs as the charger sees them: firmware updates (:mod:`.firmware_update`), log
uploads (:mod:`.log_upload`), the transfers they ask the shell for (:mod:`.transfers`) and the frame log the
uploads are made of. One object, so the charger touches this block in a few named places only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from csms.ocpp.versions import OCPP16
from simulator.station.firmware_update import FirmwareUpdates, UpdateHost
from simulator.station.log_upload import LogUploads
from simulator.station.security import StationSecurity
from simulator.station.timers import Deadlines, Timer
from simulator.station.transfers import FrameLog, Transfer, TransferDesk, TransferResult

Handler = Callable[[dict[str, Any], float], dict[str, Any]]


class MaintenanceHost(UpdateHost, Protocol):
    @property
    def station_id(self) -> str: ...
    @property
    def security(self) -> StationSecurity: ...
    def send_security_event(self, kind: str, tech_info: str, now: float) -> None: ...


class Maintenance:
    def __init__(self, host: MaintenanceHost, timers: Deadlines, *, install_s: float, reboot_delay_s: float) -> None:
        self.host, self.timers = host, timers
        self.desk = TransferDesk()
        self.frames = FrameLog()
        self.firmware = FirmwareUpdates(host, self.desk, timers, install_s=install_s, reboot_delay_s=reboot_delay_s)
        self.firmware.on_invalid_certificate = self._invalid_certificate
        self.firmware.manufacturer_roots = lambda: list(host.security.roots.get("ManufacturerRootCertificate", []))
        self.logs = LogUploads(host, self.desk, timers, self.frames)

    def handlers(self) -> dict[str, Handler]:
        if self.host.version == OCPP16:
            return {
                "UpdateFirmware": self.firmware.update_firmware_v16,
                "SignedUpdateFirmware": self.firmware.signed_update_firmware,
                "GetDiagnostics": self.logs.get_diagnostics,
                "GetLog": self.logs.get_log,
            }
        return {"UpdateFirmware": self.firmware.signed_update_firmware, "GetLog": self.logs.get_log}

    def _invalid_certificate(self, reason: str, now: float) -> None:
        self.host.send_security_event("InvalidFirmwareSigningCertificate", reason, now)

    # ---- the charger's hooks --------------------------------------------------------------------------
    def handle_timer(self, now: float) -> None:
        if self.timers.pop_if_due(Timer.FIRMWARE, now):
            self.firmware.due(now)
        if self.timers.pop_if_due(Timer.LOG_UPLOAD, now):
            self.logs.due(now)

    def idle(self, now: float) -> None:
        """The last transaction ended: a scheduled install may go ahead."""
        self.firmware.install_if_idle(now)

    def rebooted(self, now: float) -> None:
        self.firmware.rebooted(now)

    def triggered(self, action: str) -> dict[str, Any]:
        """The payload of a triggered FirmwareStatus/DiagnosticsStatus/LogStatusNotification: what is going on."""
        if action == "FirmwareStatusNotification":
            return self.firmware.triggered()
        return self.logs.triggered(action)

    # ---- the shell's side -----------------------------------------------------------------------------
    def transfers_to_start(self) -> list[Transfer]:
        return self.desk.take()

    def transfer_done(self, result: TransferResult, now: float) -> None:
        self.desk.done(result, now)
