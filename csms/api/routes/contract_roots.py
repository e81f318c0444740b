"""The roots trusted for ISO 15118 contract certificates (Plug & Charge): mobility operators' and V2G roots."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, status

from csms.api.deps import DbSession
from csms.api.schemas import ContractRootIn, ContractRootOut
from csms.services import contracts

router = APIRouter(prefix="/contract-roots", tags=["plug and charge"])

Fingerprint = Annotated[str, Path(pattern=r"^[0-9a-fA-F]{64}$")]


@router.post("", response_model=ContractRootOut, status_code=status.HTTP_201_CREATED)
def install_root(body: ContractRootIn, db: DbSession) -> ContractRootOut:
    """Trust a CA certificate (PEM) as a root of contract certificates (422 not a CA, 409 installed already)."""
    return ContractRootOut.model_validate(contracts.install_root(db, body.pem, body.kind, datetime.now(UTC)))


@router.get("", response_model=list[ContractRootOut])
def list_roots(db: DbSession) -> list[ContractRootOut]:
    return [ContractRootOut.model_validate(row) for row in contracts.list_roots(db)]


@router.delete("/{fingerprint}", status_code=status.HTTP_204_NO_CONTENT)
def remove_root(fingerprint: Fingerprint, db: DbSession) -> None:
    contracts.remove_root(db, fingerprint)
