"""Reservation expiry by the CSMS's own clock, as a host plugin: an active reservation becomes ``expired`` at
its expiry even when the station never says so (1.6 has no ReservationStatusUpdate; a 2.0.1 station may be
offline).

One alarm rings at the earliest expiry the plugin knows of, and at least every ``sweep_every_s`` (a
reservation made through another node of a cluster, or while this one was down, is found by the sweep;
None: no sweep, as in virtual time, where every reservation is made through this host).
The API tells the plugin of each reservation it makes (:meth:`ReservationExpiry.expect`), so a reservation
made here expires on time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from csms.core.scheduler import Alarm
from csms.ocpp.convert import from_posix
from csms.ocpp.versions import Version
from csms.services import reservations

if TYPE_CHECKING:
    from csms.core.host import CsmsHost, Reports

log = logging.getLogger(__name__)


class ReservationExpiry:
    #: No committed report concerns it (:class:`~csms.core.host.SelectiveReports`): it is told of reservations.
    report_kinds: frozenset[type] = frozenset()

    def __init__(self, sweep_every_s: float | None = 60.0) -> None:
        self.sweep_every_s = sweep_every_s
        self._host: CsmsHost | None = None
        self._alarm: Alarm | None = None

    def attach(self, host: CsmsHost) -> None:
        self._host = host
        self._alarm = Alarm(host.scheduler, self._on_timer)
        self._alarm.arm(host.scheduler.now())  # what expired while the CSMS was down, at once

    def stop(self) -> None:
        if self._alarm is not None:
            self._alarm.disarm()
        self._host = None

    def connected(self, station_id: str, version: Version, registered: bool, now: float) -> None:
        pass

    def disconnected(self, station_ids: Sequence[str], now: float) -> None:
        pass

    def committed(self, station_id: str, reports: Reports, now: float) -> None:
        pass

    def expect(self, expires_at: datetime) -> None:
        """A reservation made here: be called at its expiry."""
        if self._alarm is not None:
            self._alarm.arm(expires_at.timestamp())

    def _on_timer(self) -> None:
        host = self._host
        if host is None:
            return
        at = from_posix(host.scheduler.now())
        factory = host.session_factory

        def sweep() -> datetime | None:
            with factory() as db, db.begin():
                expired = reservations.expire_due(db, at)
                if expired:
                    log.info("%d reservation(s) expired", expired)
                return reservations.next_expiry(db)

        host.scheduler.run_db(sweep, self._rearm)

    def _rearm(self, next_expiry: Any) -> None:
        if self._host is None or self._alarm is None:
            return
        now = self._host.scheduler.now()
        if self.sweep_every_s is not None:
            self._alarm.arm(now + self.sweep_every_s)
        if next_expiry is not None:
            self._alarm.arm(max(next_expiry.timestamp(), now))
