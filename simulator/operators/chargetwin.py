"""chargetwin's own REST API (``/api/v1``, ``Authorization: Bearer KEY``) as an :class:`Operator`: it can do
and read everything the protocol names, and also lists the alerts it raised (:meth:`ChargetwinOperator.alerts`),
which only this CSMS has."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

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
from simulator.operators.http import RetryingClient, failure

#: The API's page size and longest call timeout (``limit`` ≤ 1000, ``timeout`` ≤ 300 s).
PAGE, MAX_CALL_TIMEOUT_S = 1000, 300.0
#: An export or import of a whole database may take a while.
BUNDLE_TIMEOUT_S = 120.0


def api_base(api_url: str) -> str:
    """``http://host:port`` or ``…/api/v1``, either way ``…/api/v1``."""
    base = api_url.rstrip("/")
    return base if base.endswith("/api/v1") else base + "/api/v1"


def utc(iso: str | None) -> datetime | None:
    if iso is None:
        return None
    value = datetime.fromisoformat(iso)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _segment(text: str) -> str:
    return quote(text, safe="")


def list_entry(item: dict[str, Any]) -> dict[str, Any]:
    """A SendLocalList entry of either version as an entry of chargetwin's ``/local-list`` (no status: removal)."""
    if "idTag" in item:
        info = item.get("idTagInfo")
        token, kind, expiry, group = item["idTag"], "ISO14443", "expiryDate", (info or {}).get("parentIdTag")
    else:
        info = item.get("idTokenInfo")
        token, kind = item["idToken"]["idToken"], item["idToken"].get("type", "ISO14443")
        expiry, group = "cacheExpiryDateTime", ((info or {}).get("groupIdToken") or {}).get("idToken")
    entry = {"id_token": token, "type": kind, "status": None if info is None else info["status"]}
    if info is not None and info.get(expiry):
        entry["expiry"] = info[expiry]
    if group:
        entry["group_id"] = group
    return entry


#: The boot answer an operator may ask for -> chargetwin's registration policy.
BOOT_POLICIES = {"Accepted": "accept", "Pending": "pending", "Rejected": "reject"}


#: Calls chargetwin makes from its reservations (:meth:`ChargetwinOperator._reservation_request`).
RESERVATION_ACTIONS = ("ReserveNow", "CancelReservation")


def reservation_body(payload: dict[str, Any]) -> dict[str, Any]:
    """A ReserveNow payload (1.6 or 2.0.1, its id ignored) as a request for a reservation to chargetwin."""
    if "idTag" in payload:  # 1.6
        body: dict[str, Any] = {"id_token": payload["idTag"], "expires_at": payload["expiryDate"]}
        body["evse_id"] = payload.get("connectorId") or None
        if payload.get("parentIdTag"):
            body["group_id_token"] = payload["parentIdTag"]
        return body
    token = payload["idToken"]
    body = {"id_token": token["idToken"], "id_token_type": token["type"], "expires_at": payload["expiryDateTime"]}
    for wire, name in (("evseId", "evse_id"), ("connectorType", "connector_type")):
        if payload.get(wire) is not None:
            body[name] = payload[wire]
    if payload.get("groupIdToken"):
        body["group_id_token"] = payload["groupIdToken"]["idToken"]
    return body


class ChargetwinOperator:
    name = "api"

    def __init__(self, api_url: str, api_key: str | None, *, transport: httpx.AsyncBaseTransport | None = None):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = RetryingClient(api_base(api_url), headers, transport=transport)
        #: station id -> the CSMS's site holding it, read once (a depot's vehicles without a depot id)
        self._sites: dict[str, str] | None = None

    def cannot(self, capability: Capability, action: str | None = None) -> str | None:
        return None

    async def _json(self, method: str, path: str, ok: tuple[int, ...] = (200,), **kwargs: Any) -> Any:
        response = await self.http.request(method, path, **kwargs)
        if response.status_code not in ok:
            raise failure(response)
        return response.json()

    async def provision_station(self, station_id: str, version: str, password: str | None) -> None:
        body = {"id": station_id, "password": password, "ocpp_version": version, "registration_policy": "accept"}
        response = await self.http.request("POST", "/stations", json=body)
        if response.status_code == 409:
            changes = {"password": password, "registration_policy": "accept"}
            stored = await self._json("PATCH", f"/stations/{_segment(station_id)}", json=changes)
            if stored["ocpp_version"] != version:
                raise OperatorError(
                    f"station {station_id!r} exists with OCPP {stored['ocpp_version']}, not {version}: "
                    "chargetwin's API cannot change a station's version (delete it, or use another id)"
                )
        elif response.status_code != 201:
            raise failure(response)

    async def provision_token(self, id_token: str, *, status: str = "Accepted", group: str | None = None) -> None:
        response = await self.http.request(
            "POST", "/tokens", json={"id_token": id_token, "status": status, "group_id": group}
        )
        if response.status_code == 409:
            await self._json("PATCH", f"/tokens/{_segment(id_token)}", json={"status": status, "group_id": group})
        elif response.status_code != 201:
            raise failure(response)

    async def install_contract_root(self, pem: str, *, kind: str = "MO") -> None:
        response = await self.http.request("POST", "/contract-roots", json={"pem": pem, "kind": kind})
        if response.status_code not in (201, 409):  # 409: trusted already
            raise failure(response)

    async def send_call(
        self, station_id: str, action: str, payload: dict[str, Any], *, timeout_s: float = 30.0
    ) -> CallOutcome:
        """The station's answer as the API relays it; a CALLERROR or no answer is an outcome, not an error.

        Raises:
            OperatorError: the station is not connected (409), the payload is invalid for its version (422),
                no such station (404), or the API could not be reached.
        """
        wait = min(max(timeout_s, 0.1), MAX_CALL_TIMEOUT_S)
        if action == "SendLocalList" and not {"listVersion", "versionNumber"} & payload.keys():
            return await self._send_local_list(station_id, payload, wait)
        path, body = f"/stations/{_segment(station_id)}/calls/{_segment(action)}", payload
        if action in RESERVATION_ACTIONS:
            path, body = await self._reservation_request(station_id, action, payload)
        out = await self._json("POST", path, json=body, params={"timeout": wait}, timeout=wait + 10.0)
        out = out.get("call", out)
        outcome = out["outcome"]
        if outcome == "result":
            return CallOutcome(True, out.get("payload") or {}, "result")
        if outcome == "error":
            error = out.get("error") or {}
            return CallOutcome(True, None, f"CALLERROR {error.get('code')}: {error.get('description') or ''}".strip())
        return CallOutcome(True, None, f"{outcome}: the station did not answer {action} within {wait:g} s")

    async def reserve(
        self, station_id: str, id_token: str, *, connector: int | None, valid_for_s: float, timeout_s: float = 30.0
    ) -> CallOutcome:
        """``POST /stations/{id}/reservations``; the outcome is the station's answer to ReserveNow.

        Raises:
            OperatorError: no such station (404), a connector it never reported (422), not connected (409).
        """
        wait = min(max(timeout_s, 0.1), MAX_CALL_TIMEOUT_S)
        body = {"id_token": id_token, "evse_id": connector, "valid_for_s": valid_for_s}
        path = f"/stations/{_segment(station_id)}/reservations"
        out = await self._json("POST", path, json=body, params={"timeout": wait}, timeout=wait + 10.0)
        call, status = out["call"], out["reservation"]["status"]
        return CallOutcome(True, call.get("payload") if call["outcome"] == "result" else None, status)

    async def update_firmware(
        self, station_id: str, firmware: FirmwareImage, *, retrieve_at: datetime, timeout_s: float = 30.0
    ) -> CallOutcome:
        """``POST /firmware-files`` (409: stored already, kept), then ``POST /stations/{id}/firmware`` or, signed,
        ``/signed-firmware``; the outcome is the station's answer, its detail the status the CSMS stored of it.

        Raises:
            OperatorError: the image is refused (413, 422), no such station (404), not connected (409).
        """
        stored = await self.http.request(
            "POST", "/firmware-files", params={"name": firmware.name}, content=firmware.image
        )
        if stored.status_code not in (201, 409):
            raise failure(stored)
        wait = min(max(timeout_s, 0.1), MAX_CALL_TIMEOUT_S)
        body: dict[str, Any] = {"name": firmware.name, "retrieve_at": retrieve_at.isoformat()}
        route = "firmware"
        if firmware.signing_certificate is not None and firmware.signature is not None:
            body |= {"signing_certificate": firmware.signing_certificate, "signature": firmware.signature}
            route = "signed-firmware"
        path = f"/stations/{_segment(station_id)}/{route}"
        out = await self._json("POST", path, json=body, params={"timeout": wait}, timeout=wait + 10.0)
        call = out["call"]
        answer = call.get("payload") if call["outcome"] == "result" else None
        return CallOutcome(True, answer, out["transfer"]["call_status"] or call["outcome"])

    async def _reservation_request(
        self, station_id: str, action: str, payload: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        """A reservation is chargetwin's (it picks the id): ReserveNow becomes a request for one; a
        CancelReservation of a reservation it holds goes through the cancel endpoint. A cancellation of an id it
        does not hold (a test of the station's refusal) is sent as a plain call."""
        station = f"/stations/{_segment(station_id)}"
        if action == "CancelReservation":
            reservation_id = int(payload["reservationId"])
            found = await self.http.request("GET", f"{station}/reservations", params={"status": "active"})
            held = found.status_code == 200 and any(r["id"] == reservation_id for r in found.json())
            if held:
                return f"{station}/reservations/{reservation_id}/cancel", {}
            return f"{station}/calls/CancelReservation", payload
        return f"{station}/reservations", reservation_body(payload)

    async def _send_local_list(self, station_id: str, payload: dict[str, Any], wait: float) -> CallOutcome:
        """A list update without a version: chargetwin numbers its lists itself (``/local-list``)."""
        body = {"update_type": payload.get("updateType", "Differential")}
        body["entries"] = [list_entry(item) for item in payload.get("localAuthorizationList") or []]
        out = await self._json(
            "POST",
            f"/stations/{_segment(station_id)}/local-list",
            json=body,
            params={"timeout": wait},
            timeout=wait * 3 + 10.0,
        )
        if not out["calls"]:
            return CallOutcome(True, None, "the station's list already holds these entries: nothing was sent")
        last = out["calls"][-1]
        if last["outcome"] == "result":
            return CallOutcome(True, last.get("payload") or {}, "result")
        return CallOutcome(True, None, f"SendLocalList: {last['status']}")

    async def _pages(self, path: str, **params: Any) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        while True:
            page = await self._json("GET", path, params={**params, "limit": PAGE, "offset": len(rows)})
            rows += page
            if len(page) < PAGE:
                return rows

    async def transactions(self, station_ids: list[str], since: datetime) -> list[StoredTransaction]:
        """Each station's transactions that started at or after ``since``, energy as the CSMS computed it."""
        out = []
        for station_id in station_ids:
            for row in await self._pages("/transactions", station_id=station_id, since=since.isoformat()):
                out.append(
                    StoredTransaction(
                        station_id=row["station_id"],
                        transaction_id=row["charger_transaction_id"],
                        started_at=utc(row["started_at"]),
                        stopped_at=utc(row["stopped_at"]),
                        energy_wh=row["energy_wh"],
                        id_token=row["id_token"],
                        stop_reason=row["stop_reason"],
                        extra={k: row[k] for k in ("id", "evse_id", "connector_id", "status") if k in row},
                    )
                )
        return out

    async def station(self, station_id: str) -> StoredStation:
        row = await self._json("GET", f"/stations/{_segment(station_id)}")
        statuses = {(c["evse_id"], c["connector_id"]): c["status"] for c in row["connectors"] if c["status"]}
        return StoredStation(station_id, row["connected"], statuses, row["registration_status"])

    async def connected_stations(self) -> set[str]:
        """The stations connected to the CSMS now (one ``GET /stations``)."""
        return {row["id"] for row in await self._json("GET", "/stations") if row["connected"]}

    async def uptime(self, station_ids: list[str], start: datetime, end: datetime) -> dict[str, Any]:
        rows = await self._json(
            "GET", "/uptime", params={"period_start": start.isoformat(), "period_end": end.isoformat()}
        )
        ours = set(station_ids)
        return {"ports": [r for r in rows if r["station_id"] in ours]}

    async def alerts(self, station_ids: list[str], since: datetime) -> list[dict[str, Any]]:
        """Every alert the CSMS raised on these stations from ``since`` (its clock) on (``GET /alerts`` rows)."""
        ours = set(station_ids)
        return [
            r
            for r in await self._pages("/alerts")
            if r["station_id"] in ours and (utc(r["raised_at"]) or since) >= since
        ]

    async def register_vehicle(self, vehicle: FleetVehicle) -> None:
        """``POST /fleet/vehicles`` (an existing vehicle is kept), then ``PUT …/plan`` with its weekly departures.
        Without a depot, the vehicle's depot is the CSMS's site (``GET /sites``) that holds its chargers."""
        depot = vehicle.depot_id or await self.site_of(vehicle.stations)
        body = {
            "id": vehicle.vehicle_id, "name": vehicle.vehicle_id, "battery_kwh": vehicle.battery_kwh,
            "id_token": vehicle.id_token, "depot_id": depot, "tz": vehicle.tz,
            "max_ac_kw": vehicle.max_ac_kw, "max_dc_kw": vehicle.max_dc_kw,
        }  # fmt: skip
        response = await self.http.request("POST", "/fleet/vehicles", json=body)
        if response.status_code not in (201, 409):  # 409: registered already
            raise failure(response)
        plan = [{"weekday": d, "time": t, "target_soc_pct": soc} for d, t, soc in vehicle.departures]
        await self._json("PUT", f"/fleet/vehicles/{_segment(vehicle.vehicle_id)}/plan", json={"departures": plan})

    async def onboard(self, garage: Garage, role: str, tokens: list[str], pass_days: int | None) -> None:
        """``POST /properties`` (kept when it exists) on the CSMS's site holding the garage's chargers, then per
        driver: ``POST …/units`` (residents), ``POST …/invitations`` and its redeem URL with their own card."""
        prop = _segment(garage.property_id)
        body = {"id": garage.property_id, "name": garage.name, "site_id": await self.site_of(garage.stations),
                "tz": garage.tz, **garage.terms}  # fmt: skip
        response = await self.http.request("POST", "/properties", json=body)
        if response.status_code not in (201, 409):  # 409: the property exists
            raise failure(response)
        for token in tokens:
            unit = token if role == "resident" else None
            if unit is not None:
                made = await self.http.request("POST", f"/properties/{prop}/units", json={"name": unit})
                if made.status_code not in (201, 409):
                    raise failure(made)
            invitation = {"kind": role, "unit": unit, "pass_days": pass_days}
            code = (await self._json("POST", f"/properties/{prop}/invitations", ok=(201,), json=invitation))["code"]
            await self._json("POST", f"/invitations/{_segment(code)}/redeem", ok=(201,),
                             json={"holder": token, "id_token": token})  # fmt: skip

    async def site_of(self, station_ids: tuple[str, ...]) -> str | None:
        """The id of the CSMS's load-management site with an EVSE of one of ``station_ids`` (None: none)."""
        if not station_ids:
            return None
        if self._sites is None:
            rows = await self._json("GET", "/sites")
            self._sites = {e["station_id"]: r["id"] for r in rows for e in r.get("evses", [])}
        return next((self._sites[s] for s in station_ids if s in self._sites), None)

    async def record_soc(self, vehicle_id: str, soc_pct: float, at: datetime) -> None:
        body = {"vehicle_id": vehicle_id, "soc_pct": soc_pct, "at": at.isoformat(), "source": "telematics"}
        await self._json("POST", "/fleet/telematics", ok=(202,), json=body)

    async def configure(self, station_id: str, setting: str, **values: Any) -> None:
        """``boot_answer``: the station's registration policy (Accepted, Pending or Rejected at its next boot);
        ``tariff``: an OCPI tariff of one ENERGY price, assigned to the station for everyone."""
        if setting == "tariff":
            tariff_id = f"per-kwh-{values.get('currency')}-{values.get('kwh_price')}"
            component = {"type": "ENERGY", "price": str(values.get("kwh_price")), "step_size": 1}
            body = {"currency": values.get("currency"), "elements": [{"price_components": [component]}]}
            await self._json("PUT", f"/tariffs/{_segment(tariff_id)}", ok=(200, 201), json=body)
            assignment = {"tariff_id": tariff_id, "station_id": station_id}
            await self._json("POST", "/tariff-assignments", ok=(201,), json=assignment)
            return
        if setting != "boot_answer" or values.get("status") not in BOOT_POLICIES:
            raise OperatorError(f"chargetwin cannot configure {setting} {values}")
        policy = {"registration_policy": BOOT_POLICIES[values["status"]]}
        await self._json("PATCH", f"/stations/{_segment(station_id)}", json=policy)

    async def set_tariff(self, tariff_id: str, body: dict[str, Any], stations: list[str], group: str | None) -> None:
        """``PUT /tariffs/{id}`` (a changed tariff becomes its next version), then ``POST /tariff-assignments``
        for each station (for ``group``; none: everyone)."""
        await self._json("PUT", f"/tariffs/{_segment(tariff_id)}", ok=(200, 201), json=body)
        for station_id in stations:
            assignment = {"tariff_id": tariff_id, "station_id": station_id, "group_id": group}
            await self._json("POST", "/tariff-assignments", ok=(200, 201), json=assignment)

    async def export_bundle(self) -> bytes:
        """``GET /export``: the whole database as a bundle (``csms export``)."""
        response = await self.http.request("GET", "/export", timeout=BUNDLE_TIMEOUT_S)
        if response.status_code != 200:
            raise failure(response)
        return response.content

    async def import_bundle(self, bundle: bytes) -> dict[str, Any]:
        """``POST /import`` (``csms import``, conflicts refused): the import's report per table."""
        report: dict[str, Any] = await self._json(
            "POST", "/import", content=bundle, headers={"Content-Type": "application/zip"}, timeout=BUNDLE_TIMEOUT_S
        )
        return report

    async def repoint(self, station_id: str, url: str, within_s: float) -> dict[str, Any]:
        """``POST /stations/{id}/repoint`` (``csms migrate repoint``): the re-point's record, ``pending`` while
        the CSMS watches the station (:meth:`repoint_status` follows it)."""
        path = f"/stations/{_segment(station_id)}/repoint"
        record: dict[str, Any] = await self._json("POST", path, json={"url": url, "within_s": within_s})
        return record

    async def repoint_status(self, station_id: str) -> dict[str, Any]:
        """``GET /stations/{id}/repoint``: ``status`` moved, not_moved, refused, cannot_repoint or pending."""
        record: dict[str, Any] = await self._json("GET", f"/stations/{_segment(station_id)}/repoint")
        return record

    async def declare_exclusion(self, station_id: str, start: datetime, end: datetime, note: str) -> int:
        """``POST /exclusions``: a planned outage (``scheduled_maintenance``) excluded from uptime; its id."""
        body = {
            "station_id": station_id, "start": start.isoformat(), "end": end.isoformat(),
            "cause": "scheduled_maintenance", "note": note, "declared_by": "migration",
        }  # fmt: skip
        row: dict[str, Any] = await self._json("POST", "/exclusions", ok=(201,), json=body)
        return int(row["id"])

    async def end_exclusion(self, exclusion_id: int, end: datetime) -> None:
        """``POST /exclusions/{id}/end``: the planned outage took only until ``end``."""
        await self._json("POST", f"/exclusions/{exclusion_id}/end", json={"end": end.isoformat()})

    async def exclusions(self, station_id: str | None = None) -> list[dict[str, Any]]:
        params = {} if station_id is None else {"station_id": station_id}
        rows: list[dict[str, Any]] = await self._json("GET", "/exclusions", params=params)
        return rows

    async def close(self) -> None:
        await self.http.close()
