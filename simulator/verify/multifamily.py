"""The multifamily check: each unit's statement from the CSMS beside the cost worked out here, independently,
from the twin's own truth (the energy its meters delivered to the unit's resident) and the property's terms."""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from csms.domain import money
from simulator.scenario.models import PropertyTerms


@dataclass(frozen=True, slots=True)
class UnitStatement:
    """What the CSMS billed a unit (summed over the months the run covers) and what the unit's ledger holds
    for those statements once posted."""

    unit: str
    energy_wh: float
    total_minor: int
    ledger_minor: int


def truth_cost_minor(terms: PropertyTerms, energy_wh: float) -> int:
    """The unit's cost by the terms, from the true energy (kWh to the Wh, rounded half up to the cent)."""
    kwh = Decimal(round(energy_wh)) / 1000
    rate = Decimal(terms.utility_rate) * (1 + Decimal(terms.margin_pct) / 100)
    if terms.billing_mode == "cost_recovery":
        amount = kwh * rate
    else:
        amount = Decimal(terms.flat_fee) + max(Decimal(0), kwh - Decimal(terms.allowance_kwh)) * rate
    places = Decimal(1).scaleb(-money.minor_units(terms.currency))
    return int(amount.quantize(places, rounding=ROUND_HALF_UP).scaleb(money.minor_units(terms.currency)))


def section(
    statements: list[UnitStatement], truth_wh: Mapping[str, float], running: Set[str], terms: PropertyTerms
) -> dict[str, Any]:
    """Units are named by their resident's token. A unit whose session still runs at the end is listed as
    open: the CSMS bills it from the readings it has so far, the truth has the energy to the last second. The
    ledger must hold every unit's statement exactly (open or not), and a closed unit's ledger the truth's cost."""
    rows = []
    worst_cents, worst_wh, worst_ledger = 0, 0.0, 0
    for s in sorted(statements, key=lambda s: s.unit):
        true_wh = truth_wh.get(s.unit, 0.0)
        true_minor = truth_cost_minor(terms, true_wh)
        error_cents, error_wh = abs(s.total_minor - true_minor), abs(s.energy_wh - true_wh)
        ledger_cents = abs(s.ledger_minor - s.total_minor)
        if s.unit not in running:
            worst_cents, worst_wh = max(worst_cents, error_cents), max(worst_wh, error_wh)
            ledger_cents = max(ledger_cents, abs(s.ledger_minor - true_minor))
        worst_ledger = max(worst_ledger, ledger_cents)
        rows.append(
            {
                "unit": s.unit,
                "truth_kwh": round(true_wh / 1000, 3),
                "billed_kwh": round(s.energy_wh / 1000, 3),
                "truth_cost": str(money.from_minor(true_minor, terms.currency)),
                "billed": str(money.from_minor(s.total_minor, terms.currency)),
                "ledger": str(money.from_minor(s.ledger_minor, terms.currency)),
                "error_cents": error_cents,
                "ledger_error_cents": ledger_cents,
                "open": s.unit in running,
            }
        )
    return {
        "units": len(rows),
        "open": sum(1 for r in rows if r["open"]),
        "currency": terms.currency,
        "billing_mode": terms.billing_mode,
        "max_error_cents": worst_cents,
        "max_error_wh": round(worst_wh, 3),
        "max_ledger_error_cents": worst_ledger,
        "per_unit": rows,
    }
