"""Charging sessions with their energy, filtered by station, start time and status."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from csms.api.auth import Caller
from csms.api.deps import DbSession
from csms.api.schemas import SampleOut, TransactionDetail, TransactionOut, UtcDatetime
from csms.domain.transaction import TransactionStatus
from csms.services import cdrs, transactions

router = APIRouter(prefix="/transactions", tags=["transactions"])


@router.get("", response_model=list[TransactionOut])
def list_transactions(
    db: DbSession,
    caller: Caller,
    station_id: Annotated[str | None, Query(max_length=48)] = None,
    since: Annotated[UtcDatetime | None, Query(description="started at or after (ISO 8601; naive is UTC)")] = None,
    until: Annotated[UtcDatetime | None, Query(description="started before")] = None,
    status: TransactionStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> list[TransactionOut]:
    """Transactions in id order; each with its energy (`energy_wh`, `energy_kwh`)."""
    query = transactions.query(
        station_id=station_id, since=since, until=until, status=status, organisation_id=caller.scope
    )
    rows = db.scalars(query.limit(limit).offset(offset))
    return [TransactionOut.model_validate(transactions.summary(tx)) for tx in rows]


@router.get("/{transaction_id}", response_model=TransactionDetail)
def get_transaction(transaction_id: Annotated[int, Path(ge=1, le=2**31 - 1)], db: DbSession) -> TransactionDetail:
    """One transaction with its meter samples in time order."""
    tx = transactions.get(db, transaction_id)
    samples = [SampleOut.model_validate(s) for s in transactions.samples_of(db, transaction_id)]
    return TransactionDetail.model_validate({**transactions.summary(tx), "samples": samples})


@router.get("/{transaction_id}/cdr")
def get_cdr(transaction_id: Annotated[int, Path(ge=1, le=2**31 - 1)], db: DbSession) -> dict[str, Any]:
    """The session's OCPI 2.2.1 CDR, made when it ended (404 with the reason while it runs, or when no tariff
    applied to it)."""
    row = cdrs.stored(db, transaction_id)
    return {**row.body, "review_reasons": row.review_reasons, "tariff_version": row.tariff_version}
