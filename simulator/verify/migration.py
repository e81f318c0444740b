"""A platform migration's record and its report section (``migration``), the same whichever CSMSs it ran
against: the two embedded CSMSs of a virtual run (:mod:`simulator.embedded_migration`) or two ``csms serve``
processes in real time (:mod:`simulator.realtime_migration`).

Each run tells the log what happened, in scenario seconds: the cut-over, each wave with the sessions running
on its stations, each station's first connection to the new CSMS, the row counts exported from the old CSMS
and held by the new one right after the import, and every operator action after the cut-over with the CSMS it
went to. :meth:`MigrationLog.section` turns that into the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from simulator.scenario.models import Repoint, Scenario

#: The tables the text summary names one by one (the report's ``data`` holds every table of the bundle).
HEADLINE = (
    "stations",
    "id_tokens",
    "api_keys",
    "tariffs",
    "tariff_versions",
    "tariff_assignments",
    "transactions",
    "meter_samples",
)

Holder = Literal["old", "new"]

#: Append-only tables the new CSMS writes to by itself while it takes the import (its audit trail records the
#: import request): all the exported rows must be there, and a few more are the import's own record.
APPENDED_BY_THE_IMPORT = frozenset({"audit_log"})


def _preserved(table: str, exported: int, imported: int) -> bool:
    return imported >= exported if table in APPENDED_BY_THE_IMPORT else imported == exported


@dataclass
class Wave:
    at_s: float
    charger: str
    stations: list[str]
    window_s: float
    #: Transactions running on these stations when the old CSMS stopped (``station/charger's id``).
    carried: list[str] = field(default_factory=list)
    #: When it was planned (scenario seconds): a wave planned before the import was done waits for it.
    planned_s: float | None = None
    mode: str = "forward"


@dataclass(frozen=True)
class OperatorAction:
    """An operator action after the cut-over: which CSMS it went to (the one holding the station then; None:
    neither served it, between the cut-over and its wave) and how it ended as far as the run knows. ``target``:
    the station, or for what concerns the whole CSMS (a tariff) the tariff's id."""

    at_s: float
    kind: str
    target: str
    csms: Holder | None
    outcome: str
    #: The station's wave had come when the action was issued (or it concerns the whole CSMS): it had to go to
    #: the new CSMS.
    after_wave: bool


class MigrationLog:
    """What a migration did, in scenario seconds; the runs call :meth:`cut_over`, :meth:`wave`,
    :meth:`arrived`, :meth:`operator_action` and fill ``exported`` / ``imported``."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.cutover_s: float | None = None
        self.waves: list[Wave] = []
        self.moved: set[str] = set()
        #: When each station first connected to the new CSMS (scenario seconds).
        self.arrivals: dict[str, float] = {}
        #: Rows per table in the old CSMS's bundle, and on the new CSMS right after the import.
        self.exported: dict[str, int] = {}
        self.imported: dict[str, int] = {}
        #: When the new CSMS held the import (scenario seconds): no wave lets a charger onto it before.
        self.imported_s: float | None = None
        self.actions: list[OperatorAction] = []
        self.wave_of = planned_waves(scenario)
        #: How each station reached the new CSMS: ``repoint`` (it was told the new URL and rebooted onto it)
        #: or ``cut_over`` (its old host name led there).
        self.arrived_by: dict[str, str] = {}
        #: Stations of ``mode: repoint`` waves: the old CSMS serves them across the cut-over, until their wave.
        self.stay_on_old = {s for s, wave in self.wave_of.items() if wave.mode == "repoint"}

    def holder(self, station_id: str) -> Holder | None:
        """The CSMS serving the station: the old one until the cut-over, none until its wave, then the new one."""
        if station_id in self.moved:
            return "new"
        if self.cutover_s is None or station_id in self.stay_on_old:
            return "old"
        return None

    def cut_over(self, now_s: float) -> None:
        self.cutover_s = now_s

    def wave(self, item: Repoint, now_s: float, carried: list[str]) -> Wave:
        stations = self.scenario.resolve_chargers(item.charger)
        wave = Wave(now_s, item.charger, stations, item.window, carried, self.scenario.seconds(item.at), item.mode)
        self.waves.append(wave)
        self.moved.update(stations)
        return wave

    def arrived(self, station_id: str, now_s: float, by: str = "cut_over") -> bool:
        """The station connected to the new CSMS (``by`` re-point or host cut-over); True the first time."""
        if station_id in self.arrivals:
            return False
        self.arrivals[station_id] = now_s
        self.arrived_by[station_id] = by
        return True

    def operator_action(
        self, at_s: float, kind: str, target: str, csms: Holder | None, outcome: str, *, station: bool = True
    ) -> None:
        """``station``: ``target`` is a station (else the action concerns the whole CSMS, e.g. a tariff)."""
        if self.cutover_s is not None:
            after_wave = target in self.moved or not station
            self.actions.append(OperatorAction(at_s, kind, target, csms, outcome, after_wave))

    # ---- the report --------------------------------------------------------------------------------------
    def section(self, end_s: float) -> dict[str, Any]:
        stations = self._stations(end_s)
        data = {t: {"exported": self.exported.get(t, 0), "imported": self.imported.get(t, 0)} for t in self.imported}
        return {
            "cutover_s": self.cutover_s,
            "imported_s": self.imported_s,
            # the export and import took this long (scenario seconds): waves planned before wait for it
            "import_took_s": None
            if self.imported_s is None or self.cutover_s is None
            else round(self.imported_s - self.cutover_s, 1),
            "waves": [self._wave(w) for w in self.waves],
            "stations": stations,
            "stations_total": len(self.scenario.station_ids()),
            "stations_on_new": len(self.arrivals),
            "stations_not_migrated": sorted(set(self.scenario.station_ids()) - set(self.arrivals)),
            "downtime_beyond_window": sorted(s for s, row in stations.items() if not row["within_window"]),
            "data": data,
            "data_mismatches": sorted(
                t for t, counts in data.items() if not _preserved(t, counts["exported"], counts["imported"])
            ),
            "operator_actions": [
                {"at_s": a.at_s, "kind": a.kind, "target": a.target, "csms": a.csms, "outcome": a.outcome}
                for a in self.actions
            ],
            # An action after a station's wave that did not go to the new CSMS: the old one no longer holds it.
            "actions_to_old_csms": sum(1 for a in self.actions if a.after_wave and a.csms != "new"),
        }

    def _wave(self, wave: Wave) -> dict[str, Any]:
        arrivals = [self.arrivals[s] for s in wave.stations if s in self.arrivals]
        return {
            "at_s": wave.at_s,
            "planned_s": wave.planned_s,
            # how long after its plan the wave started: one planned before the import was done waits for it
            # (and in real time for the operator's steps before it); its window counts from its start
            "started_late_s": None if wave.planned_s is None else round(max(0.0, wave.at_s - wave.planned_s), 1),
            "mode": wave.mode,
            "charger": wave.charger,
            "stations": len(wave.stations),
            "moved": len(arrivals),
            "time_taken_s": round(max(arrivals) - wave.at_s, 1) if arrivals else None,
            "sessions_carried_over": len(wave.carried),
            "carried": wave.carried,
            "by_repoint": sum(1 for s in wave.stations if self.arrived_by.get(s) == "repoint"),
            "by_cut_over": sum(1 for s in wave.stations if self.arrived_by.get(s) == "cut_over"),
        }

    def _stations(self, end_s: float) -> dict[str, dict[str, Any]]:
        """Per station: how long it was away (cut-over to arrival, or to the run's end) and its window (to the
        end of its wave's window, counted from when the wave started: a wave that waited for the import has
        its window from then)."""
        if self.cutover_s is None:
            return {}
        started = {s: w.at_s for w in self.waves for s in w.stations}
        out = {}
        for station_id in self.scenario.station_ids():
            wave = self.wave_of.get(station_id)
            window_end = None
            if wave is not None:
                window_end = max(self.scenario.seconds(wave.at), started.get(station_id, 0.0)) + wave.window
            arrival = self.arrivals.get(station_id)
            # a station the old CSMS served until its wave (mode repoint) was away from the wave on
            left = started.get(station_id, self.cutover_s) if station_id in self.stay_on_old else self.cutover_s
            away = (arrival if arrival is not None else end_s) - left
            allowed = None if window_end is None else window_end - left
            out[station_id] = {
                "by": self.arrived_by.get(station_id),
                "away_s": round(away, 1),
                "window_s": None if allowed is None else round(allowed, 1),
                "within_window": arrival is not None and allowed is not None and away <= allowed,
            }
        return out


def planned_waves(scenario: Scenario) -> dict[str, Repoint]:
    """Each station's wave (its first, when a prefix names it twice)."""
    planned: dict[str, Repoint] = {}
    for action in scenario.actions:
        if isinstance(action, Repoint):
            for station_id in scenario.resolve_chargers(action.charger):
                planned.setdefault(station_id, action)
    return planned
