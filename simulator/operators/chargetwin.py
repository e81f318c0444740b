"""chargetwin's own REST API as the operator (interim: provisioning and calls)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from simulator.operators.base import CallOutcome, Capability, OperatorError, StoredStation, StoredTransaction


class ChargetwinOperator:
    name = "chargetwin"

    def __init__(self, api_url: str, api_key: str | None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.AsyncClient(base_url=api_url.rstrip("/") + "/api/v1", headers=headers, timeout=60.0)

    def cannot(self, capability: Capability, action: str | None = None) -> str | None:
        return None

    async def _ok(self, response: httpx.Response, what: str) -> httpx.Response:
        if response.status_code >= 400:
            raise OperatorError(f"{what}: HTTP {response.status_code} {response.text[:300]}")
        return response

    async def provision_station(self, station_id: str, version: str, password: str | None) -> None:
        body = {"id": station_id, "password": password, "ocpp_version": version}
        response = await self.client.post("/stations", json=body)
        if response.status_code == 409:
            response = await self.client.patch(f"/stations/{station_id}", json={"password": password})
        await self._ok(response, f"provision station {station_id}")

    async def provision_token(self, id_token: str, *, status: str = "Accepted", group: str | None = None) -> None:
        response = await self.client.post("/tokens", json={"id_token": id_token, "status": status, "group_id": group})
        if response.status_code == 409:
            response = await self.client.patch(f"/tokens/{id_token}", json={"status": status, "group_id": group})
        await self._ok(response, f"provision token {id_token}")

    async def send_call(
        self, station_id: str, action: str, payload: dict[str, Any], *, timeout_s: float = 30.0
    ) -> CallOutcome:
        response = await self.client.post(
            f"/stations/{station_id}/calls/{action}", json=payload, params={"timeout": timeout_s}
        )
        body = (await self._ok(response, f"send {action}")).json()
        return CallOutcome(True, body.get("payload"), str(body.get("outcome", "")))

    async def transactions(self, station_ids: list[str], since: datetime) -> list[StoredTransaction]:
        raise OperatorError("interim adapter")

    async def station(self, station_id: str) -> StoredStation:
        raise OperatorError("interim adapter")

    async def uptime(self, station_ids: list[str], start: datetime, end: datetime) -> dict[str, Any]:
        raise OperatorError("interim adapter")

    async def configure(self, station_id: str, setting: str, **values: Any) -> None:
        if setting != "boot_answer":
            raise OperatorError(f"chargetwin cannot configure {setting!r}")
        policy = {"Accepted": "accept", "Pending": "pending", "Rejected": "reject"}[values["status"]]
        response = await self.client.patch(f"/stations/{station_id}", json={"registration_policy": policy})
        await self._ok(response, f"set the boot answer of {station_id} to {values['status']}")

    async def close(self) -> None:
        await self.client.aclose()
