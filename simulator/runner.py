"""``sim run`` in virtual time: the fleet (:mod:`simulator.fleet`) joined to the embedded CSMS by in-process
links under one SimPy clock, then the report.

All deterministic for a given seed: one ``random.Random`` feeds every child generator in a fixed order
(:class:`~simulator.fleet.Fleet`), SimPy breaks ties by insertion order, nothing reads the wall clock except
the ``wall_seconds`` measurement.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path
from typing import Any

import simpy
from sqlalchemy import select

from csms.api import commands
from csms.ocpp.convert import from_posix
from csms.ocpp.versions import Version
from csms.services import authorization, stations
from csms.store.models import Station, Transaction
from simulator import plots, report
from simulator.embedded_csms import EmbeddedCsms
from simulator.fleet import Fleet, OperatorCall, Progress, Sampler, operator_payload
from simulator.links.inprocess import InProcessLink, NetworkModel
from simulator.scenario.models import RemoteStart, RemoteStop, Scenario
from simulator.station.charger import Charger


class EmbeddedOperator:
    """Operator actions straight on the embedded CSMS: its database, and calls through its sessions."""

    def __init__(self, csms: EmbeddedCsms, links: dict[str, InProcessLink]) -> None:
        self.csms, self.links = csms, links
        self._remote_start_ids = 0

    def provision_tokens(self, tokens: list[str], group: str | None, now: float) -> None:
        with self.csms.session_factory() as db:
            for token in tokens:
                authorization.create(db, token, from_posix(now), group_id=group, upsert=True)
            db.commit()

    def call(self, station_id: str, version: Version, item: OperatorCall, now: float) -> None:
        if isinstance(item, RemoteStop):
            call = self._remote_stop(station_id, version, item)
        else:
            self._remote_start_ids += isinstance(item, RemoteStart)
            call = operator_payload(item, version, self._remote_start_ids)
        if call is not None and station_id in self.csms.sessions:
            _, frames = self.csms.send_call(station_id, call[0], call[1], now)
            self.links[station_id].send_from_csms(frames)

    def _remote_stop(self, station_id: str, version: Version, item: RemoteStop) -> tuple[str, dict[str, Any]] | None:
        with self.csms.session_factory() as db:
            tx = db.scalars(
                select(Transaction)
                .where(
                    Transaction.station_id == station_id,
                    Transaction.evse_id == item.connector,
                    Transaction.status == "active",
                )
                .order_by(Transaction.id.desc())
            ).first()
        return None if tx is None else commands.remote_stop(version, tx.id, tx.charger_tx_id)


class VirtualRun:
    def __init__(
        self,
        scenario: Scenario,
        *,
        scenario_file: str = "",
        seed: int | None = None,
        database_url: str = "sqlite://",
        network: NetworkModel | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.scenario = scenario
        self.scenario_file = scenario_file
        self.seed = scenario.seed if seed is None else seed
        self.progress = progress
        self.env = simpy.Environment()
        self.epoch = scenario.start.timestamp()
        self.csms = EmbeddedCsms.create(database_url)
        self._provision_stations()

        def make_link(charger: Charger, rng: random.Random, on_change: Any) -> InProcessLink:
            return InProcessLink(self.env, self.epoch, charger, self.csms, rng, network, on_charger_change=on_change)

        self.fleet = Fleet(scenario, self.seed, self.env, make_link)
        self.hooks, self.world, self.sampler = self.fleet.hooks, self.fleet.world, self.fleet.sampler
        self.links: dict[str, InProcessLink] = self.fleet.links  # type: ignore[assignment]
        self.operator = EmbeddedOperator(self.csms, self.links)

    def _provision_stations(self) -> None:
        when = from_posix(self.epoch)
        with self.csms.session_factory() as db:
            for group in self.scenario.chargers:
                for station_id in group.station_ids:
                    stations.provision(db, station_id, ocpp_version=group.ocpp, password=None, now=when)
            db.commit()

    def run(self) -> report.RunRecord:
        started = time.perf_counter()
        done = self.fleet.start(self.operator, self.progress)
        self.env.run(until=done)
        if self.progress is not None:
            self.progress(float(self.scenario.duration), float(self.scenario.duration))
        wall = time.perf_counter() - started
        return self._record(wall)

    def _record(self, wall: float) -> report.RunRecord:
        with self.csms.session_factory() as db:
            csms_txs = [
                report.CsmsTransaction(tx.station_id, tx.charger_tx_id, tx.energy_wh / 1000.0, tx.status == "completed")
                for tx in db.scalars(select(Transaction).order_by(Transaction.id))
            ]
            booted = len(db.scalars(select(Station.id).where(Station.registration_status == "Accepted")).all())
        return self.fleet.record(
            mode="virtual",
            scenario_file=self.scenario_file,
            wall_seconds=wall,
            csms_transactions=csms_txs,
            csms_source="embedded",
            stations_booted=booted,
            frames={
                "charger_to_csms": self.csms.frames_in,
                "csms_to_charger": self.csms.frames_out,
                "lost_in_network": sum(link.frames_lost for link in self.links.values()),
            },
        )


def write_outputs(
    run: Any,
    rec: report.RunRecord,
    out_dir: Path,
    *,
    reproducible: bool,
    sampler: Sampler | None,
    step_s: float,
    scenario: Scenario,
) -> dict[str, Any]:
    rec.reproducible = reproducible
    data = report.build(rec)
    report.write(data, out_dir)
    title = scenario.name
    plots.site_import(rec.meter_log, scenario.start, out_dir / "site_import.png", title)
    if sampler is not None:
        plots.evse_power(
            sampler.evse_kw, scenario.start, step_s, float(scenario.duration), out_dir / "evse_power.png", title
        )
        targets = {v.vehicle_id: v.target_soc for v in rec.vehicles}
        plots.vehicle_soc(sampler.soc, targets, scenario.start, out_dir / "vehicle_soc.png", title)
    return data


def stderr_progress() -> Progress:
    """A progress line on stderr: a live bar on a terminal, a line every 10% otherwise."""
    tty = sys.stderr.isatty()
    last = [-1]

    def show(done_s: float, total_s: float) -> None:
        pct = int(100 * done_s / total_s) if total_s else 100
        if tty:
            bar = "#" * (pct // 4)
            sys.stderr.write(f"\r  simulating [{bar:<25}] {pct:3d}%  {done_s / 3600:5.1f} h of {total_s / 3600:.1f} h")
            if pct >= 100:
                sys.stderr.write("\n")
        elif pct // 10 != last[0]:
            sys.stderr.write(f"  simulated {pct}% ({done_s / 3600:.1f} h of {total_s / 3600:.1f} h)\n")
        last[0] = pct // 10
        sys.stderr.flush()

    return show
