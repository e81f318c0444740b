"""Request dependencies: one database transaction per request, the gateway.

The database session dependency is the API's only transaction boundary: the endpoint (through services)
adds and flushes, and the dependency commits once when the endpoint returned, or rolls back when it
raised. It runs with ``scope="function"``, so the commit happens *before* the response is sent and a
failed commit is reported to the client instead of being hidden behind a 2xx.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, TypeVar

from fastapi import Depends, HTTPException, Request, status
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from csms.gateway.server import Gateway
from csms.store.database import read_only_factory

T = TypeVar("T")


def _factory(request: Request) -> sessionmaker[Session]:
    return request.app.state.session_factory


def read_factory(request: Request) -> sessionmaker[Session]:
    state = request.app.state
    if getattr(state, "read_session_factory", None) is None:
        state.read_session_factory = read_only_factory(state.session_factory)
    return state.read_session_factory


def _audited(request: Request, db: Session) -> Session:
    """The session records what it changes for the request's audit entry (csms/api/audit.py)."""
    collector = getattr(request.state, "audit", None)
    if collector is not None:
        db.info["audit"] = collector
    return db


def db_session(request: Request) -> Iterator[Session]:
    # GET/HEAD only read: they must not queue for SQLite's write lock behind the gateway's group commit.
    reading = request.method in ("GET", "HEAD")
    with (read_factory(request) if reading else _factory(request))() as db:
        _audited(request, db)
        try:
            yield db
        except BaseException:
            db.rollback()
            raise
        else:
            db.commit()


DbSession = Annotated[Session, Depends(db_session, scope="function")]


def gateway(request: Request) -> Gateway:
    return request.app.state.gateway


GatewayDep = Annotated[Gateway, Depends(gateway)]


async def in_transaction(request: Request, work: Callable[[Session], T]) -> T:
    """For ``async`` endpoints: run ``work`` in one transaction on a worker thread (never on the event loop)."""

    def run() -> T:
        with _factory(request)() as db, db.begin():
            return work(_audited(request, db))

    return await run_in_threadpool(run)


# ---- refusals of authentication (who is calling: csms/api/auth.py) --------------------------------------------
def unauthorized(reason: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, reason, headers={"WWW-Authenticate": "Bearer"})
