"""Load management in the virtual-time run: the scenario's site in the CSMS store, the embedded CSMS's
:class:`~csms.loadmgmt.manager.LoadManager`, the site meter's readings and the fleet schedule.

* The site is created through the CSMS's own service (``csms.services.sites.create``): one root node (the
  grid connection) with ``site.grid_limit_kw`` / ``phase_limits_a`` / ``voltage``, every charger's EVSEs
  under it with their phase wiring (``ChargerGroup.site_phases``), rating, minimum and fallback current.
* The site meter reports the building load every ``interval`` through the meter-readings service — the
  function ``POST /api/v1/sites/{id}/meter-readings`` calls — and the manager is told, as the API route
  does. (Why not a meter station: the service path is the one every meter integration ends in, and it
  needs no second firmware model; the station path is covered by the CSMS's own tests.) The meter reads
  one second after each twin step starts: the twin's building load is constant within a step, so that is
  what an instantaneous meter would read.
* The fleet schedule (a depot's dispatch, a resident's app) tells the CSMS each plugged vehicle's
  departure and energy to its target, as ``ev_needs``.
"""

from __future__ import annotations

from typing import Any

from csms.loadmgmt.topology import format_phases
from csms.ocpp.convert import from_posix
from csms.services import sites
from simulator.scenario.models import LoadManagement, Scenario

SITE_ID = "site"


def with_strategy(scenario: Scenario, strategy: str | None) -> Scenario:
    """The scenario with its load-management strategy overridden (``none``: off); every other setting kept."""
    if strategy is None:
        return scenario
    lm = scenario.csms.load_management or LoadManagement(strategy="none")
    lm = lm.model_copy(update={"strategy": strategy})
    return scenario.model_copy(update={"csms": scenario.csms.model_copy(update={"load_management": lm})})


def managed(scenario: Scenario) -> bool:
    lm = scenario.csms.load_management
    return lm is not None and lm.strategy != "none"


def create_site(session_factory: Any, scenario: Scenario, now: float) -> None:
    lm = scenario.csms.load_management
    assert lm is not None
    site = scenario.site
    evses = []
    for group in scenario.chargers:
        dc = group.current == "DC"
        voltage = group.voltage or 230.0
        for i, station_id in enumerate(group.station_ids):
            phases = group.site_phases(i)
            for n in range(1, group.connectors + 1):
                wiring: dict[str, Any] = {
                    "station_id": station_id,
                    "evse_id": n,
                    "node": "grid",
                    "phases": format_phases(phases),
                    "fallback_current_a": lm.fallback_current_a,
                    "min_current_a": lm.min_current_a,
                }
                if dc:
                    wiring |= {
                        "dc": True,
                        "max_power_kw": group.max_kw,
                        "max_current_a": group.max_kw * 1000 / (3 * 230),
                    }
                else:
                    wiring["max_current_a"] = group.max_kw * 1000.0 / (voltage * len(phases))
                evses.append(wiring)
    with session_factory() as db:
        sites.create(
            db,
            SITE_ID,
            now=from_posix(now),
            name=site.name,
            strategy=lm.strategy,
            interval_s=float(lm.interval),
            voltage=site.voltage,
            safety_margin_kw=lm.safety_margin_kw,
            priority_groups=list(lm.priority_groups),
            nodes=[{"id": "grid", "limit_kw": site.grid_limit_kw, "phase_limits_a": site.phase_limits_a}],
            evses=evses,
            utility_tariff=utility_tariff(scenario),
        )
        db.commit()


def utility_tariff(scenario: Scenario) -> dict[str, Any] | None:
    """The scenario's ``site.utility_tariff`` as the sites API takes it (local times in the scenario's zone)."""
    tariff = scenario.site.utility_tariff
    if tariff is None:
        return None
    return {
        "tz": scenario.timezone or "UTC",
        "currency": tariff.currency,
        "periods": [{"from": p.from_, "price": p.price} for p in tariff.periods],
        "demand_charge_per_kw": tariff.demand_charge_per_kw,
    }


def record_reading(session_factory: Any, power_w: float, now: float) -> None:
    """One site-meter reading through the meter-readings service (the manager is told after, as by the API
    route)."""
    with session_factory() as db:
        sites.record_reading(db, SITE_ID, timestamp=from_posix(now), now=from_posix(now), power_w=power_w)
        db.commit()
