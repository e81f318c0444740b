"""The one place a scenario becomes the twin's specs: time points resolved to seconds after the start,
charger groups expanded to stations, vehicle blocks to fleets (sampled or replayed). The twin never sees the
YAML models."""

from __future__ import annotations

from datetime import datetime

from simulator.scenario.models import (
    ChargerGroup,
    FleetBlock,
    Scenario,
    SessionReplay,
    SocDistribution,
    TimeDistribution,
)
from simulator.twin.specs import (
    FixedSoc,
    FixedTime,
    Fleet,
    FleetSpec,
    NormalSoc,
    NormalTime,
    ReplayFleetSpec,
    SessionSpec,
    SiteSpec,
    SocSpec,
    StationSpec,
    TimeSpec,
    TwinSpec,
    UniformSoc,
    UniformTime,
)

__all__ = ["twin_spec"]

DAY_S = 86400.0


def twin_spec(scenario: Scenario) -> TwinSpec:
    site = scenario.site
    return TwinSpec(
        start=scenario.start,
        duration_s=float(scenario.duration),
        step_s=float(scenario.twin.step),
        efficiency=scenario.twin.efficiency,
        site=SiteSpec(
            grid_limit_kw=site.grid_limit_kw,
            phase_limits_a=site.phase_limits_a,
            voltage=site.voltage,
            building_load_points=site.building_load.points(),
            building_noise_kw=site.building_load.noise_kw,
        ),
        stations=tuple(station for group in scenario.chargers for station in _stations(group)),
        fleets=tuple(_fleet(block, scenario) for block in scenario.vehicles),
    )


def _stations(group: ChargerGroup) -> list[StationSpec]:
    return [
        StationSpec(
            station_id=station_id,
            connectors=group.connectors,
            max_kw=group.max_kw,
            current=group.current or "AC",
            phases=group.phases or 3,
            voltage=group.voltage or 230.0,
            site_phases=group.site_phases(index),
        )
        for index, station_id in enumerate(group.station_ids)
    ]


def _fleet(block: FleetBlock | SessionReplay, scenario: Scenario) -> Fleet:
    if isinstance(block, SessionReplay):
        return _replay(block, scenario)
    allowed = None
    if block.assign_to is not None:
        allowed = frozenset(sid for ref in block.assign_to for sid in scenario.resolve_chargers(ref))
    return FleetSpec(
        name=block.name,
        id_tokens=tuple(block.tokens()),
        models=tuple(block.model.items()),
        battery_kwh=block.battery_kwh,
        max_ac_kw=block.max_ac_kw,
        max_dc_kw=block.max_dc_kw,
        ac_phases=block.ac_phases,
        curve=tuple(block.curve) if block.curve is not None else None,
        arrival=_time(block.arrival, scenario.start),
        departure=_time(block.departure, scenario.start),
        soc_on_arrival=_soc(block.soc_on_arrival),
        target_soc=block.resolved_target_soc,
        charge_limit_soc=block.charge_limit_soc,
        plug_in_delay_s=block.plug_in_delay,
        group=block.group,
        allowed=allowed,
        assign=block.assign,
        plug_and_charge=block.plug_and_charge,
        iso15118=block.iso15118,
        pays_by_card=block.pays_by_card,
    )


def _replay(block: SessionReplay, scenario: Scenario) -> ReplayFleetSpec:
    sessions = tuple(
        SessionSpec(
            arrival_s=scenario.seconds(session.arrival),
            departure_s=scenario.seconds(session.departure),
            energy_kwh=session.energy_kwh,
            battery_kwh=block.battery_of(session),
            max_kw=session.max_kw or block.max_kw,
            station=session.station,
            id_token=token,
        )
        for session, token in zip(block.sessions, block.tokens(), strict=True)
    )
    return ReplayFleetSpec(
        name=block.name,
        sessions=sessions,
        model=block.model,
        ac_phases=block.ac_phases,
        curve=tuple(block.curve) if block.curve is not None else None,
        target_soc=block.target_soc,
        group=block.group,
    )


def _time(dist: TimeDistribution, start: datetime) -> TimeSpec:
    if dist.at is not None:
        return FixedTime(dist.at.seconds_after(start))
    if dist.between is not None:
        low_s, high_s = (t.seconds_after(start) for t in dist.between)
        if high_s < low_s:  # e.g. ["23:00", "01:00"] starting at 23:30: the window wraps past midnight
            high_s += DAY_S
        return UniformTime(low_s, high_s)
    assert dist.normal is not None
    return NormalTime(dist.normal.mean.seconds_after(start), dist.normal.std)


def _soc(dist: SocDistribution) -> SocSpec:
    if dist.fixed is not None:
        return FixedSoc(dist.fixed)
    if dist.uniform is not None:
        return UniformSoc(*dist.uniform)
    assert dist.normal is not None
    return NormalSoc(dist.normal.mean, dist.normal.std)
