"""Tariffs sender: the OCPI 2.2.1 tariffs the CSMS stores (:mod:`csms.services.tariffs`), as last set, with this
CPO's country code and party id and their ``last_updated``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from csms.ocpi import envelope as env
from csms.ocpi.deps import OcpiConfig, RegisteredCaller, config_of, in_db
from csms.services import tariffs

router = APIRouter(prefix="/2.2.1/tariffs")


def build(db: Any, config: OcpiConfig, organisation_id: int | None = None) -> list[tuple[datetime, dict[str, Any]]]:
    """Every tariff (of one organisation, when given) as an OCPI Tariff of this CPO, with when it last changed."""
    return [
        (row.updated_at, {**row.body, "country_code": config.country_code, "party_id": config.party_id,
                          "id": row.id, "last_updated": env.iso(row.updated_at)})
        for row in tariffs.list_tariffs(db, organisation_id)
    ]  # fmt: skip


@router.get("")
async def list_tariffs(request: Request, caller: RegisteredCaller) -> JSONResponse:
    page = env.page_of(request)
    config = config_of(request)
    found = await in_db(request, lambda db: build(db, config, caller.organisation_id))
    chosen, headers = env.paginate(request, page, found, lambda item: item[0], config.base_url)
    return env.ok([body for _, body in chosen], headers=headers)
