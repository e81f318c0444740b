"""Fleet schedules reach the load manager, as a host plugin: when a transaction starts (or learns its token)
with a fleet vehicle's token, the vehicle's next departure and the energy to its target are worked out from the
store (:func:`csms.services.fleet.needs`) and told to load management as the vehicle's charging needs. The API
calls :meth:`FleetNeeds.vehicle_changed` when a vehicle's plan or telematics SoC changes: while it charges its
needs are told again; while it is on its way to its depot (not plugged in, a departure within a day, a telematics
SoC) load management is told what it will need by when (:func:`csms.services.fleet.on_its_way`), so the site's
plan for the night counts the vehicles still to come. When it plugs in, it is no longer on its way.

A charger that reports the EV's own needs (ISO 15118 NotifyEVChargingNeeds) is told by the EV; the fleet's word
comes on top (the later one wins, as the load manager takes needs).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING

from csms.domain import events as ev
from csms.ocpp.versions import Version
from csms.services import fleet

if TYPE_CHECKING:
    from csms.core.host import CsmsHost, Reports
    from csms.core.plugins.load_management import LoadManagement

log = logging.getLogger(__name__)

#: (station, EVSE), energy needed [Wh], departure [POSIX s]
Told = tuple[tuple[str, int], float | None, float | None]


class FleetNeeds:
    #: The reports :meth:`committed` reads (:class:`~csms.core.host.SelectiveReports`).
    report_kinds: frozenset[type] = frozenset({ev.TransactionStarted, ev.TransactionUpdated})

    def __init__(self, load_management: LoadManagement) -> None:
        self.load_management = load_management
        self._host: CsmsHost | None = None
        #: What was told per vehicle (diagnostics and tests).
        self.told: dict[str, Told] = {}

    def attach(self, host: CsmsHost) -> None:
        self._host = host

    def stop(self) -> None:
        self._host = None

    def connected(self, station_id: str, version: Version, registered: bool, now: float) -> None:
        pass

    def disconnected(self, station_ids: Sequence[str], now: float) -> None:
        pass

    def committed(self, station_id: str, reports: Reports, now: float) -> None:
        for report, _ in reports:
            if isinstance(report, ev.TransactionStarted | ev.TransactionUpdated) and report.id_token:
                evse = report.evse_id
                if evse is not None:
                    self._look_up(report.id_token, (station_id, evse), now)

    def vehicle_changed(self, vehicle_id: str) -> None:
        """A vehicle's plan or SoC changed: if it is charging, its needs are told again; if it is on its way to
        its depot, what it will need is."""
        if self._host is None:
            return
        now = self._host.scheduler.now()
        factory = self._host.session_factory

        def read() -> tuple[str, int, fleet.Needs] | tuple[str, str, fleet.Needs | None] | None:
            with factory() as db:
                vehicle = fleet.vehicle_facts(db, vehicle_id)
                session = fleet.running_session(db, vehicle)
                if session is None:
                    if vehicle.depot_id is None:
                        return None
                    return vehicle.depot_id, vehicle.id, fleet.on_its_way(db, vehicle, _at(now), unplugged=True)
                if session.evse_id is None:
                    return None
                return session.station_id, session.evse_id, fleet.session_needs(db, vehicle, _at(now), session)

        self._host.scheduler.run_db(read, self._tell_found)

    def _look_up(self, id_token: str, port: tuple[str, int], now: float) -> None:
        assert self._host is not None
        factory = self._host.session_factory

        def read() -> fleet.Needs | None:
            with factory() as db:
                vehicle = fleet.vehicle_of_token(db, id_token)
                if vehicle is None:
                    return None
                return fleet.session_needs(db, vehicle, _at(now), fleet.running_session(db, vehicle))

        self._host.scheduler.run_db(read, partial(self._tell, port))

    def _tell_found(self, found: tuple[str, int, fleet.Needs] | tuple[str, str, fleet.Needs | None] | None) -> None:
        if found is None:
            return
        where, which, needs = found
        if isinstance(which, int):
            self._tell((where, which), needs)
        elif self._host is not None:
            self._expect(where, which, needs)

    def _expect(self, depot_id: str, vehicle_id: str, needs: fleet.Needs | None) -> None:
        """The vehicle on its way to its depot (``needs`` None: not expected there now)."""
        departure = None if needs is None or needs.departure is None else needs.departure.at.timestamp()
        energy = None if needs is None else needs.energy_needed_wh
        self.load_management.expect(depot_id, vehicle_id, energy, departure)

    def _tell(self, port: tuple[str, int], needs: fleet.Needs | None) -> None:
        if needs is None or self._host is None:
            return
        self.load_management.arrived(needs.vehicle_id)  # plugged in: no longer on its way
        departure = None if needs.departure is None else needs.departure.at.timestamp()
        self.told[needs.vehicle_id] = (port, needs.energy_needed_wh, departure)
        if needs.notes:
            log.info("vehicle %s at %s/%d: %s", needs.vehicle_id, port[0], port[1], "; ".join(needs.notes))
        if needs.energy_needed_wh is not None or departure is not None:
            self.load_management.ev_needs(port, needs.energy_needed_wh, departure)


def _at(now: float) -> datetime:
    return datetime.fromtimestamp(now, UTC)
