"""What every OCPI endpoint shares: this CPO's settings, the database, and who is calling (by its token)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Protocol, TypeVar

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from csms.ocpi.envelope import CLIENT_ERROR, OcpiError, Us, check_addressed_to_us
from csms.services import ocpi as store
from csms.services.config import CsmsConfig

if TYPE_CHECKING:
    from csms.core.host import CsmsHost

T = TypeVar("T")


def wall_clock() -> datetime:
    return datetime.now(UTC)


class Stations(Protocol):
    """The CSMS's door to its stations the commands need: ``csms serve``'s gateway, or in a virtual-time run the
    embedded CSMS's (``simulator/embedded_ocpi.py``)."""

    @property
    def host(self) -> CsmsHost: ...

    def is_connected(self, station_id: str) -> bool: ...

    async def route_call(
        self, station_id: str, action: str, payload: dict[str, Any], timeout_s: float | None = None
    ) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class OcpiConfig:
    """This CPO on OCPI: its identity, its name, and the base URL partners reach its OCPI API at (``…/ocpi``)."""

    country_code: str
    party_id: str
    business_name: str = "chargetwin operator"
    website: str | None = None
    base_url: str = ""
    #: The CSMS's settings the pricing of a running session needs (its tariff time zone); None: no running cost.
    pricing: CsmsConfig | None = None
    #: The CPO's clock (UTC): the wall clock, or a virtual-time run's.
    clock: Callable[[], datetime] = field(default=wall_clock, compare=False)
    #: Modules this CPO offers (the version details list these).
    modules: tuple[str, ...] = field(
        default=("credentials", "locations", "tariffs", "tokens", "commands", "sessions", "cdrs")
    )

    @property
    def us(self) -> Us:
        return Us(self.country_code, self.party_id)

    @property
    def versions_url(self) -> str:
        return f"{self.base_url}/versions"

    def module_url(self, module: str) -> str:
        return f"{self.base_url}/2.2.1/{module}"

    def role(self) -> dict[str, Any]:
        details: dict[str, Any] = {"name": self.business_name}
        if self.website:
            details["website"] = self.website
        return {
            "role": "CPO",
            "business_details": details,
            "party_id": self.party_id,
            "country_code": self.country_code,
        }


def config_of(request: Request) -> OcpiConfig:
    config: OcpiConfig = request.app.state.ocpi
    return config


async def in_db(request: Request, work: Callable[[Session], T]) -> T:
    """``work`` in one database transaction on a worker thread (committed when it returns)."""
    factory: sessionmaker[Session] = request.app.state.session_factory

    def run() -> T:
        with factory() as db, db.begin():
            return work(db)

    return await run_in_threadpool(run)


@dataclass(frozen=True, slots=True)
class Caller:
    """The party behind a request's token. ``kind`` A: the registration token (versions and credentials only)."""

    id: int
    country_code: str
    party_id: str
    kind: str
    status: str
    token: str
    #: The organisation whose stations, sites and tariffs it sees (None: every organisation's).
    organisation_id: int | None = None


def token_of(request: Request) -> str:
    """The credentials token of ``Authorization: Token …``: base64 as 2.2.1 says; a plain token (2.1.1 style)
    is accepted too."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "token" or not value.strip():
        raise OcpiError(CLIENT_ERROR, "Authorization: Token <credentials token> is required", 401)
    return value.strip()


def _candidates(value: str) -> list[str]:
    out = []
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
        if decoded.isprintable():
            out.append(decoded)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    return [*out, value]


async def any_caller(request: Request) -> Caller:
    """Any known token, token A included."""
    value = token_of(request)

    def look(db: Session) -> Caller | None:
        for token in _candidates(value):
            party = store.party_by_token(db, token)
            if party is not None:
                return Caller(party.id, party.country_code, party.party_id, party.token_kind or "", party.status,
                              token, party.organisation_id)  # fmt: skip
        return None

    caller = await in_db(request, look)
    if caller is None:
        raise OcpiError(CLIENT_ERROR, "unknown or revoked credentials token", 401)
    check_addressed_to_us(request, config_of(request).us)
    return caller


async def registered_caller(request: Request) -> Caller:
    """A party that completed the credentials handshake (token B or C)."""
    caller = await any_caller(request)
    if caller.kind == "A" or caller.status != store.REGISTERED:
        raise OcpiError(CLIENT_ERROR, "register first: token A opens only versions and credentials", 401)
    return caller


AnyCaller = Annotated[Caller, Depends(any_caller)]
RegisteredCaller = Annotated[Caller, Depends(registered_caller)]


def now() -> datetime:
    return datetime.now(UTC)


def now_of(request: Request) -> datetime:
    """The CPO's time (its config's clock)."""
    return config_of(request).clock()
