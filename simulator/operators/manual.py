"""A person at the CSMS's console as the :class:`Operator`: each action is printed as an instruction, and the
adapter returns once the person presses Enter (a conformance case then waits for the CALL itself). Nothing
can be read back from such a CSMS, and :meth:`ManualOperator.cannot` says so for every ``read_*``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

from simulator.operators.base import (
    CallOutcome,
    Capability,
    FirmwareImage,
    FleetVehicle,
    Garage,
    OperatorError,
    StoredStation,
    StoredTransaction,
)

#: How long a person has to do what an instruction asks before the adapter gives up (seconds).
PERSON_TIMEOUT_S = 900.0
NO_READS = "a person operates this CSMS (--operator manual): nothing can be read back from it"
NO_FLEET = "a person operates this CSMS (--operator manual): telematics every few minutes need an API"
NO_ONBOARDING = "a person operates this CSMS (--operator manual): invite the garage's drivers yourself beforehand"
NO_IMAGES = "a person operates this CSMS (--operator manual): the simulator cannot hand them a firmware image"


def describe(payload: Any, prefix: str = "") -> list[str]:
    """``{"idToken": {"idToken": "T"}, "evseId": 1}`` → ``["idToken.idToken 'T'", "evseId 1"]``."""
    if isinstance(payload, dict):
        return [part for key, value in payload.items() for part in describe(value, f"{prefix}{key}.")]
    if isinstance(payload, list):
        return [part for i, value in enumerate(payload) for part in describe(value, f"{prefix}{i}.")]
    return [f"{prefix.rstrip('.')} {payload!r}"]


class ManualOperator:
    name = "manual"

    def __init__(
        self,
        prompt: Callable[[str], str] = input,
        out: Callable[[str], None] = print,
        *,
        timeout_s: float = PERSON_TIMEOUT_S,
    ) -> None:
        self.prompt, self.out, self.timeout_s = prompt, out, timeout_s

    def cannot(self, capability: Capability, action: str | None = None) -> str | None:
        if capability == "update_firmware":
            return NO_IMAGES
        if capability == "fleet":
            return NO_FLEET
        if capability == "onboard":
            return NO_ONBOARDING
        return NO_READS if capability.startswith("read_") else None

    async def _ask(self, instruction: str) -> None:
        """Print ``instruction`` and wait (in a worker thread, so the event loop runs on) for Enter."""
        self.out(instruction)
        try:
            await asyncio.wait_for(asyncio.to_thread(self.prompt, "Press Enter when done. "), self.timeout_s)
        except TimeoutError:
            raise OperatorError(f"no one confirmed within {self.timeout_s:g} s: {instruction}") from None
        except EOFError:
            raise OperatorError(f"no one to ask (standard input is closed): {instruction}") from None

    async def provision_station(self, station_id: str, version: str, password: str | None) -> None:
        secret = f"HTTP Basic password {password!r}" if password else "no password"
        await self._ask(
            f"On the CSMS, add (or update) station {station_id!r}: OCPP {version}, {secret}, accept its boot."
        )

    async def provision_token(self, id_token: str, *, status: str = "Accepted", group: str | None = None) -> None:
        grouped = f", group {group!r}" if group else ""
        await self._ask(f"On the CSMS, add (or update) id token {id_token!r} with status {status}{grouped}.")

    async def install_contract_root(self, pem: str, *, kind: str = "MO") -> None:
        await self._ask(f"On the CSMS, trust this {kind} root for ISO 15118 contract certificates:\n{pem.strip()}")

    async def send_call(
        self, station_id: str, action: str, payload: dict[str, Any], *, timeout_s: float = 30.0
    ) -> CallOutcome:
        fields = describe(payload)
        with_fields = f" with {', '.join(fields)}" if fields else ""
        await self._ask(f"Make the CSMS send {action} to station {station_id!r}{with_fields}.")
        return CallOutcome(True, None, "confirmed by the person at the CSMS")

    async def reserve(
        self, station_id: str, id_token: str, *, connector: int | None, valid_for_s: float, timeout_s: float = 30.0
    ) -> CallOutcome:
        where = "any connector" if connector is None else f"connector {connector}"
        await self._ask(
            f"On the CSMS, reserve {where} of station {station_id!r} for {id_token!r} for {valid_for_s:g} s."
        )
        return CallOutcome(True, None, "confirmed by the person at the CSMS")

    async def update_firmware(
        self, station_id: str, firmware: FirmwareImage, *, retrieve_at: datetime, timeout_s: float = 30.0
    ) -> CallOutcome:
        raise OperatorError(NO_IMAGES)

    async def register_vehicle(self, vehicle: FleetVehicle) -> None:
        raise OperatorError(NO_FLEET)

    async def record_soc(self, vehicle_id: str, soc_pct: float, at: datetime) -> None:
        raise OperatorError(NO_FLEET)

    async def onboard(self, garage: Garage, role: str, tokens: list[str], pass_days: int | None) -> None:
        raise OperatorError(NO_ONBOARDING)

    async def configure(self, station_id: str, setting: str, **values: Any) -> None:
        wanted = ", ".join(f"{k} {v}" for k, v in values.items())
        await self._ask(f"On the CSMS, set {setting} of station {station_id!r}: {wanted}.")

    async def transactions(self, station_ids: list[str], since: datetime) -> list[StoredTransaction]:
        raise OperatorError(NO_READS)

    async def station(self, station_id: str) -> StoredStation:
        raise OperatorError(NO_READS)

    async def uptime(self, station_ids: list[str], start: datetime, end: datetime) -> dict[str, Any]:
        raise OperatorError(NO_READS)

    async def close(self) -> None:
        return None
