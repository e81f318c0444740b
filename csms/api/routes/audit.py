"""The audit trail: who changed what and every refusal of a write, with the stations' security events beside
it, newest first; as JSON or as CSV."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from csms.api.auth import Caller
from csms.api.deps import DbSession
from csms.api.schemas import Out, UtcDatetime
from csms.services import audit

router = APIRouter(prefix="/audit", tags=["audit"])


class AuditOut(Out):
    kind: Literal["audit", "security_event"]
    id: int
    at: datetime
    actor: str
    actor_name: str | None
    organisation_id: int | None
    action: str
    status: int | None
    object_type: str | None
    object_id: str | None
    station_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request: Any
    client: str | None
    request_id: str | None


@router.get("", response_model=list[AuditOut], responses={200: {"content": {"text/csv": {}}}})
def list_audit(  # noqa: PLR0913 - one query parameter per filter
    db: DbSession,
    caller: Caller,
    station_id: Annotated[
        str | None, Query(max_length=48, description="entries and security events of a station")
    ] = None,
    user: Annotated[str | None, Query(max_length=254, description="an actor (user:3, key:5) or an e-mail")] = None,
    object_type: Annotated[str | None, Query(max_length=50, description="e.g. stations, tokens, sites")] = None,
    object_id: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[UtcDatetime | None, Query(description="at or after (ISO 8601; naive is UTC)")] = None,
    until: Annotated[UtcDatetime | None, Query(description="before")] = None,
    security_events: Annotated[bool, Query(description="merge the stations' security events in")] = True,
    format: Annotated[Literal["json", "csv"], Query(description="csv: a download")] = "json",
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> Any:
    """Newest first. A caller bound to an organisation sees its organisation's entries and the security
    events of its stations; a platform admin sees all."""
    filters = audit.Filters(caller.scope, station_id, user, object_type, object_id, since, until)
    rows = audit.search(db, filters, limit=limit, security_events=security_events)
    if format == "csv":
        return Response(
            audit.to_csv(rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="audit.csv"', "Cache-Control": "no-store"},
        )
    return rows
