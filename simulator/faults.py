"""The scenario's station faults, injected into the chargers and their links the same way under either clock.

Every fault here needs only a :class:`~simulator.station.charger.Charger`, its link (``poke``,
``set_network``) and its meters, so virtual and real-time runs inject them alike (``Fleet._execute``). Each
injection is first written to the twin's truth (:class:`~simulator.verify.faults.FaultTruth`), which the
report's ``uptime`` and ``alerts`` sections judge the CSMS against.

``csms_crash`` is not among them: it kills the CSMS process, which only the embedded CSMS of a virtual run
lets the harness do (:func:`csms_faults` lists them so a real-time run can refuse the scenario up front).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

import simpy

from simulator.scenario.models import (
    ConnectorFault,
    CsmsCrash,
    LinkDown,
    MeterFreeze,
    PowerLoss,
    Scenario,
    StuckAvailable,
)
from simulator.station.charger import Charger
from simulator.verify.faults import FaultTruth

StationFault = LinkDown | PowerLoss | MeterFreeze | ConnectorFault | StuckAvailable
#: Faults done to the CSMS itself.
CsmsFault = CsmsCrash


class FaultLink(Protocol):
    """What a fault needs of a charger's link."""

    def poke(self) -> None: ...
    def set_network(self, up: bool) -> None: ...


class FreezableMeter(Protocol):
    """A station's meters whose energy registers can be held (the ``meter_freeze`` fault)."""

    def freeze(self, connectors: list[int]) -> None: ...
    def thaw(self) -> None: ...


def csms_faults(scenario: Scenario) -> list[tuple[int, CsmsFault]]:
    """The scenario's faults done to the CSMS, with their index in ``faults``."""
    return [(i, fault) for i, fault in enumerate(scenario.faults) if isinstance(fault, CsmsFault)]


class FaultInjector:
    """Injects station faults at the fleet's ``now`` (POSIX seconds: ``epoch`` + ``env.now``)."""

    def __init__(
        self,
        env: simpy.Environment,
        epoch: float,
        truth: FaultTruth,
        chargers: Mapping[str, Charger],
        links: Mapping[str, FaultLink],
        meters: Mapping[str, FreezableMeter],
    ) -> None:
        self.env, self.epoch, self.truth = env, epoch, truth
        self.chargers, self.links, self.meters = chargers, links, meters

    def _now(self) -> float:
        return self.epoch + self.env.now

    def _later(self, delay_s: float, action: Callable[[], None]) -> None:
        self.env.timeout(delay_s).callbacks.append(lambda _e: action())

    def inject(self, item: StationFault, station_id: str) -> None:
        now = self._now()
        charger, link = self.chargers[station_id], self.links[station_id]
        if isinstance(item, LinkDown):
            self.truth.inject("link_down", station_id, None, now, now + item.duration)
            link.set_network(False)
            self._later(item.duration, lambda: link.set_network(True))
        elif isinstance(item, PowerLoss):
            self.truth.inject("power_loss", station_id, None, now, now + item.duration)
            charger.power_loss(now, item.duration)
            link.poke()
        elif isinstance(item, MeterFreeze):
            self.truth.inject("meter_freeze", station_id, None, now, now + item.duration)
            meters = self.meters[station_id]
            meters.freeze(list(charger.connectors))
            self._later(item.duration, meters.thaw)
        elif isinstance(item, ConnectorFault):
            end = None if item.clears_after is None else now + item.clears_after
            self.truth.inject("connector_fault", station_id, item.connector, now, end)
            self._connector_fault(charger, link, item, now)
        else:
            self.truth.inject("stuck_available", station_id, item.connector, now, now + item.duration)
            charger.stuck.add(item.connector)
            link.poke()
            self.env.process(self._stuck_driver(charger, link, item, now + item.duration))

    def _connector_fault(self, charger: Charger, link: FaultLink, item: ConnectorFault, now: float) -> None:
        """The connector faults; it clears after ``clears_after``, or once the station reboots (a Reset)."""
        charger.fault(item.connector, item.error_code, now)
        link.poke()
        cleared = [False]

        def clear() -> None:
            if cleared[0]:
                return
            cleared[0] = True
            when = self._now()
            for fault in self.truth.injected:
                if fault["kind"] == "connector_fault" and fault["station_id"] == charger.station_id:
                    fault["end"] = fault["end"] or when
            charger.clear_fault(item.connector, when)
            link.poke()

        if item.clears_after is not None:
            self._later(item.clears_after, clear)
        else:
            previous = charger.on_reboot

            def rebooted(_now: float) -> None:
                charger.on_reboot = previous
                self._later(0.0, clear)

            charger.on_reboot = rebooted

    def _stuck_driver(
        self, charger: Charger, link: FaultLink, item: StuckAvailable, until: float
    ) -> simpy.events.ProcessGenerator:
        """While the port is stuck the driver gives up after ``give_up_after`` and tries again."""
        cid = item.connector
        while self._now() + item.give_up_after < until:
            yield self.env.timeout(item.give_up_after)
            now = self._now()
            tx = charger.transactions.get(cid)
            if tx is not None and charger.online:
                token = tx.id_token
                charger.stop_transaction(tx, "Local", now)
                link.poke()
                if charger.connectors[cid].plugged and token is not None:
                    charger.present_token(cid, token, now)
                    link.poke()
        yield self.env.timeout(max(0.0, until - self._now()))
        charger.stuck.discard(cid)
        link.poke()
