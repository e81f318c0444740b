"""Authorization on the station itself: its local authorization list (kept by the CSMS, versioned by it) and
its authorization cache (ClearCache)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from csms.api.calls import Timeout, call_station, station_version
from csms.api.deps import DbSession, GatewayDep
from csms.api.local_lists import list_sync
from csms.api.routes.stations import StationPath
from csms.api.schemas import CallOut, Label, Strict, TokenText, UtcDatetime, examples
from csms.ocpp.local_list import Changes, ListEntry
from csms.services import local_lists

router = APIRouter(prefix="/stations/{station_id}", tags=["local authorization"])

ListStatus = Literal["Accepted", "Blocked", "Expired", "Invalid"]


class ListEntryIn(Strict):
    """One entry the operator writes: with a status it adds or replaces the token, without (null) it removes
    the token (differential updates only)."""

    id_token: TokenText
    status: ListStatus | None = "Accepted"
    type: Label = "ISO14443"
    expiry: UtcDatetime | None = None
    group_id: TokenText | None = None


class LocalListRequest(Strict):
    """Without ``entries`` the CSMS sends what the station's list lacks from its selection of tokens (all
    tokens, or ``token_group``'s); with them, exactly those entries. The version is always the CSMS's."""

    model_config = examples(
        {"update_type": "Differential"},
        {"update_type": "Full", "token_group": "fleet-a"},
        {
            "update_type": "Differential",
            "entries": [{"id_token": "04A1B2C3", "status": "Blocked"}, {"id_token": "OLD1", "status": None}],
        },
    )

    update_type: Literal["Full", "Differential"] = "Differential"
    entries: Annotated[list[ListEntryIn], Field(max_length=10_000)] | None = None
    token_group: TokenText | None = Field(
        default=None, description="put only this group's tokens on the list from now on (null: every token)"
    )
    read_limits: bool = Field(default=False, description="read the station's list limits again first")


class ListCallOut(CallOut):
    update_type: str
    version: int
    entries: int
    status: str


class LocalListSyncOut(BaseModel):
    station_id: str
    version: int = Field(description="the version the station confirmed last")
    status: str = Field(description="the station's answer to the last call (`in step`: nothing to send)")
    calls: list[ListCallOut]


class EntryOut(BaseModel):
    id_token: str
    status: str | None
    type: str | None = None
    expiry: datetime | None = None
    group_id: str | None = None


class LimitsOut(BaseModel):
    max_entries: int | None
    items_per_message: int | None
    bytes_per_message: int | None
    read_at: datetime | None


class LocalListOut(BaseModel):
    station_id: str
    version: int
    reported_version: int | None
    token_group: str | None
    needs_full: bool
    out_of_step_since: datetime | None
    last_status: str | None
    synced_at: datetime | None
    limits: LimitsOut
    entries: list[EntryOut]
    pending: list[EntryOut] = Field(description="changes still to send (status null: a removal)")


class ListVersionOut(BaseModel):
    station_id: str
    reported_version: int | None
    version: int | None = None
    in_step: bool | None = None
    call: CallOut


@router.get("/local-list", response_model=LocalListOut)
def get_local_list(station_id: StationPath, db: DbSession) -> dict[str, Any]:
    """The list the station holds as far as the CSMS knows, its limits, and the changes still to send."""
    return local_lists.describe(db, station_id, datetime.now(UTC))


@router.post("/local-list", response_model=LocalListSyncOut)
async def send_local_list(
    request: Request, station_id: StationPath, body: LocalListRequest | None = None, timeout: Timeout = None
) -> dict[str, Any]:
    """Send SendLocalList now, Full or Differential, numbered by the CSMS; split into several calls when the
    station takes fewer entries per message, refused (422) when the list is larger than the station holds.
    409: not connected."""
    body = body or LocalListRequest()
    sync = list_sync(request)
    if "token_group" in body.model_fields_set:
        await sync.select_group(station_id, body.token_group)
    explicit = None if body.entries is None else _changes(body.entries)
    return await sync.sync(
        station_id, update_type=body.update_type, explicit=explicit, timeout=timeout, read_limits=body.read_limits
    )


@router.get("/local-list/version", response_model=ListVersionOut)
async def local_list_version(request: Request, station_id: StationPath, timeout: Timeout = None) -> dict[str, Any]:
    """GetLocalListVersion: what the station holds, against what the CSMS sent it."""
    return await list_sync(request).version(station_id, timeout)


@router.post("/clear-cache", response_model=CallOut)
async def clear_cache(request: Request, station_id: StationPath, gateway: GatewayDep, timeout: Timeout = None) -> Any:
    """ClearCache: the station forgets the authorizations it cached (Accepted, or Rejected when it has none)."""
    await station_version(request, station_id)
    return await call_station(gateway, station_id, "ClearCache", {}, timeout)


def _changes(entries: list[ListEntryIn]) -> Changes:
    return {
        e.id_token: None if e.status is None else ListEntry(e.status, e.expiry, e.group_id, e.type) for e in entries
    }
