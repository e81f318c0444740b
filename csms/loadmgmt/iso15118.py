"""What an EV that speaks ISO 15118 changes in load management (OCPP 2.0.1 K15–K18), sans-IO.

The EV tells its needs itself (NotifyEVChargingNeeds): energy and departure go to the plan as any fleet
schedule's would (:meth:`csms.loadmgmt.manager.LoadManager.ev_needs`); its limits (:class:`EvLimits`) cap the
TxProfile of its transaction, and the schedule is kept within the periods the EV takes (``maxScheduleTuples``).
Each new needs message gets a TxProfile even when the limit did not change (K15.FR.03, K17: the EV
renegotiates and waits for one), and so does an EV schedule the CSMS rejected (the station renegotiates with
the profile). A site plan that changes the limit sends a new TxProfile as for any transaction: the station
renegotiates with the EV (K16).

A station in no managed site has no plan: its 15118 transactions get a TxProfile at what the EV can take
(:func:`unplanned_profile`), so the EV still gets the schedule it waits for.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from csms.loadmgmt.profiles import ProfileSpec, Purpose

#: Phases of each AC requestedEnergyTransfer (DC: the EVSE's own).
PHASES = {"AC_single_phase": 1, "AC_two_phase": 2, "AC_three_phase": 3}


@dataclass(frozen=True)
class EvLimits:
    """What the EV said it can take: per-phase current (AC, A) or power (DC, W); how many periods it accepts."""

    max_current_a: float | None = None
    max_power_w: float | None = None
    max_schedule_tuples: int | None = None
    phases: int | None = None


def capped(spec: ProfileSpec, ev: EvLimits) -> ProfileSpec:
    """``spec`` within the EV's limits, in at most the periods it accepts (one: no lease, the limit holds)."""
    cap = ev.max_power_w if spec.unit == "W" else ev.max_current_a
    out = spec
    if cap is not None and cap < spec.limit:
        out = replace(out, limit=cap)
    if cap is not None and out.fallback is not None and cap < out.fallback:
        out = replace(out, fallback=cap)
    if ev.max_schedule_tuples is not None and ev.max_schedule_tuples < 2 and out.leased:
        out = replace(out, fallback=None, lease_s=None)
    return out


def unplanned_profile(station_id: str, evse_id: int, transaction_id: str, ev: EvLimits) -> ProfileSpec | None:
    """The TxProfile of a 15118 transaction no site plans: what the EV can take (None: it said nothing)."""
    if ev.max_power_w is not None:
        return ProfileSpec(station_id, evse_id, Purpose.TX, ev.max_power_w, "W", None, transaction_id)
    if ev.max_current_a is not None:
        return ProfileSpec(station_id, evse_id, Purpose.TX, ev.max_current_a, "A", ev.phases, transaction_id)
    return None
