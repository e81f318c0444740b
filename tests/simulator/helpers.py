"""Test helpers: a Charger paired with the real CSMS core through a fake link and a fake clock.

:class:`StationPair` moves frames both ways with zero latency, runs the batch processor inline (as the
simulator will) and advances virtual time from deadline to deadline, so tests can assert exact instants.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from csms.core.processor import BatchProcessor, release
from csms.core.session import StationSession
from csms.ocpp import framing
from csms.ocpp.framing import Call, CallError, CallResult
from csms.ocpp.rpc import PendingCall
from csms.services import authorization, stations
from csms.services.config import CsmsConfig
from csms.store.database import make_engine, make_session_factory
from csms.store.models import Transaction as TxRow
from simulator.station import Charger, ConnectorSpec
from tests.databases import migrated_sqlite

T0 = datetime(2026, 1, 15, 22, 0, tzinfo=UTC).timestamp()
STATION = "CP1"


@dataclass
class FakeMeter:
    """Meter values the test sets by hand (per connector)."""

    energy: dict[int, float] = field(default_factory=dict)
    power: dict[int, float] = field(default_factory=dict)
    socs: dict[int, float | None] = field(default_factory=dict)

    def energy_wh(self, connector_id: int) -> float:
        return self.energy.get(connector_id, 0.0)

    def power_w(self, connector_id: int) -> float:
        return self.power.get(connector_id, 0.0)

    def current_a(self, connector_id: int) -> tuple[float, ...]:
        amps = self.power_w(connector_id) / (3 * 230.0)
        return (amps, amps, amps)

    def voltage_v(self, connector_id: int) -> float:
        return 230.0

    def soc(self, connector_id: int) -> float | None:
        return self.socs.get(connector_id)


@dataclass(frozen=True)
class Sent:
    """A frame the charger sent: time, message (decoded)."""

    at: float
    message: framing.Message

    @property
    def action(self) -> str | None:
        return self.message.action if isinstance(self.message, Call) else None

    @property
    def payload(self) -> dict[str, Any]:
        return self.message.payload if isinstance(self.message, Call | CallResult) else {}


class StationPair:
    def __init__(
        self,
        tmp_path: Path,
        version: str,
        *,
        policy: str = "accept",
        tokens: dict[str, str] | None = None,
        csms: CsmsConfig | None = None,
        seed: int = 7,
        connectors: int | list[ConnectorSpec] = 1,
        config: dict[str, str] | None = None,
        **charger_kwargs: Any,
    ) -> None:
        self.version = version
        self.now = T0
        self.engine = make_engine(migrated_sqlite(tmp_path / "csms.db"))
        self.factory = make_session_factory(self.engine)
        when = datetime.fromtimestamp(T0, UTC)
        with self.factory() as db:
            stations.provision(db, STATION, ocpp_version=version, password=None, now=when, policy=policy)
            for token, status in (tokens or {"TOKEN-OK": "Accepted", "TOKEN-BAD": "Blocked"}).items():
                authorization.create(db, token, when, status=status)
            db.commit()
        self.csms_config = csms or CsmsConfig(
            heartbeat_interval_s=300, pending_interval_s=60, known_vendors=frozenset()
        )
        self.processor = BatchProcessor(self.factory, self.csms_config)
        self.meter = FakeMeter()
        self.charger = Charger(
            STATION,
            version,  # type: ignore[arg-type]
            meter=self.meter,
            rng=random.Random(seed),
            connectors=connectors,
            config=config,
            **charger_kwargs,
        )
        self.session: StationSession | None = None
        self.network_up = True
        self.sent: list[Sent] = []  # charger -> CSMS
        self.received: list[Sent] = []  # CSMS -> charger
        self.connect_attempts: list[float] = []
        self._connections = 0

    # ---- the link ----------------------------------------------------------------------------------
    def _registration(self) -> str | None:
        with self.factory() as db:
            return stations.get(db, STATION).registration_status

    def _link(self) -> None:
        if self.session is not None and self.charger.close_requested():
            self.session.close(self.now)
            self.session = None
        if self.session is None and self.charger.wants_connection(self.now):
            self.connect_attempts.append(self.now)
            if not self.network_up:
                self.charger.connection_failed(self.now)
                return
            self._connections += 1
            self.session = StationSession(
                STATION,
                self.version,  # type: ignore[arg-type]
                self.csms_config,
                registration_status=self._registration(),
                id_prefix=f"csms{self._connections}-",
            )
            self.charger.connected(self.now)

    def drop_link(self) -> None:
        """The connection breaks (both sides notice)."""
        assert self.session is not None
        self.session.close(self.now)
        self.session = None
        self.charger.disconnected(self.now)

    def pump(self) -> None:
        """Deliver frames both ways until nothing moves."""
        while True:
            moved = False
            for frame in self.charger.frames_to_send():
                moved = True
                self.sent.append(Sent(self.now, framing.decode(frame)))
                if self.session is not None:
                    self.session.receive_frame(frame, self.now)
            if self.session is not None:
                if self.session.has_work():
                    batch = [(self.session, self.session.take_work())]
                    release(self.processor.process(batch, self.now), batch)
                for frame in self.session.frames_to_send():
                    moved = True
                    self.received.append(Sent(self.now, framing.decode(frame)))
                    self.charger.receive_frame(frame, self.now)
            if not moved:
                return

    def settle(self) -> None:
        self._link()
        self.pump()
        self._link()
        self.pump()

    # ---- time --------------------------------------------------------------------------------------
    def advance_to(self, until: float) -> None:
        while True:
            self.settle()
            deadlines = [self.charger.next_deadline(), self.session.next_deadline() if self.session else None]
            present = [d for d in deadlines if d is not None]
            if not present or min(present) > until:
                break
            self.now = max(self.now, min(present))
            self.charger.handle_timer(self.now)
            if self.session is not None:
                self.session.handle_timer(self.now)
        self.now = until
        self.settle()

    def run(self, seconds: float) -> None:
        self.advance_to(self.now + seconds)

    def start(self) -> None:
        """Connect and boot at T0."""
        self.settle()

    # ---- the CSMS side -----------------------------------------------------------------------------
    def csms_call(self, action: str, payload: dict[str, Any]) -> PendingCall:
        assert self.session is not None, "no connection"
        pending = self.session.send_call(action, payload, self.now)
        self.settle()
        return pending

    @contextmanager
    def db(self) -> Iterator[Session]:
        with self.factory() as db:
            yield db

    def transactions(self) -> list[TxRow]:
        with self.factory() as db:
            rows = list(db.scalars(select(TxRow).order_by(TxRow.id)))
            db.expunge_all()
            return rows

    # ---- what the charger sent ---------------------------------------------------------------------
    def calls(self, action: str, since: float | None = None) -> list[Sent]:
        return [s for s in self.sent if s.action == action and (since is None or s.at >= since)]

    def times(self, action: str, since: float | None = None) -> list[float]:
        return [s.at - T0 for s in self.calls(action, since)]

    def errors_to_charger(self) -> list[CallError]:
        return [s.message for s in self.received if isinstance(s.message, CallError)]

    def tx_events(self) -> list[dict[str, Any]]:
        return [s.payload for s in self.calls("TransactionEvent")]

    def statuses(self, connector_id: int = 1) -> list[str]:
        key = "connectorId" if self.version == "1.6" else "evseId"
        field_ = "status" if self.version == "1.6" else "connectorStatus"
        return [s.payload[field_] for s in self.calls("StatusNotification") if s.payload[key] == connector_id]
