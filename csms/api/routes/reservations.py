"""Reservations: make one (the CSMS picks its id and sends ReserveNow), list them, cancel one
(CancelReservation). The station's answer is stored before it is returned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from csms.api.auth import Caller
from csms.api.calls import Timeout, call_station
from csms.api.deps import GatewayDep, in_transaction
from csms.api.routes.stations import StationPath
from csms.api.schemas import ReservationCallOut, ReservationOut, ReservationRequest
from csms.core.plugins.reservations import ReservationExpiry
from csms.gateway.server import Gateway
from csms.ocpp import commands
from csms.ocpp.outgoing import Call
from csms.services import reservations, stations
from csms.services.errors import Conflict

router = APIRouter(tags=["reservations"])

ReservationPath = Annotated[int, Path(ge=1, le=2**31 - 1, description="the reservation's id")]
StatusQuery = Annotated[str | None, Query(pattern="^(" + "|".join(reservations.STATUSES) + ")$")]


@router.post("/stations/{station_id}/reservations", response_model=ReservationCallOut)
async def reserve(
    request: Request, station_id: StationPath, body: ReservationRequest, gateway: GatewayDep, timeout: Timeout = None
) -> Any:
    """ReserveNow with an id the CSMS chose. 404: no such station; 422: an expiry not in the future, a
    connector/EVSE the station never reported (or a connector type asked of 1.6); 409: not connected.
    The reservation is `active` when the station Accepted, else the station's refusal or `failed`."""
    now = datetime.now(UTC)
    expires_at = body.expires_at or now + timedelta(seconds=body.valid_for_s or 0)

    def create(db: Any) -> tuple[int, Call]:
        wanted = reservations.Wanted(
            id_token=body.id_token,
            id_token_type=body.id_token_type,
            expires_at=expires_at,
            evse_id=body.evse_id or None,
            connector_type=body.connector_type,
            group_id=body.group_id_token,
        )
        row = reservations.create(db, station_id, wanted, now)
        version = stations.get(db, station_id).ocpp_version
        return row.id, commands.reserve_now(version, reservations.call_of(row))

    reservation_id, (action, payload) = await in_transaction(request, create)
    try:
        outcome = await call_station(gateway, station_id, action, payload, timeout)
    except Conflict:
        await in_transaction(request, lambda db: reservations.forget(db, reservation_id))
        raise
    stored = await in_transaction(
        request,
        lambda db: reservations.as_dict(reservations.answered(db, reservation_id, outcome, datetime.now(UTC))),
    )
    expiry = _expiry(gateway)
    if stored["status"] == reservations.ACTIVE and expiry is not None:
        expiry.expect(stored["expires_at"])
    return {"call": outcome, "reservation": stored}


def _expiry(gateway: Gateway) -> ReservationExpiry | None:
    return next((p for p in gateway.host.plugins if isinstance(p, ReservationExpiry)), None)


@router.post("/stations/{station_id}/reservations/{reservation_id}/cancel", response_model=ReservationCallOut)
async def cancel(
    request: Request,
    station_id: StationPath,
    reservation_id: ReservationPath,
    gateway: GatewayDep,
    timeout: Timeout = None,
) -> Any:
    """CancelReservation of an active reservation. 404: no such reservation of this station; 409: it is not
    active (ended, refused), or the station is not connected. `cancelled` once the station Accepted."""

    def target(db: Any) -> Call:
        reservations.to_cancel(db, station_id, reservation_id)
        return commands.cancel_reservation(stations.get(db, station_id).ocpp_version, reservation_id)

    action, payload = await in_transaction(request, target)
    outcome = await call_station(gateway, station_id, action, payload, timeout)
    stored = await in_transaction(
        request,
        lambda db: reservations.as_dict(reservations.cancel_answered(db, reservation_id, outcome, datetime.now(UTC))),
    )
    return {"call": outcome, "reservation": stored}


@router.get("/stations/{station_id}/reservations", response_model=list[ReservationOut])
async def station_reservations(
    request: Request,
    station_id: StationPath,
    status: StatusQuery = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> Any:
    """The station's reservations, newest first (404: no such station)."""

    def read(db: Any) -> list[dict[str, Any]]:
        stations.get(db, station_id)
        rows = reservations.listing(db, station_id=station_id, status=status, limit=limit, offset=offset)
        return [reservations.as_dict(r) for r in rows]

    return await in_transaction(request, read)


@router.get("/reservations", response_model=list[ReservationOut])
async def list_reservations(
    request: Request,
    caller: Caller,
    station_id: Annotated[str | None, Query(max_length=48)] = None,
    status: StatusQuery = None,
    id_token: Annotated[str | None, Query(max_length=36)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> Any:
    """Every reservation, newest first, filtered by station, status or token."""
    return await in_transaction(
        request,
        lambda db: [
            reservations.as_dict(r)
            for r in reservations.listing(
                db,
                station_id=station_id,
                status=status,
                id_token=id_token,
                limit=limit,
                offset=offset,
                organisation_id=caller.scope,
            )
        ],
    )


@router.get("/reservations/{reservation_id}", response_model=ReservationOut)
async def get_reservation(request: Request, reservation_id: ReservationPath) -> Any:
    """One reservation (404: unknown)."""
    return await in_transaction(request, lambda db: reservations.as_dict(reservations.get(db, reservation_id)))
