"""OCPI roaming as the operator sees it: the partners (never their tokens), whether each gets pushes, the push
outbox with every push's attempts and last error, and the OCPI details of locations. The OCPI API itself is
served on its own port (csms/ocpi, docs/ocpi.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import Field

from csms.api.deps import DbSession
from csms.api.schemas import Out, Strict, examples
from csms.services import ocpi

router = APIRouter(prefix="/ocpi", tags=["roaming"])
Country = Annotated[str, Path(pattern=r"^[A-Z]{2}$")]
Party = Annotated[str, Path(pattern=r"^[A-Z0-9]{3}$")]


class PartyOut(Out):
    country_code: str
    party_id: str
    name: str | None
    status: str = Field(description="pending, registered or unregistered")
    roles: list[dict[str, Any]]
    endpoints: list[dict[str, Any]]
    push: bool
    organisation_id: int | None = Field(
        description="the organisation whose stations, sites and tariffs the party sees (null: every organisation's)"
    )
    versions_url: str | None
    updated_at: datetime


class PartyPatch(Strict):
    model_config = examples({"push": False})
    push: bool = Field(description="push EVSE status and sessions to the party (else it pulls)")


class PushOut(Out):
    id: int
    party: int
    module: str
    method: str
    url: str
    status: str = Field(description="pending, delivered or abandoned")
    attempts: int
    next_attempt_at: datetime
    last_status: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class LocationIn(Strict):
    model_config = examples(
        {"address": "Stationsplein 1", "city": "Amsterdam", "country": "NLD", "latitude": "52.378900",
         "longitude": "4.900000", "time_zone": "Europe/Amsterdam", "name": "Central"}
    )  # fmt: skip
    address: str
    city: str
    country: str = Field(description="ISO 3166-1 alpha-3")
    latitude: str
    longitude: str
    time_zone: str = Field(description="IANA, e.g. Europe/Amsterdam")
    name: str | None = None
    postal_code: str | None = None
    publish: bool = True


class LocationOut(LocationIn):
    id: str
    updated_at: datetime


@router.get("/parties", response_model=list[PartyOut])
def parties(db: DbSession) -> Any:
    return ocpi.list_parties(db)


@router.patch("/parties/{country_code}/{party_id}", response_model=PartyOut)
def set_push(country_code: Country, party_id: Party, body: PartyPatch, db: DbSession) -> Any:
    """Whether the party gets pushes. 404: no such party."""
    return ocpi.set_push(db, country_code, party_id, body.push, datetime.now(UTC))


@router.get("/pushes", response_model=list[PushOut])
def pushes(
    db: DbSession,
    status: Annotated[str | None, Query(pattern="^(pending|delivered|abandoned)$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """The latest pushes to partners, newest first: a failing one shows its attempts, last HTTP status and error."""
    return ocpi.pushes(db, status, limit)


@router.get("/locations", response_model=list[LocationOut])
def locations(db: DbSession) -> Any:
    return [LocationOut.model_validate({**{k: getattr(r, k) for k in LocationOut.model_fields}}) for r in
            ocpi.locations(db)]  # fmt: skip


@router.put("/locations/{location_id}", response_model=LocationOut)
def put_location(
    location_id: Annotated[str, Path(min_length=1, max_length=36)], body: LocationIn, db: DbSession
) -> Any:
    """Publish a site (or a station in no site) as an OCPI location with its address. 422 names the field."""
    row = ocpi.set_location(db, location_id, body.model_dump(), datetime.now(UTC))
    return LocationOut.model_validate({k: getattr(row, k) for k in LocationOut.model_fields})
