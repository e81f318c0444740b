"""Card holds no session used, released by the CSMS's own clock, as a host plugin.

A driver who pays at the charger's terminal and never plugs in (or whose car never starts a session) leaves a
pre-authorisation on their card. Every ``sweep_every_s`` the plugin voids the holds older than
``CsmsConfig.adhoc_hold_ttl_s`` whose session token started no transaction (:func:`csms.services.payments.
release_unused`); the processor gives the money back at once instead of when the authorisation lapses days later.
Without a card processor it does nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from csms.core.scheduler import Alarm
from csms.ocpp.convert import from_posix
from csms.ocpp.versions import Version
from csms.services import payments

if TYPE_CHECKING:
    from csms.core.host import CsmsHost, Reports

log = logging.getLogger(__name__)


class HoldRelease:
    #: No committed report concerns it (:class:`~csms.core.host.SelectiveReports`): it sweeps on its timer.
    report_kinds: frozenset[type] = frozenset()

    def __init__(self, sweep_every_s: float = 60.0) -> None:
        self.sweep_every_s = sweep_every_s
        self._host: CsmsHost | None = None
        self._alarm: Alarm | None = None
        #: Holds released (for tests and metrics).
        self.released = 0

    def attach(self, host: CsmsHost) -> None:
        self._host = host
        if host.config.card_processor is None:
            return
        self._alarm = Alarm(host.scheduler, self._on_timer)
        self._alarm.arm(host.scheduler.now() + self.sweep_every_s)

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

    def _on_timer(self) -> None:
        host = self._host
        if host is None:
            return
        now = from_posix(host.scheduler.now())
        before = now - timedelta(seconds=host.config.adhoc_hold_ttl_s)
        factory, processor = host.session_factory, host.config.card_processor

        def sweep() -> int:
            with factory() as db, db.begin():
                return payments.release_unused(db, processor, before, now)

        host.scheduler.run_db(sweep, self._swept)

    def _swept(self, released: int) -> None:
        if released:
            log.info("%d unused card hold(s) released", released)
            self.released += released
        if self._host is not None and self._alarm is not None:
            self._alarm.arm(self._host.scheduler.now() + self.sweep_every_s)
