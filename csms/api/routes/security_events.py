"""Security events: what stations reported and what the CSMS detected, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from csms.api.auth import Caller
from csms.api.deps import DbSession
from csms.api.schemas import Out, UtcDatetime
from csms.services import security_events

router = APIRouter(prefix="/security-events", tags=["security"])


class SecurityEventOut(Out):
    id: int
    at: datetime
    type: str
    origin: str
    station_id: str | None
    source: str | None
    detail: dict[str, Any]


@router.get("", response_model=list[SecurityEventOut])
def list_security_events(  # noqa: PLR0913 - one query parameter per filter
    db: DbSession,
    caller: Caller,
    station_id: Annotated[str | None, Query(max_length=48)] = None,
    type: Annotated[str | None, Query(max_length=50, description="e.g. bad_password, TamperDetectionActivated")] = None,
    origin: Literal["csms", "station"] | None = None,
    source: Annotated[str | None, Query(max_length=64, description="the peer address")] = None,
    since: Annotated[UtcDatetime | None, Query(description="at or after (ISO 8601; naive is UTC)")] = None,
    until: Annotated[UtcDatetime | None, Query(description="before")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> list[SecurityEventOut]:
    """Events matching every filter given, newest first. Repeats of one event within a minute are one row
    whose `detail.repeats` counts them."""
    rows = security_events.list_events(
        db,
        limit=limit,
        offset=offset,
        station_id=station_id,
        type=type,
        origin=origin,
        source=source,
        since=since,
        until=until,
        organisation_id=caller.scope,
    )
    return [SecurityEventOut.model_validate(security_events.as_dict(row)) for row in rows]


@router.get("/types", response_model=dict[str, str])
def security_event_types() -> dict[str, str]:
    """The types the CSMS records itself, with what each means (stations report the OCPP list's types)."""
    return security_events.CSMS_TYPES
