"""Request dependencies: one database transaction per request, the gateway.

The database session dependency is the API's only transaction boundary: the endpoint (through services)
adds and flushes, and the dependency commits once when the endpoint returned, or rolls back when it
raised. It runs with ``scope="function"``, so the commit happens *before* the response is sent and a
failed commit is reported to the client instead of being hidden behind a 2xx. On an audited request (every
unsafe one) it hands the session over to the audit trail instead, which commits it together with the
request's audit entry (csms/api/audit.py): the change and its entry are one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

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


def _trail(request: Request) -> Any:
    """The audit trail of an audited request (csms/api/audit.py), None for the others."""
    return getattr(request.state, "audit_trail", None)


def _audited(request: Request, db: Session) -> Session:
    """The session records what it changes for the request's audit entry (csms/api/audit.py)."""
    trail = _trail(request)
    if trail is not None:
        db.info["audit"] = trail.collector
    return db


def db_session(request: Request) -> Iterator[Session]:
    # GET/HEAD only read: they must not queue for SQLite's write lock behind the gateway's group commit.
    reading = request.method in ("GET", "HEAD")
    db = (read_factory(request) if reading else _factory(request))()
    trail = None if reading else _trail(request)
    handed = False
    try:
        _audited(request, db)
        yield db
    except BaseException:
        db.rollback()
        raise
    else:
        if trail is not None:
            # The audit trail commits it together with the request's entry once the status is known.
            trail.hand_over(db)
            handed = True
        else:
            db.commit()
    finally:
        if not handed:
            db.close()


DbSession = Annotated[Session, Depends(db_session, scope="function")]


def gateway(request: Request) -> Gateway:
    return request.app.state.gateway


GatewayDep = Annotated[Gateway, Depends(gateway)]


@contextmanager
def transaction(request: Request, *, last: bool = False) -> Iterator[Session]:
    """One transaction on the calling (worker) thread; the audit entry of what it changed commits with it. The
    ``last`` of a request is handed to the audit trail, which commits it with the entry of the answer."""
    db = _factory(request)()
    trail = _trail(request)
    handed = False
    try:
        yield _audited(request, db)
        if trail is not None and last:
            trail.hand_over(db)
            handed = True
        else:
            if trail is not None:
                trail.record_in(db)
            db.commit()
    except BaseException:
        db.rollback()
        raise
    finally:
        if not handed:
            db.close()


async def in_transaction(request: Request, work: Callable[[Session], T]) -> T:
    """For ``async`` endpoints: run ``work`` in one transaction on a worker thread (never on the event loop)."""

    def run() -> T:
        with transaction(request) as db:
            return work(db)

    return await run_in_threadpool(run)


# ---- refusals of authentication (who is calling: csms/api/auth.py) --------------------------------------------
def unauthorized(reason: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, reason, headers={"WWW-Authenticate": "Bearer"})
