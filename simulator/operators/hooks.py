"""Any CSMS with an HTTP API as an :class:`Operator`, described by a YAML file of HTTP calls (a "hooks file";
``docs/examples/operator-hooks.yaml`` is one, written for chargetwin's own API).

The file names a ``base_url`` and ``headers`` (``${NAME}``: an environment variable), and one HTTP call per
capability it supports: ``provision_station``, ``provision_token``, ``install_contract_root``, ``calls`` (per
OCPP action, ``"*"`` for any), ``read_transactions``, ``read_station``, ``read_uptime``. A call is a method, a
URL, query ``params`` and a JSON ``body``, all templates (:mod:`simulator.operators.templates`), the status
codes that mean success (``expect``, default any 2xx) and, per other status, a call to make instead
(``on_status``: e.g. 409 → PATCH the existing one). A read call maps its answer onto the protocol's fields with
paths. What the file leaves out the operator cannot do, and :meth:`HooksOperator.cannot` says so by name.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from simulator.operators import templates as t
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
from simulator.scenario.loader import ScenarioError, ScenarioIssue, issue_at, load_yaml_model

Json = Any


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpCall(_Strict):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: str = Field(min_length=1, description="relative to base_url; placeholders are quoted as path segments")
    params: dict[str, Json] = Field(default_factory=dict, description="query parameters (null ones are left out)")
    body: Json = None
    expect: list[int] | None = Field(None, description="status codes of success (default: any 2xx)")
    on_status: dict[int, HttpCall] = Field(default_factory=dict, description="per status, a call to make instead")
    answer: str | None = Field(None, description="calls: path of the station's answer in the response")

    def succeeded(self, status: int) -> bool:
        return 200 <= status < 300 if self.expect is None else status in self.expect


class Scaled(_Strict):
    path: str
    scale: float = 1.0


FieldPath = str | Scaled


class ReadList(HttpCall):
    """A read whose answer holds a list of rows (``items``: its path) mapped field by field."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    items: str = ""
    fields: dict[str, FieldPath]


class Connectors(_Strict):
    items: str
    evse: str = "evse_id"
    connector: str = "connector_id"
    status: str = "status"


class ReadStation(HttpCall):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    connected: str | None = None
    registration: str | None = None
    connectors: Connectors | None = None


class HooksFile(_Strict):
    base_url: str = Field(min_length=1)
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(10.0, gt=0, le=600)
    provision_station: HttpCall | None = None
    provision_token: HttpCall | None = None
    install_contract_root: HttpCall | None = None
    calls: dict[str, HttpCall] = Field(default_factory=dict)
    configure: dict[str, HttpCall] = Field(default_factory=dict)  # by setting (base.SETTINGS)
    read_transactions: ReadList | None = None
    read_station: ReadStation | None = None
    read_uptime: ReadList | None = None


class HooksFileError(ScenarioError):
    """A hooks file that cannot be used: every problem with its file, line, column and field."""


#: What each capability's templates may name, and the fields each read maps.
PLACEHOLDERS = {
    "provision_station": {"station_id", "version", "password"},
    "provision_token": {"id_token", "status", "group"},
    "install_contract_root": {"pem", "kind"},
    "calls": {"station_id", "action", "payload", "timeout_s"},
    "configure": {"station_id", "setting", "status", "kwh_price", "currency"},
    "read_transactions": {"station_id", "since"},
    "read_station": {"station_id"},
    "read_uptime": {"station_id", "start", "end"},
}
FIELDS = {
    "read_transactions": (
        {"transaction_id", "energy_wh"},
        {"station_id", "started_at", "stopped_at", "id_token", "stop_reason"},
    ),
    "read_uptime": ({"evse_id", "uptime_pct"}, {"station_id"}),
}


def _call_issues(file: str, loc: tuple[str | int, ...], call: HttpCall, allowed: set[str]) -> list[ScenarioIssue]:
    issues = []
    for part in ("url", "params", "body"):
        for name in sorted(set(t.names(getattr(call, part))) - allowed):
            why = f"unknown placeholder {{{name}}}: here one of " + ", ".join(f"{{{n}}}" for n in sorted(allowed))
            issues.append(issue_at(file, (*loc, part), why))
    for status, then in call.on_status.items():
        issues += _call_issues(file, (*loc, "on_status", str(status)), then, allowed)
    return issues


def _field_issues(file: str, capability: str, read: ReadList) -> list[ScenarioIssue]:
    required, optional = FIELDS[capability]
    issues = [
        issue_at(file, (capability, "fields", n), "required field is missing") for n in required - set(read.fields)
    ]
    for name in sorted(set(read.fields) - required - optional):
        known = ", ".join(sorted(required | optional))
        issues.append(issue_at(file, (capability, "fields", name, "[key]"), f"unknown field {name!r}: one of {known}"))
    return issues


def check(spec: HooksFile, file: str) -> list[ScenarioIssue]:
    """What the models cannot see: placeholders each call may use, read fields, unset environment variables."""
    issues = [
        issue_at(file, loc, f"environment variable {name} is not set")
        for loc, text in [(("base_url",), spec.base_url), *((("headers", k), v) for k, v in spec.headers.items())]
        for name in t.missing_environment(text)
    ]
    for capability, allowed in PLACEHOLDERS.items():
        if capability in ("calls", "configure"):
            for name, call in getattr(spec, capability).items():
                issues += _call_issues(file, (capability, name), call, allowed)
        elif (call := getattr(spec, capability)) is not None:
            issues += _call_issues(file, (capability,), call, allowed)
    for capability in FIELDS:
        if (read := getattr(spec, capability)) is not None:
            issues += _field_issues(file, capability, read)
    return issues


def _value(row: Any, path: FieldPath | None) -> Any:
    if path is None:
        return None
    if isinstance(path, Scaled):
        number = t.as_float(t.pick(row, path.path))
        return None if number is None else number * path.scale
    return t.pick(row, path)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _number(value: Any) -> int:
    return int(t.as_float(value) or 0)


def _answer(response: httpx.Response) -> Any:
    """The response's JSON. Raises OperatorError when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        raise OperatorError(
            f"{response.request.method} {response.request.url}: expected a JSON answer, got {response.text[:100]!r}"
        ) from None


class HooksOperator:
    name = "hooks"

    def __init__(self, spec: HooksFile, file: str = "hooks.yaml", *, transport: httpx.AsyncBaseTransport | None = None):
        self.spec, self.file = spec, Path(file).name
        headers = {key: t.expand_environment(value) for key, value in spec.headers.items()}
        base = t.expand_environment(spec.base_url).rstrip("/") + "/"
        self.http = RetryingClient(base, headers, timeout_s=spec.timeout_s, transport=transport)

    @classmethod
    def from_yaml(cls, path: str | Path, *, transport: httpx.AsyncBaseTransport | None = None) -> HooksOperator:
        """Raises HooksFileError naming the file, line, column and field of every problem."""
        try:
            spec = load_yaml_model(path, HooksFile, "hooks (base_url, headers, provision_station, calls, …)")
        except ScenarioError as exc:
            raise HooksFileError(list(exc.issues)) from None
        issues = check(spec, str(path))
        if issues:
            raise HooksFileError(issues)
        return cls(spec, str(path), transport=transport)

    def cannot(self, capability: Capability, action: str | None = None) -> str | None:
        if capability == "send_call":
            if action is None:
                return None if self.spec.calls else f"{self.file} defines no calls"
            return (
                None
                if action in self.spec.calls or "*" in self.spec.calls
                else f"{self.file} defines no call for {action}"
            )
        if capability == "configure":
            return None if action in self.spec.configure else f"{self.file} defines no configure.{action}"
        if capability == "reserve":
            return f"{self.file}: hooks have no reservations (a ReserveNow call names its own id and expiry)"
        if capability == "update_firmware":
            return f"{self.file}: hooks cannot store a firmware image on the CSMS"
        if capability == "fleet":
            return f"{self.file}: hooks have no fleet records (vehicles, departure plans, telematics)"
        if capability == "onboard":
            return f"{self.file}: hooks have no multifamily properties (invitations, passes)"
        return None if getattr(self.spec, capability) is not None else f"{self.file} defines no {capability}"

    def _require(self, capability: Capability) -> Any:
        why = self.cannot(capability)
        if why is not None:
            raise OperatorError(why)
        return getattr(self.spec, capability)

    async def _do(self, call: HttpCall, context: dict[str, Any], timeout_s: float | None = None) -> httpx.Response:
        params = {k: v for k, v in t.render(call.params, context).items() if v is not None}
        kwargs: dict[str, Any] = {"params": params}
        if call.body is not None:
            kwargs["json"] = t.render(call.body, context)
        if timeout_s is not None:
            kwargs["timeout"] = max(self.spec.timeout_s, timeout_s + 10.0)
        response = await self.http.request(call.method, t.render_url(call.url, context).lstrip("/"), **kwargs)
        then = call.on_status.get(response.status_code)
        if then is not None:
            return await self._do(then, context, timeout_s)
        if not call.succeeded(response.status_code):
            raise failure(response)
        return response

    async def provision_station(self, station_id: str, version: str, password: str | None) -> None:
        call = self._require("provision_station")
        await self._do(call, {"station_id": station_id, "version": version, "password": password})

    async def provision_token(self, id_token: str, *, status: str = "Accepted", group: str | None = None) -> None:
        call = self._require("provision_token")
        await self._do(call, {"id_token": id_token, "status": status, "group": group})

    async def install_contract_root(self, pem: str, *, kind: str = "MO") -> None:
        await self._do(self._require("install_contract_root"), {"pem": pem, "kind": kind})

    async def send_call(
        self, station_id: str, action: str, payload: dict[str, Any], *, timeout_s: float = 30.0
    ) -> CallOutcome:
        call = self.spec.calls.get(action) or self.spec.calls.get("*")
        if call is None:
            raise OperatorError(f"{self.file} defines no call for {action}")
        context = {"station_id": station_id, "action": action, "payload": payload, "timeout_s": timeout_s}
        response = await self._do(call, context, timeout_s)
        answer = None
        if call.answer is not None and response.content:
            picked = t.pick(_answer(response), call.answer)
            answer = picked if isinstance(picked, dict) else None
        return CallOutcome(True, answer, f"HTTP {response.status_code}")

    async def reserve(
        self, station_id: str, id_token: str, *, connector: int | None, valid_for_s: float, timeout_s: float = 30.0
    ) -> CallOutcome:
        raise OperatorError(self.cannot("reserve") or "")

    async def update_firmware(
        self, station_id: str, firmware: FirmwareImage, *, retrieve_at: datetime, timeout_s: float = 30.0
    ) -> CallOutcome:
        raise OperatorError(self.cannot("update_firmware") or "")

    async def register_vehicle(self, vehicle: FleetVehicle) -> None:
        raise OperatorError(self.cannot("fleet") or "")

    async def record_soc(self, vehicle_id: str, soc_pct: float, at: datetime) -> None:
        raise OperatorError(self.cannot("fleet") or "")

    async def onboard(self, garage: Garage, role: str, tokens: list[str], pass_days: int | None) -> None:
        raise OperatorError(self.cannot("onboard") or "")

    async def configure(self, station_id: str, setting: str, **values: Any) -> None:
        call = self.spec.configure.get(setting)
        if call is None:
            raise OperatorError(f"{self.file} defines no configure.{setting}")
        await self._do(call, {"station_id": station_id, "setting": setting, **values})

    async def _rows(
        self, read: ReadList, station_ids: list[str], context: dict[str, Any]
    ) -> list[tuple[str | None, Any]]:
        """The answer's rows, each with the station it was asked for (None: one request for all)."""
        per_station = "station_id" in {*t.names(read.url), *t.names(read.params), *t.names(read.body)}
        asks: list[str | None] = list(station_ids) if per_station else [None]
        rows: list[tuple[str | None, Any]] = []
        for station_id in asks:
            response = await self._do(read, {**context, "station_id": station_id})
            items = t.pick(_answer(response), read.items)
            rows += [(station_id, item) for item in items] if isinstance(items, list) else []
        return rows

    async def transactions(self, station_ids: list[str], since: datetime) -> list[StoredTransaction]:
        read: ReadList = self._require("read_transactions")
        fields, ours = read.fields, set(station_ids)
        out = []
        for asked, row in await self._rows(read, station_ids, {"since": since.isoformat()}):
            station_id = _text(_value(row, fields.get("station_id"))) or asked
            started = t.as_datetime(_value(row, fields.get("started_at")))
            if station_id not in ours or (started is not None and started < since):
                continue
            out.append(
                StoredTransaction(
                    station_id=station_id,
                    transaction_id=str(_value(row, fields["transaction_id"])),
                    started_at=started,
                    stopped_at=t.as_datetime(_value(row, fields.get("stopped_at"))),
                    energy_wh=t.as_float(_value(row, fields["energy_wh"])),
                    id_token=_text(_value(row, fields.get("id_token"))),
                    stop_reason=_text(_value(row, fields.get("stop_reason"))),
                )
            )
        return out

    async def station(self, station_id: str) -> StoredStation:
        read: ReadStation = self._require("read_station")
        data = _answer(await self._do(read, {"station_id": station_id}))
        connected = t.pick(data, read.connected) if read.connected is not None else None
        statuses: dict[tuple[int, int], str] = {}
        if read.connectors is not None:
            ports = t.pick(data, read.connectors.items)
            for port in ports if isinstance(ports, list) else []:
                status = t.pick(port, read.connectors.status)
                if status is not None:
                    key = (
                        _number(t.pick(port, read.connectors.evse)),
                        _number(t.pick(port, read.connectors.connector)),
                    )
                    statuses[key] = str(status)
        registration = _text(t.pick(data, read.registration)) if read.registration is not None else None
        return StoredStation(station_id, connected if isinstance(connected, bool) else None, statuses, registration)

    async def uptime(self, station_ids: list[str], start: datetime, end: datetime) -> dict[str, Any]:
        read: ReadList = self._require("read_uptime")
        ports = []
        context = {"start": start.isoformat(), "end": end.isoformat()}
        for asked, row in await self._rows(read, station_ids, context):
            station_id = _text(_value(row, read.fields.get("station_id"))) or asked
            if station_id in station_ids:
                evse = _value(row, read.fields["evse_id"])
                pct = t.as_float(_value(row, read.fields["uptime_pct"]))
                ports.append({"station_id": station_id, "evse_id": _number(evse), "uptime_pct": pct})
        return {"ports": ports}

    async def close(self) -> None:
        await self.http.close()
