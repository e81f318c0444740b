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

# Read at every wake of the charger: an enum member through its class costs ~5x a plain name on CPython 3.11.
_FIRMWARE, _LOG_UPLOAD = Timer.FIRMWARE, Timer.LOG_UPLOAD


class MaintenanceHost(UpdateHost, Protocol):
    @property
    def station_id(self) -> str: ...
    @property
    def security(self) -> StationSecurity: ...
    def send_security_event(self, kind: str, tech_info: str, now: float) -> None: ...


class Maintenance:
    """Every twin charger holds one, most never use it: the update and upload jobs (and the transfer desk)
    are made at the first request, and the frame log is bounded (``log_bytes``)."""

    __slots__ = ("_desk", "_firmware", "_logs", "frames", "host", "install_s", "reboot_delay_s", "timers")

    def __init__(
        self, host: MaintenanceHost, timers: Deadlines, *, install_s: float, reboot_delay_s: float, log_bytes: int
    ) -> None:
        self.host, self.timers = host, timers
        self.install_s, self.reboot_delay_s = install_s, reboot_delay_s
        self.frames = FrameLog(log_bytes)
        self._desk: TransferDesk | None = None
        self._firmware: FirmwareUpdates | None = None
        self._logs: LogUploads | None = None

    @property
    def desk(self) -> TransferDesk:
        if self._desk is None:
            self._desk = TransferDesk()
        return self._desk

    @property
    def firmware(self) -> FirmwareUpdates:
        if self._firmware is None:
            self._firmware = FirmwareUpdates(
                self.host, self.desk, self.timers, install_s=self.install_s, reboot_delay_s=self.reboot_delay_s
            )
            self._firmware.security_event = self.host.send_security_event
            self._firmware.manufacturer_roots = self._manufacturer_roots
        return self._firmware

    @property
    def logs(self) -> LogUploads:
        if self._logs is None:
            self._logs = LogUploads(self.host, self.desk, self.timers, self.frames)
        return self._logs

    def handlers(self) -> dict[str, Handler]:
        if self.host.version == OCPP16:
            return {
                "UpdateFirmware": self._update_firmware_v16,
                "SignedUpdateFirmware": self._signed_update_firmware,
                "GetDiagnostics": self._get_diagnostics,
                "GetLog": self._get_log,
            }
        return {"UpdateFirmware": self._signed_update_firmware, "GetLog": self._get_log}

    def _update_firmware_v16(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        return self.firmware.update_firmware_v16(p, now)

    def _signed_update_firmware(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        return self.firmware.signed_update_firmware(p, now)

    def _get_diagnostics(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        return self.logs.get_diagnostics(p, now)

    def _get_log(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        return self.logs.get_log(p, now)

    def _manufacturer_roots(self) -> list[Any]:
        return list(self.host.security.roots.get("ManufacturerRootCertificate", []))

    # ---- the charger's hooks --------------------------------------------------------------------------
    def handle_timer(self, now: float) -> None:
        if self.timers.pop_if_due(_FIRMWARE, now) and self._firmware is not None:
            self._firmware.due(now)
        if self.timers.pop_if_due(_LOG_UPLOAD, now) and self._logs is not None:
            self._logs.due(now)

    def idle(self, now: float) -> None:
        """The last transaction ended: a scheduled install may go ahead."""
        if self._firmware is not None:
            self._firmware.install_if_idle(now)

    def rebooted(self, now: float) -> None:
        if self._firmware is not None:
            self._firmware.rebooted(now)

    def triggered(self, action: str) -> dict[str, Any]:
        """The payload of a triggered FirmwareStatus/DiagnosticsStatus/LogStatusNotification: what is going on."""
        if action == "FirmwareStatusNotification":
            return {"status": "Idle"} if self._firmware is None else self._firmware.triggered()
        return {"status": "Idle"} if self._logs is None else self._logs.triggered(action)

    # ---- the shell's side -----------------------------------------------------------------------------
    def transfers_to_start(self) -> list[Transfer]:
        return [] if self._desk is None else self._desk.take()

    def transfer_done(self, result: TransferResult, now: float) -> None:
        if self._desk is not None:
            self._desk.done(result, now)
