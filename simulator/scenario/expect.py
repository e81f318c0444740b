"""The ``expect:`` block: check name → comparison such as ``">= 0.98"``, ``"0"`` or ``"< 5"``."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["KNOWN_CHECKS", "Comparison", "parse_comparison"]

# Checks the verifier knows how to compute; a name outside this set is a typo until verify adds it.
KNOWN_CHECKS: frozenset[str] = frozenset(
    {
        "site_limit_violations",  # minutes above the grid limit (ground truth)
        "site_violation_kwh",
        "peak_import_kw",
        "vehicles_at_target",  # fraction of departed vehicles at or above their target SoC
        "vehicles_unserved",  # vehicles that never got a connector
        "energy_delivered_kwh",
        "transactions_lost",  # ground-truth sessions the CSMS has no transaction for
        "transactions_started",
        "transactions_duplicated",  # CSMS transactions beyond one per ground-truth session
        "energy_mismatch_kwh",  # CSMS metered energy vs twin ground truth
        "meter_values_lost",
        "stations_booted",
        "uptime_max_error_pp",  # per port |twin truth − CSMS| uptime, percentage points (worst port)
        "alerts_missed",  # injected faults whose alert never came
        "alerts_late",  # ... came later than csms.alerts.within
        "alerts_false",  # alerts no injected fault explains
        "site_phase_violations",  # minutes any phase was above its limit (site.phase_limits_a)
        "energy_optimum_fraction",  # delivered towards targets / the offline optimum
        "lowest_served_fraction",  # fairness: the lowest share of its need a vehicle got
        "lowest_security_profile",  # the lowest profile a station connects with, as it and the CSMS agree
        "statement_mismatch_cents",  # multifamily: |unit statement - cost from the twin's truth|, worst unit
        "statement_mismatch_wh",  # ... and its energy
        "statement_ledger_mismatch_cents",  # ... |posted to the unit's ledger - statement (and truth)|, worst unit
        "dr_violation_minutes",  # minutes the site drew more than a demand-response event allowed
        "energy_cost",  # the site's import priced by site.utility_tariff (energy + demand charge)
        "cost_savings_fraction",  # (uncontrolled - run) / (uncontrolled - cost-optimal plan), same sessions
        "stations_not_migrated",  # platform migration: stations that never reached the new CSMS
        "migration_downtime_beyond_window",  # ... stations offline longer than their wave's window allows
        "migration_data_mismatches",  # ... tables whose row counts differ between the export and the new CSMS
        "migration_actions_to_old_csms",  # ... operator actions on a station after its wave not sent to the new CSMS
        "billing_cost_mismatches",  # ended sessions whose CDR total differs from the cost of the twin's truth
        "billing_max_cost_difference_minor",  # ... the largest difference, in minor units (cents)
        "roaming_sessions",  # roaming: the eMSP's drivers' sessions in the twin
        "roaming_unauthorised",  # ... roaming sessions not authorised through the eMSP (token, real time, command)
        "roaming_remote_starts_missing",  # ... app drivers whose START_SESSION did not start their session
        "roaming_cdrs_lost",  # ... ended roaming sessions whose CDR never reached the eMSP
        "roaming_cdrs_duplicated",  # ... CDRs the eMSP received beyond one per session
        "roaming_cdr_cost_mismatches",  # ... CDRs at the eMSP whose total differs from the cost of the twin's truth
        "roaming_cdr_max_difference_minor",  # ... the largest difference, in cents
        "roaming_cdr_max_error_wh",  # ... the largest |CDR energy - the twin's true energy|, Wh
        "roaming_sessions_leaked",  # ... local drivers' sessions the eMSP was sent
        "roaming_tariffs_pushed",  # ... tariffs PUT to the eMSP when they were created or changed
        "adhoc_sessions",  # card payments at chargers' terminals that started a session
        "adhoc_declined",  # ... cards the processor declined (the charger refused them)
        "adhoc_capture_mismatches",  # ... ended sessions not captured for exactly their CDR and card fee
        "adhoc_over_hold",  # ... sessions that cost more than their card's hold
        "adhoc_stopped_at_hold",  # ... sessions the CSMS stopped (in a run without operator stops: at the hold)
    }
)

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
    "=": operator.eq,
}
_COMPARISON_RE = re.compile(
    r"^(?P<op>>=|<=|==|!=|>|<|=)?\s*(?P<value>[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)"
    r"\s*(?P<pct>%)?$",
    re.IGNORECASE,
)
COMPARISON_HELP = "a comparison like '>= 0.98', '0', '< 5' or '<= 2%'"


@dataclass(frozen=True)
class Comparison:
    """``actual <op> value``; equality allows for float rounding."""

    op: str
    value: float

    def evaluate(self, actual: float) -> bool:
        """True if ``actual`` satisfies the comparison."""
        if self.op in ("==", "="):
            return math.isclose(actual, self.value, rel_tol=1e-9, abs_tol=1e-9)
        if self.op == "!=":
            return not math.isclose(actual, self.value, rel_tol=1e-9, abs_tol=1e-9)
        return _OPS[self.op](actual, self.value)

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}"


def parse_comparison(value: object) -> Comparison:
    """``">= 0.98"`` → ``Comparison(">=", 0.98)``; a bare number means equality; ``"98%"`` is 0.98.

    Raises:
        ValueError: with the accepted forms.
    """
    if isinstance(value, Comparison):
        return value
    if isinstance(value, bool):
        return Comparison("==", float(value))
    if isinstance(value, int | float):
        return Comparison("==", float(value))
    if isinstance(value, str):
        match = _COMPARISON_RE.match(value.strip())
        if match:
            number = float(match["value"]) / (100.0 if match["pct"] else 1.0)
            return Comparison(match["op"] or "==", number)
    raise ValueError(f"expected {COMPARISON_HELP}, got {value!r}")
