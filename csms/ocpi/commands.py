"""Commands receiver: an eMSP asks for START_SESSION, STOP_SESSION, RESERVE_NOW, CANCEL_RESERVATION or
UNLOCK_CONNECTOR. Each is the OCPP call the CSMS already sends (:mod:`csms.ocpp.commands`, through the API's
:func:`csms.api.calls.call_station`; reservations through :mod:`csms.services.reservations`). The request is answered
at once with a CommandResponse (ACCEPTED with the time the result may take, or REJECTED / UNKNOWN_SESSION /
NOT_SUPPORTED with why); the station's answer becomes the CommandResult, POSTed to the eMSP's ``response_url``
through the push outbox (retried like every push)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from csms.api.calls import call_station
from csms.core.plugins.reservations import ReservationExpiry
from csms.ocpi import envelope as env
from csms.ocpi import models as m
from csms.ocpi.deps import Caller, RegisteredCaller, Stations, in_db, now_of
from csms.ocpi.locations import in_service, location_id_of, parse_uid, visible
from csms.ocpi.tokens import speaks_for
from csms.ocpp import commands
from csms.ocpp.outgoing import Call
from csms.services import ocpi as store
from csms.services import reservations, stations
from csms.services.errors import DomainError
from csms.store.models import OcpiCommand, OcpiLocation, OcpiParty, OcpiToken, Reservation, Station, Transaction

router = APIRouter(prefix="/2.2.1/commands")

#: How long the eMSP is told the result may take, seconds (the station's answer, or our call's timeout).
TIMEOUT_S = 30
MODELS: dict[str, type[BaseModel]] = {
    "START_SESSION": m.StartSession,
    "STOP_SESSION": m.StopSession,
    "RESERVE_NOW": m.ReserveNow,
    "CANCEL_RESERVATION": m.CancelReservation,
    "UNLOCK_CONNECTOR": m.UnlockConnector,
}


class Refused(Exception):
    """Answered at once with this CommandResponse result (REJECTED, UNKNOWN_SESSION) and message."""

    def __init__(self, result: str, message: str) -> None:
        super().__init__(message)
        self.result, self.message = result, message


def response(result: str, message: str | None = None) -> JSONResponse:
    data: dict[str, Any] = {"result": result, "timeout": TIMEOUT_S}
    if message:
        data["message"] = [{"language": "en", "text": message[:512]}]
    return env.ok(data)


#: Work that sends the OCPP call and gives the CommandResult (result, message).
Send = Callable[[], Awaitable[tuple[str, str | None]]]
#: The recorded command's id and its Send.
Prepared = tuple[int, Send]


@router.post("/{command}")
async def command(request: Request, command: str, caller: RegisteredCaller) -> JSONResponse:
    model = MODELS.get(command)
    if model is None:
        return response("NOT_SUPPORTED", f"{command!r} is not a command this CPO supports")
    try:
        raw = await request.json()
    except ValueError:
        raise env.OcpiError(env.INVALID_PARAMETERS, "body: not JSON") from None
    try:
        body = model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise env.OcpiError(
            env.INVALID_PARAMETERS, f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
        ) from None
    gateway: Stations = request.app.state.gateway
    try:
        command_id, send = await _prepare(request, gateway, caller, command, body)
    except Refused as refused:
        return response(refused.result, refused.message)
    task = asyncio.create_task(_finish(request, command_id, send))
    request.app.state.command_tasks = getattr(request.app.state, "command_tasks", set()) | {task}
    task.add_done_callback(lambda t: request.app.state.command_tasks.discard(t))
    return response("ACCEPTED")


async def _finish(request: Request, command_id: int, send: Send) -> None:
    """The station's answer as the CommandResult, queued for the response_url."""
    try:
        result, message = await send()
    except DomainError as exc:  # not connected any more, or the call cannot be sent
        result, message = "FAILED", exc.message
    now = now_of(request)
    await in_db(request, lambda db: store.command_result(db, command_id, result, message, now))
    worker = getattr(request.app.state, "push_worker", None)
    if worker is not None:
        worker.wake()


def _outcome(outcome: dict[str, Any], ok: tuple[str, ...] = ("Accepted",)) -> tuple[str, str | None]:
    """A call's outcome (result, error, timeout) as a CommandResult."""
    if outcome["outcome"] == "timeout":
        return "TIMEOUT", "the charging station did not answer"
    if outcome["outcome"] != "result":
        return "FAILED", f"the charging station answered an error: {outcome.get('error_code')}"
    status = (outcome.get("payload") or {}).get("status")
    if status in ok:
        return "ACCEPTED", None
    if status == "Occupied":
        return "EVSE_OCCUPIED", None
    if status in ("Faulted", "Unavailable"):
        return "EVSE_INOPERATIVE", None
    if status == "NotSupported":
        return "NOT_SUPPORTED", None
    return ("FAILED" if status == "UnlockFailed" else "REJECTED"), f"the charging station answered {status}"


def _place(db: Session, caller: Caller, location_id: str, uid: str | None) -> tuple[Station, int | None]:
    """The station and EVSE an eMSP names by location and EVSE uid; another organisation's location or station is
    unknown to a party of an organisation (the same answer as one that does not exist)."""
    details = db.get(OcpiLocation, location_id)
    if details is None or not details.publish or not visible(db, location_id, caller.organisation_id):
        raise Refused("REJECTED", f"unknown location {location_id!r}")

    def ours(station: Station) -> bool:
        return in_service(station) and caller.organisation_id in (None, station.organisation_id)

    if uid is None:
        station = next((s for s in db.scalars(select(Station).order_by(Station.id)) if location_id_of(s) ==
                        location_id and ours(s)), None)  # fmt: skip
        if station is None:
            raise Refused("REJECTED", f"location {location_id!r} has no EVSE")
        return station, None
    parsed = parse_uid(uid)
    station = db.get(Station, parsed[0]) if parsed is not None else None
    if parsed is None or station is None or location_id_of(station) != location_id or not ours(station):
        raise Refused("REJECTED", f"unknown EVSE {uid!r} at location {location_id!r}")
    return station, parsed[1]


async def _prepare(
    request: Request, gateway: Stations, caller: Caller, command: str, body: BaseModel
) -> tuple[int, Send]:
    """Check the command and record it; returns its id and the work that sends it. Raises Refused."""
    now = now_of(request)
    if isinstance(body, m.StartSession):
        return await _start(request, gateway, caller, body, now)
    if isinstance(body, m.StopSession):
        return await _stop(request, gateway, caller, body, now)
    if isinstance(body, m.ReserveNow):
        return await _reserve(request, gateway, caller, body, now)
    if isinstance(body, m.CancelReservation):
        return await _cancel(request, gateway, caller, body, now)
    assert isinstance(body, m.UnlockConnector)
    return await _unlock(request, gateway, caller, body, now)


def _connected(gateway: Stations, station_id: str) -> None:
    if not gateway.is_connected(station_id):
        raise Refused("REJECTED", f"the charging station of {station_id!r} is offline")


def _token(db: Session, caller: Caller, token: m.Token) -> None:
    """The eMSP vouches for the token it starts or reserves with: kept like a pushed one (if it is its own)."""
    party = speaks_for(db, caller, token.country_code, token.party_id)
    body = token.model_dump(mode="json", exclude_none=True)
    body["last_updated"] = env.iso(token.last_updated)
    store.put_token(db, party, body, token.last_updated)


async def _start(request: Request, gateway: Stations, caller: Caller, body: m.StartSession, now: datetime) -> Prepared:
    remote_start_id = secrets.randbelow(2**31 - 2) + 1

    def record(db: Session) -> tuple[int, str, Call]:
        station, evse_id = _place(db, caller, body.location_id, body.evse_uid)
        _connected(gateway, station.id)
        _token(db, caller, body.token)
        party = speaks_for(db, caller, body.token.country_code, body.token.party_id)
        row = store.record_command(db, party, "START_SESSION", body.response_url, now, station_id=station.id,
                                   remote_start_id=remote_start_id, token_uid=body.token.uid,
                                   authorization_reference=body.authorization_reference)  # fmt: skip
        call = commands.remote_start(station.ocpp_version, body.token.uid, evse_id, remote_start_id=remote_start_id,
                                     id_token_type="ISO14443" if body.token.type == "RFID" else "Central")  # fmt: skip
        return row.id, station.id, call

    command_id, station_id, (action, payload) = await in_db(request, record)

    async def send() -> tuple[str, str | None]:
        return _outcome(await call_station(gateway, station_id, action, payload, TIMEOUT_S - 5))

    return command_id, send


async def _stop(request: Request, gateway: Stations, caller: Caller, body: m.StopSession, now: datetime) -> Prepared:
    def record(db: Session) -> tuple[int, str, Call]:
        tx = db.get(Transaction, int(body.session_id)) if body.session_id.isdigit() else None
        mine = tx is not None and tx.id_token is not None and db.scalar(
            select(OcpiToken.id).where(OcpiToken.uid == tx.id_token, OcpiToken.party == caller.id).limit(1)
        ) is not None  # fmt: skip
        station = db.get(Station, tx.station_id) if tx is not None else None
        if caller.organisation_id not in (None, station.organisation_id if station is not None else None):
            mine = False  # another organisation's session is unknown to the party
        if tx is None or not mine or tx.stopped_at is not None:
            raise Refused("UNKNOWN_SESSION", f"no running session {body.session_id!r} of yours")
        _connected(gateway, tx.station_id)
        party = db.get(OcpiParty, caller.id)
        assert party is not None
        row = store.record_command(db, party, "STOP_SESSION", body.response_url, now, station_id=tx.station_id,
                                   reference=body.session_id)  # fmt: skip
        version = stations.get(db, tx.station_id).ocpp_version
        return row.id, tx.station_id, commands.remote_stop(version, tx.id, tx.charger_tx_id)

    command_id, station_id, (action, payload) = await in_db(request, record)

    async def send() -> tuple[str, str | None]:
        return _outcome(await call_station(gateway, station_id, action, payload, TIMEOUT_S - 5))

    return command_id, send


async def _reserve(request: Request, gateway: Stations, caller: Caller, body: m.ReserveNow, now: datetime) -> Prepared:
    def record(db: Session) -> tuple[int, int, str, Call]:
        station, evse_id = _place(db, caller, body.location_id, body.evse_uid)
        _connected(gateway, station.id)
        _token(db, caller, body.token)
        wanted = reservations.Wanted(id_token=body.token.uid, expires_at=body.expiry_date.astimezone(UTC),
                                     evse_id=evse_id, group_id=body.token.group_id)  # fmt: skip
        earlier = _active_reservation(db, caller, body.reservation_id)
        try:
            if earlier is None:
                reservation = reservations.create(db, station.id, wanted, now)
            elif earlier.station_id != station.id:
                raise Refused("REJECTED", f"reservation {body.reservation_id!r} is at another charging station: "
                                          "cancel it first")  # fmt: skip
            else:  # 13.3.5: a known reservation_id replaces the reservation (ReserveNow with its id)
                reservation = reservations.replace(db, earlier.id, station.id, wanted, now)
        except DomainError as exc:
            raise Refused("REJECTED", exc.message) from None
        party = speaks_for(db, caller, body.token.country_code, body.token.party_id)
        row = store.record_command(db, party, "RESERVE_NOW", body.response_url, now, station_id=station.id,
                                   reference=body.reservation_id, reservation_id=reservation.id,
                                   token_uid=body.token.uid)  # fmt: skip
        call = commands.reserve_now(station.ocpp_version, reservations.call_of(reservation))
        return row.id, reservation.id, station.id, call

    command_id, reservation_id, station_id, (action, payload) = await in_db(request, record)

    async def send() -> tuple[str, str | None]:
        outcome = await call_station(gateway, station_id, action, payload, TIMEOUT_S - 5)
        stored = await in_db(request, lambda db: reservations.as_dict(
            reservations.answered(db, reservation_id, outcome, now_of(request))))  # fmt: skip
        expiry = next((p for p in gateway.host.plugins if isinstance(p, ReservationExpiry)), None)
        if stored["status"] == reservations.ACTIVE and expiry is not None:
            expiry.expect(stored["expires_at"])
        return _outcome(outcome)

    return command_id, send


def _active_reservation(db: Session, caller: Caller, reference: str) -> Reservation | None:
    """The reservation of the caller's last RESERVE_NOW with this reservation_id, while it is active."""
    made = db.scalar(select(OcpiCommand).where(
        OcpiCommand.party == caller.id, OcpiCommand.command == "RESERVE_NOW",
        OcpiCommand.reference == reference).order_by(OcpiCommand.id.desc()).limit(1))  # fmt: skip
    if made is None or made.reservation_id is None or made.station_id is None:
        return None
    row = db.get(Reservation, made.reservation_id)
    return row if row is not None and row.status == reservations.ACTIVE else None


async def _cancel(
    request: Request, gateway: Stations, caller: Caller, body: m.CancelReservation, now: datetime
) -> Prepared:
    def record(db: Session) -> tuple[int, int, str, Call]:
        made = db.scalar(select(OcpiCommand).where(
            OcpiCommand.party == caller.id, OcpiCommand.command == "RESERVE_NOW",
            OcpiCommand.reference == body.reservation_id).order_by(OcpiCommand.id.desc()).limit(1))  # fmt: skip
        if made is None or made.reservation_id is None or made.station_id is None:
            raise Refused("REJECTED", f"unknown reservation {body.reservation_id!r}")
        try:
            reservations.to_cancel(db, made.station_id, made.reservation_id)
        except DomainError as exc:
            raise Refused("REJECTED", exc.message) from None
        _connected(gateway, made.station_id)
        party = db.get(OcpiParty, caller.id)
        assert party is not None
        row = store.record_command(db, party, "CANCEL_RESERVATION", body.response_url, now,
                                   station_id=made.station_id, reference=body.reservation_id,
                                   reservation_id=made.reservation_id)  # fmt: skip
        version = stations.get(db, made.station_id).ocpp_version
        return row.id, made.reservation_id, made.station_id, commands.cancel_reservation(version, made.reservation_id)

    command_id, reservation_id, station_id, (action, payload) = await in_db(request, record)

    async def send() -> tuple[str, str | None]:
        outcome = await call_station(gateway, station_id, action, payload, TIMEOUT_S - 5)
        await in_db(request, lambda db: reservations.cancel_answered(db, reservation_id, outcome, now_of(request)))
        return _outcome(outcome)

    return command_id, send


async def _unlock(
    request: Request, gateway: Stations, caller: Caller, body: m.UnlockConnector, now: datetime
) -> Prepared:
    if not body.connector_id.isdigit():
        raise Refused("REJECTED", f"unknown connector {body.connector_id!r}")

    def record(db: Session) -> tuple[int, str, Call]:
        station, evse_id = _place(db, caller, body.location_id, body.evse_uid)
        _connected(gateway, station.id)
        party = db.get(OcpiParty, caller.id)
        assert party is not None and evse_id is not None
        row = store.record_command(db, party, "UNLOCK_CONNECTOR", body.response_url, now, station_id=station.id)
        return row.id, station.id, commands.unlock_connector(station.ocpp_version, evse_id, int(body.connector_id))

    command_id, station_id, (action, payload) = await in_db(request, record)

    async def send() -> tuple[str, str | None]:
        outcome = await call_station(gateway, station_id, action, payload, TIMEOUT_S - 5)
        return _outcome(outcome, ok=("Unlocked",))

    return command_id, send
