"""Test helpers: a station session paired with the batch processor through a fake link (no sockets).

``StationPair`` plays the gateway's three steps by hand: feed a frame with the fake clock's ``now``, run the
batch processor inline and release its answers, then drain what the session has to send. The clock only
moves when a test moves it, so timeouts are checked at exact virtual times.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from csms.core.processor import BatchProcessor, release
from csms.core.session import StationSession
from csms.ocpp import framing
from csms.ocpp.convert import format_time
from csms.ocpp.framing import CallError, CallResult, Message
from csms.services import stations
from csms.services.config import CsmsConfig
from csms.store import models


def on_commit(factory: sessionmaker[Session], hook: Any) -> sessionmaker[Session]:
    """Sessions (and batches) on the same database whose every COMMIT first calls ``hook()``: a hook that
    raises makes the commit fail, one that waits holds it open."""
    engine = factory.kw["bind"].execution_options()  # its own event listeners, the same pool

    @event.listens_for(engine, "commit")
    def _before_commit(_connection: Any) -> None:
        hook()

    return sessionmaker(engine, expire_on_commit=False)


def failing_commits(factory: sessionmaker[Session]) -> sessionmaker[Session]:
    def fail() -> None:
        raise OperationalError("COMMIT", {}, Exception("disk I/O error"))

    return on_commit(factory, fail)


#: The fake clock starts here (2026-01-15T22:00:00Z), in POSIX seconds.
T0 = datetime(2026, 1, 15, 22, 0, tzinfo=UTC).timestamp()


def ts(offset_s: float = 0.0) -> str:
    """An OCPP date-time ``offset_s`` seconds after T0."""
    return format_time(datetime.fromtimestamp(T0, UTC) + timedelta(seconds=offset_s))


def call_frame(unique_id: str, action: str, payload: dict[str, Any]) -> str:
    return orjson.dumps([2, unique_id, action, payload]).decode()


@dataclass
class StationPair:
    """One station's CSMS session, driven inline, with a fake clock."""

    session_factory: sessionmaker[Session]
    version: str = "1.6"
    station_id: str = "cs1"
    config: CsmsConfig = field(default_factory=CsmsConfig)
    registration_status: str | None = "Accepted"
    policy: str = "accept"
    provision: bool = True
    now: float = T0

    def __post_init__(self) -> None:
        if self.provision:
            with self.session_factory() as db:
                stations.provision(
                    db,
                    self.station_id,
                    ocpp_version=self.version,
                    password=None,
                    now=datetime.fromtimestamp(self.now, UTC),
                    policy=self.policy,
                )
                row = db.get(models.Station, self.station_id)
                assert row is not None
                row.registration_status = self.registration_status
                db.commit()
        self.session = StationSession(
            self.station_id,
            self.version,  # type: ignore[arg-type]
            self.config,
            registration_status=self.registration_status,
            id_prefix="csms-",
        )
        self.processor = BatchProcessor(self.session_factory, self.config)
        self._ids = itertools.count(1)
        self.wire: list[str] = []  # every frame the CSMS sent, in order

    # ---- the fake link -----------------------------------------------------------------------------------
    def send(self, frame: str | bytes) -> list[str]:
        """The station sends one frame; returns what the CSMS sends back (after the commit)."""
        self.session.receive_frame(frame, self.now)
        self.commit()
        return self.drain()

    def commit(self) -> None:
        work = self.session.take_work()
        if work or work.log_rows:
            batch = [(self.session, work)]
            release(self.processor.process(batch, self.now), batch)

    def drain(self) -> list[str]:
        frames = self.session.frames_to_send()
        self.wire.extend(frames)
        return frames

    def call(self, action: str, payload: dict[str, Any], unique_id: str | None = None) -> Message:
        """Send a CALL and return the one answer (asserting there is exactly one, for this id)."""
        unique_id = unique_id or f"m{next(self._ids)}"
        out = self.send(call_frame(unique_id, action, payload))
        assert len(out) == 1, out
        answer = framing.decode(out[0])
        assert isinstance(answer, CallResult | CallError)
        assert answer.unique_id == unique_id
        return answer

    def ok(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        answer = self.call(action, payload)
        assert isinstance(answer, CallResult), answer
        return answer.payload

    def error(self, action: str, payload: dict[str, Any]) -> str:
        answer = self.call(action, payload)
        assert isinstance(answer, CallError), answer
        return answer.code

    # ---- the clock ---------------------------------------------------------------------------------------
    def advance_to(self, now: float) -> list[str]:
        """Move the clock and fire the session's timer if it is due; returns frames sent meanwhile."""
        self.now = now
        deadline = self.session.next_deadline()
        if deadline is not None and deadline <= now:
            self.session.handle_timer(now)
        self.commit()
        return self.drain()

    # ---- the store ---------------------------------------------------------------------------------------
    def count(self, model: type[models.Base]) -> int:
        with self.session_factory() as db:
            return db.scalar(select(func.count()).select_from(model)) or 0

    def rows(self, model: type[models.Base], **where: Any) -> list[Any]:
        with self.session_factory() as db:
            query = select(model)
            for key, value in where.items():
                query = query.where(getattr(model, key) == value)
            return list(db.scalars(query.order_by(model.id)))  # type: ignore[attr-defined]

    def station(self) -> models.Station:
        with self.session_factory() as db:
            row = db.get(models.Station, self.station_id)
            assert row is not None
            return row


def boot_payload(version: str) -> dict[str, Any]:
    if version == "1.6":
        return {"chargePointVendor": "Vendor", "chargePointModel": "Model"}
    return {"chargingStation": {"vendorName": "Vendor", "model": "Model"}, "reason": "PowerUp"}


def heartbeat() -> dict[str, Any]:
    return {}
