"""Clock-aligned meter values where a tariff changes price at a time of day, as a host plugin (both shells).

A CDR spreads each meter interval's energy evenly over it, so a price that changes at 22:00 inside an interval
where the power steps bills some energy at the wrong price (docs/design/tariffs.md). A reading on the boundary
removes that: when the boot of a station is accepted, or the tariffs applying at it change
(:meth:`AlignedMetering.tariffs_changed`), the CSMS works out the clock-aligned interval that reads on every
``start_time``/``end_time`` of those tariffs (:func:`csms.services.tariffs.aligned_interval_at`, in the
``tariff_time_zone``) and sets it on the station: 1.6 ChangeConfiguration ``ClockAlignedDataInterval``, 2.0.1
SetVariables ``AlignedDataCtrlr.Interval`` (:func:`csms.ocpp.commands.set_configuration`). What the station
took is kept with its other settings (:mod:`csms.services.configuration`).

Nothing is sent to a station where no tariff has a time of day, nor to one whose known interval already reads
on every boundary (a positive divisor of the one needed: an operator may have set a finer one through
``PUT /stations/{id}/configuration``, or it was set at an earlier boot). The aligned samples are read like any
other (:mod:`csms.domain.meter`): they are register points of the session, of its CDR and its running cost.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from csms.core.plugins.settings_call import call_and_keep
from csms.domain import events as ev
from csms.ocpp import commands
from csms.ocpp.convert import from_posix
from csms.ocpp.outgoing import VariableRef, VariableResult
from csms.ocpp.versions import OCPP16, Version
from csms.services import configuration, tariffs

if TYPE_CHECKING:
    from csms.core.host import CsmsHost, Reports

log = logging.getLogger(__name__)

#: The setting, by whether the station speaks 1.6.
KEYS = {True: VariableRef("ClockAlignedDataInterval"), False: VariableRef("Interval", component="AlignedDataCtrlr")}


def key_of(version: Version) -> VariableRef:
    return KEYS[version == OCPP16]


class AlignedMetering:
    #: :meth:`committed` acts on an Accepted :class:`~csms.domain.events.BootDecision`.
    report_kinds: frozenset[type] = frozenset({ev.BootReported})

    def __init__(self) -> None:
        self._host: CsmsHost | None = None
        self._versions: dict[str, Version] = {}
        #: The interval each station last took from this plugin (for tests and reports).
        self.configured: dict[str, int] = {}

    # ---- plugin ------------------------------------------------------------------------------------------
    def attach(self, host: CsmsHost) -> None:
        self._host = host

    def stop(self) -> None:
        self._host = None

    def connected(self, station_id: str, version: Version, registered: bool, now: float) -> None:
        self._versions[station_id] = version

    def disconnected(self, station_ids: Sequence[str], now: float) -> None:
        pass

    def committed(self, station_id: str, reports: Reports, now: float) -> None:
        if any(isinstance(decision, ev.BootDecision) and decision.status == "Accepted" for _, decision in reports):
            self.tariffs_changed([station_id])

    # ---- what to set -------------------------------------------------------------------------------------
    def tariffs_changed(self, station_ids: Sequence[str]) -> None:
        """The tariffs applying at these stations may have changed (or they booted): set the aligned interval
        on those connected that need a new one."""
        host = self._host
        if host is None:
            return
        wanted = [(s, self._versions[s]) for s in station_ids if s in self._versions and host.is_connected(s)]
        if not wanted:
            return
        factory, zone = host.session_factory, host.config.tariff_time_zone
        year = from_posix(host.scheduler.now()).year

        def needed() -> list[tuple[str, Version, int]]:
            out = []
            with factory() as db:
                for station_id, version in wanted:
                    interval = tariffs.aligned_interval_at(db, station_id, zone, year)
                    if interval is None:
                        continue
                    key = key_of(version)
                    rows = configuration.listed(
                        db, station_id, component=key.component or configuration.NO_COMPONENT, variable=key.variable
                    )
                    known = next((r.value for r in rows if r.evse_id == 0 and r.attribute == "Actual"), None)
                    if known is not None and known.isdigit() and int(known) > 0 and interval % int(known) == 0:
                        continue
                    out.append((station_id, version, interval))
            return out

        host.scheduler.run_db(needed, self._send)

    def _send(self, needed: list[tuple[str, Version, int]]) -> None:
        for station_id, version, interval in needed:
            self._set(station_id, version, interval)

    def _set(self, station_id: str, version: Version, interval: int) -> None:
        host = self._host
        if host is None or not host.is_connected(station_id):
            return
        # Not taken (no answer, a CALLERROR, gone again): the station is asked again at its next boot.
        [call] = commands.set_configuration(version, [(key_of(version), str(interval))], None)

        def taken(results: list[VariableResult]) -> None:
            if any(r.value is not None for r in results):
                self.configured[station_id] = interval

        call_and_keep(host, station_id, version, call, taken)
