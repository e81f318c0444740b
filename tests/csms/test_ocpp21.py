"""OCPP 2.1 at the 2.0.1 level, end to end over real WebSockets: ``run_server`` (what ``csms serve`` runs) on
loopback, the ``ocpp`` package's own 2.1 ChargePoint as the charger (it checks our answers with its own 2.1
schemas), a raw WebSocket for what a ChargePoint would refuse to send (bad payloads, SEND, CALLRESULTERROR)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import websockets
from ocpp.routing import on
from ocpp.v21 import ChargePoint as ChargePoint21
from ocpp.v21 import call as call21
from ocpp.v21 import call_result as result21

from csms import cli
from csms.ocpp import commands, framing, schemas
from csms.ocpp.errors import ErrorKind, FrameError, LocalCallError
from csms.ocpp.outgoing import ChargingProfile, SchedulePeriod
from csms.ocpp.rpc import FrameRejected, IncomingSend, Outcome, ResultRefused, RpcEndpoint
from csms.ocpp.versions import OCPP21
from csms.runtime.server import Endpoints
from csms.store.models import Station
from tests.csms.test_cli import rows
from tests.support.chargers import NodeCharger
from tests.support.live import live_csms

PASSWORD = "station-password-0021"


class Charger21(ChargePoint21):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reservations: list[dict[str, Any]] = []
        self.starts: list[dict[str, Any]] = []

    @on("ReserveNow")
    def on_reserve_now(self, id: int, expiry_date_time: str, id_token: dict[str, Any], **kw: Any) -> Any:
        self.reservations.append({"id": id, "expiry": expiry_date_time, "id_token": id_token, **kw})
        return result21.ReserveNow(status="Accepted")

    @on("RequestStartTransaction")
    def on_request_start(self, **payload: Any) -> Any:
        self.starts.append(payload)
        return result21.RequestStartTransaction(status="Accepted")


async def add_station(client: httpx.AsyncClient, station_id: str, version: str) -> None:
    body = {"id": station_id, "password": PASSWORD, "ocpp_version": version}
    response = await client.post("/stations", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["ocpp_version"] == version


def connect(endpoints: Endpoints, station_id: str, subprotocol: str) -> Any:
    auth = "Basic " + base64.b64encode(f"{station_id}:{PASSWORD}".encode()).decode()
    url = endpoints.ocpp_url.format(station_id=station_id)
    return websockets.connect(url, subprotocols=[subprotocol], additional_headers={"Authorization": auth})  # type: ignore[list-item]


def iso(offset_s: float = 0.0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).isoformat()


def transaction_event(event_type: str, seq_no: int, trigger: str, wh: float, **extra: Any) -> call21.TransactionEvent:
    sampled = [{"value": wh, "measurand": "Energy.Active.Import.Register", "unit_of_measure": {"unit": "Wh"}}]
    return call21.TransactionEvent(
        event_type=event_type,
        timestamp=iso(seq_no),
        trigger_reason=trigger,
        seq_no=seq_no,
        transaction_info={"transaction_id": "tx-21-1", **extra.pop("info", {})},
        meter_value=[{"timestamp": iso(seq_no), "sampled_value": sampled}],
        **extra,
    )


async def test_ocpp21_chargepoint_boots_charges_and_answers_a_reservation(database_url):
    async with live_csms(database_url) as (endpoints, client):
        await add_station(client, "cp21", "2.1")
        async with connect(endpoints, "cp21", "ocpp2.1") as ws:
            assert ws.subprotocol == "ocpp2.1"
            cp = Charger21("cp21", ws, response_timeout=10)
            runner = asyncio.create_task(cp.start())
            try:
                boot = await cp.call(
                    call21.BootNotification(charging_station={"vendor_name": "Acme", "model": "V21"}, reason="PowerUp")
                )
                assert boot.status == "Accepted"
                await cp.call(
                    call21.StatusNotification(timestamp=iso(), connector_status="Available", evse_id=1, connector_id=1)
                )
                assert (await client.post("/tokens", json={"id_token": "DRIVER-21"})).status_code == 201
                # the typed command: the 2.0.1 builder's payload, valid for the 2.1 station's schemas
                started = await client.post("/stations/cp21/remote-start", json={"id_token": "DRIVER-21", "evse_id": 1})
                assert started.json()["outcome"] == "result", started.text
                remote_start_id = cp.starts[0]["remote_start_id"]

                token = {"id_token": "DRIVER-21", "type": "ISO14443"}
                evse = {"id": 1, "connector_id": 1}
                info = {"remote_start_id": remote_start_id, "charging_state": "Charging"}
                answer = await cp.call(
                    transaction_event("Started", 0, "RemoteStart", 1000.0, id_token=token, evse=evse, info=info)
                )
                assert answer.id_token_info["status"] == "Accepted"
                # TariffChanged is a trigger reason 2.1 added
                await cp.call(transaction_event("Updated", 1, "TariffChanged", 4000.0))
                ended = {"stopped_reason": "EVDisconnected"}
                await cp.call(transaction_event("Ended", 2, "EVCommunicationLost", 8500.0, info=ended))

                [tx] = (await client.get("/transactions", params={"station_id": "cp21"})).json()
                assert (tx["status"], tx["id_token"], tx["energy_wh"]) == ("completed", "DRIVER-21", 7500.0)
                assert tx["stop_reason"] == "EVDisconnected"

                expiry = iso(3600)
                reservation = {
                    "id": 7,
                    "expiryDateTime": expiry,
                    "idToken": {"idToken": "DRIVER-21", "type": "ISO14443"},
                }
                reserved = await client.post("/stations/cp21/calls/ReserveNow", json={**reservation, "evseId": 1})
                assert reserved.status_code == 200, reserved.text
                assert reserved.json()["outcome"] == "result"
                assert reserved.json()["payload"] == {"status": "Accepted"}
                assert cp.reservations == [
                    {"id": 7, "expiry": expiry, "id_token": {"id_token": "DRIVER-21", "type": "ISO14443"}, "evse_id": 1}
                ]
                # a 2.1-only field type: a free idToken type of 2.1 (2.0.1 has an enum) reaches the station
                free = {**reservation, "id": 8, "idToken": {"idToken": "X", "type": "VendorSpecific"}}
                assert (await client.post("/stations/cp21/calls/ReserveNow", json=free)).json()["outcome"] == "result"
                station = (await client.get("/stations/cp21")).json()
                assert station["ocpp_version"] == "2.1"
            finally:
                runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await runner


async def exchange(ws: Any, frame: list[Any]) -> list[Any]:
    await ws.send(json.dumps(frame))
    return json.loads(await asyncio.wait_for(ws.recv(), 10))


BOOT = {"chargingStation": {"vendorName": "Acme", "model": "Raw"}, "reason": "PowerUp"}
STREAM = {"id": 1, "pending": 0, "basetime": "2026-01-15T18:00:00Z", "data": [{"t": 0.5, "v": "7.4"}]}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_bad_input_on_a_21_connection_gets_the_right_callerror(database_url):
    async with live_csms(database_url) as (endpoints, client):
        await add_station(client, "raw21", "2.1")
        await add_station(client, "raw201", "2.0.1")
        async with connect(endpoints, "raw21", "ocpp2.1") as ws:
            assert (await exchange(ws, [2, "b", "BootNotification", BOOT]))[:2] == [3, "b"]
            # valid in 2.0.1 (evseId has no lower bound there), not in 2.1 (evseId >= 1)
            needs = {"evseId": 0, "chargingNeeds": {"requestedEnergyTransfer": "DC"}}
            error = await exchange(ws, [2, "n", "NotifyEVChargingNeeds", needs])
            assert error[:3] == [4, "n", "PropertyConstraintViolation"], error
            # malformed: a TransactionEvent without its required fields
            error = await exchange(ws, [2, "t", "TransactionEvent", {"eventType": "Started"}])
            assert error[:3] == [4, "t", "OccurrenceConstraintViolation"], error
            # a 2.1-only action the CSMS does not serve yet: known, so NotSupported rather than NotImplemented
            alarm = {"controlType": "FreqDroop", "timestamp": "2026-01-15T18:00:00Z"}
            assert (await exchange(ws, [2, "d", "NotifyDERAlarm", alarm]))[:3] == [4, "d", "NotSupported"]
            # SEND and CALLRESULTERROR get no answer: the next frame we read answers the Heartbeat after them
            await ws.send(json.dumps([6, "s1", "NotifyPeriodicEventStream", STREAM]))
            await ws.send(json.dumps([6, "s2", "NotifyPeriodicEventStream", {"id": "bad"}]))
            await ws.send(json.dumps([5, "r1", "FormatViolation", "could not read your answer", {}]))
            assert (await exchange(ws, [2, "h", "Heartbeat", {}]))[:2] == [3, "h"]
            # our call answered with a CALLRESULT that breaks the 2.1 schema: a CALLRESULTERROR goes back
            call = asyncio.create_task(client.post("/stations/raw21/calls/ClearCache", json={}))
            request = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert request[:3] == [2, request[1], "ClearCache"]
            refusal = await exchange(ws, [3, request[1], {"status": "Perhaps"}])
            assert refusal[:3] == [5, request[1], "PropertyConstraintViolation"], refusal
            outcome = (await call).json()
            assert (outcome["outcome"], outcome["error"]["code"]) == ("error", "PropertyConstraintViolation")
        async with connect(endpoints, "raw201", "ocpp2.0.1") as ws:
            assert (await exchange(ws, [2, "b", "BootNotification", BOOT]))[:2] == [3, "b"]
            # 2.0.1 has no SEND: its message type is answered as unknown; 2.1-only actions are not defined
            error = await exchange(ws, [6, "s", "NotifyPeriodicEventStream", STREAM])
            assert error[:3] == [4, "s", "MessageTypeNotSupported"], error
            alarm = {"controlType": "FreqDroop", "timestamp": "2026-01-15T18:00:00Z"}
            assert (await exchange(ws, [2, "d", "NotifyDERAlarm", alarm]))[:3] == [4, "d", "NotImplemented"]


async def eventually(client: httpx.AsyncClient, path: str, check: Any, timeout: float = 10.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        body = (await client.get(path)).json()
        if check(body):
            return body
        assert asyncio.get_running_loop().time() < deadline, f"{path}: {body}"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_twin_is_a_21_charger_over_real_sockets(database_url):
    async with live_csms(database_url) as (endpoints, client):
        await add_station(client, "twin21", "2.1")
        twin = NodeCharger("twin21", PASSWORD, "2.1", [endpoints.ocpp_url.rsplit("/", 1)[0]], 0)
        runner = asyncio.create_task(twin.run())
        try:
            await eventually(client, "/stations/twin21", lambda s: s["registration_status"] == "Accepted")
            assert [a for a, _, _ in twin.acked][:1] == ["BootNotification"]
            read = {
                "getVariableData": [{"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]
            }
            answer = (await client.post("/stations/twin21/calls/GetVariables", json=read)).json()
            assert answer["payload"]["getVariableResult"][0]["attributeStatus"] == "Accepted", answer
            # a 2.1 profile beyond the 2.0.1 level: schema-valid for 2.1, refused by the twin with a reason
            dynamic = {
                "evseId": 1,
                "chargingProfile": {
                    "id": 9,
                    "stackLevel": 0,
                    "chargingProfilePurpose": "TxDefaultProfile",
                    "chargingProfileKind": "Dynamic",
                    "chargingSchedule": [
                        {"id": 1, "chargingRateUnit": "W", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 1}]}
                    ],
                },
            }
            answer = (await client.post("/stations/twin21/calls/SetChargingProfile", json=dynamic)).json()
            assert answer["payload"]["status"] == "Rejected", answer
            assert answer["payload"]["statusInfo"]["reasonCode"] == "UnsupportedRequest"
            assert twin.charger.counters.internal_errors == []
            # a 2.1-only call the twin does not do
            allowed = {"transactionId": "t", "allowedEnergyTransfer": ["AC_single_phase"]}
            refused = (await client.post("/stations/twin21/calls/NotifyAllowedEnergyTransfer", json=allowed)).json()
            assert (refused["outcome"], refused["error"]["code"]) == ("error", "NotSupported")
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner


def test_the_cli_provisions_a_21_station_and_names_the_versions_it_knows(sqlite_url, monkeypatch, capsys):
    monkeypatch.setenv("CHARGETWIN_DATABASE_URL", sqlite_url)
    assert cli.main(["db", "upgrade"]) == 0
    assert cli.main(["stations", "add", "cp21", "--password", PASSWORD, "--ocpp", "2.1"]) == 0
    [station] = rows(sqlite_url, Station)
    assert (station.id, station.ocpp_version) == ("cp21", "2.1")
    with pytest.raises(SystemExit) as refused:
        cli.main(["stations", "add", "cp20", "--password", PASSWORD, "--ocpp", "2.0"])
    assert refused.value.code == 2
    assert "invalid choice: '2.0' (choose from '1.6', '2.0.1', '2.1')" in capsys.readouterr().err


# ---- the sans-IO core: framing and the RPC endpoint -----------------------------------------------------------


HASH = {"hashAlgorithm": "SHA256", "issuerNameHash": "a" * 64, "issuerKeyHash": "b" * 64, "serialNumber": "01"}


def endpoint(version: str) -> RpcEndpoint:
    return RpcEndpoint(version, accepts=lambda action: action != "NotifyDERAlarm")  # type: ignore[arg-type]


def test_types_5_and_6_are_read_only_when_the_version_has_them():
    assert framing.decode('[6,"s","NotifyPeriodicEventStream",{}]', framing.RPC_TYPES_21) == framing.Send(
        "s", "NotifyPeriodicEventStream", {}
    )
    assert framing.decode('[5,"r","FormatViolation","bad",{"x":1}]', framing.RPC_TYPES_21) == framing.CallResultError(
        "r", "FormatViolation", "bad", {"x": 1}
    )
    for frame in ('[6,"s","NotifyPeriodicEventStream",{}]', '[5,"r","FormatViolation","bad",{}]'):
        with pytest.raises(FrameError) as refused:
            framing.decode(frame)
        assert refused.value.kind is ErrorKind.MESSAGE_TYPE_NOT_SUPPORTED
    with pytest.raises(FrameError, match="A SEND has exactly 4 elements"):
        framing.decode('[6,"s","NotifyPeriodicEventStream"]', framing.RPC_TYPES_21)
    for message in (framing.Send("s", "A", {"k": 1}), framing.CallResultError("r", "GenericError", "d", {})):
        assert framing.decode(framing.encode(message), framing.RPC_TYPES_21) == message


def test_a_send_is_never_answered_and_our_own_goes_out_beside_an_outstanding_call():
    rpc = endpoint("2.1")
    [ok] = rpc.receive_frame(json.dumps([6, "s1", "NotifyPeriodicEventStream", STREAM]), 0.0)
    assert isinstance(ok, IncomingSend) and ok.send.payload == STREAM
    [bad] = rpc.receive_frame(json.dumps([6, "s2", "NotifyPeriodicEventStream", {"id": "x"}]), 0.0)
    assert isinstance(bad, FrameRejected) and not bad.answered
    [as_call] = rpc.receive_frame(json.dumps([2, "c", "NotifyPeriodicEventStream", STREAM]), 0.0)
    assert isinstance(as_call, FrameRejected) and as_call.kind is ErrorKind.NOT_IMPLEMENTED
    assert [json.loads(f)[:3] for f in rpc.frames_to_send()] == [[4, "c", "NotImplemented"]]

    rpc.send_call("Heartbeat", {}, 0.0)
    rpc.send_unconfirmed("NotifyPeriodicEventStream", STREAM)
    assert [json.loads(f)[0] for f in rpc.frames_to_send()] == [2, 6]
    with pytest.raises(LocalCallError):
        rpc.send_unconfirmed("NotifyPeriodicEventStream", {"id": 1})
    with pytest.raises(LocalCallError):
        endpoint("2.0.1").send_unconfirmed("NotifyPeriodicEventStream", STREAM)


def test_a_callresulterror_is_taken_note_of_and_never_answered():
    rpc = endpoint("2.1")
    [event] = rpc.receive_frame('[5,"ours","FormatViolation","cannot read it",{}]', 0.0)
    assert isinstance(event, ResultRefused) and event.error.unique_id == "ours"
    assert rpc.frames_to_send() == []


def test_a_bad_callresult_is_refused_with_a_callresulterror_on_21_only():
    for version, answered in (("2.1", [[5, "1", "PropertyConstraintViolation"]]), ("2.0.1", [])):
        rpc = endpoint(version)
        pending = rpc.send_call("ClearCache", {}, 0.0)
        rpc.frames_to_send()
        rpc.receive_frame('[3,"1",{"status":"Perhaps"}]', 1.0)
        assert pending.outcome is Outcome.ERROR
        assert [json.loads(f)[:3] for f in rpc.frames_to_send()] == answered


def test_every_201_command_payload_is_valid_for_a_21_station():
    """The 2.0.1 builders serve 2.1 stations (commands.BUILDERS): each payload they write passes the 2.1 schema."""
    periods = (SchedulePeriod(0, 7400.0), SchedulePeriod(900, 3700.0, 1))
    profile = ChargingProfile(3, 1, 1, "TxDefaultProfile", "W", 1_768_500_000.0, periods)
    calls = [
        commands.remote_start(OCPP21, "T", 1, remote_start_id=5, id_token_type="ISO14443"),
        commands.remote_stop(OCPP21, 1, "tx-1"),
        commands.reset(OCPP21, "soft"),
        commands.change_availability(OCPP21, 1, False),
        commands.trigger(OCPP21, "StatusNotification", 1),
        commands.set_charging_profile(OCPP21, profile),
        commands.get_diagnostics(OCPP21, "https://csms.example/logs", 4, retries=2, retry_interval=30),
        commands.update_firmware(OCPP21, "https://csms.example/fw.bin", 5, "2026-01-15T18:00:00Z"),
        commands.trigger_certificate_renewal(OCPP21),
        commands.delete_certificate(OCPP21, HASH),
        commands.set_password(OCPP21, "p" * 20),
        *commands.upgrade_profile(OCPP21, 2, "wss://csms.example/ocpp", 1),
    ]
    for action, payload in calls:
        schemas.validate(OCPP21, action, "request", payload)
