"""The report's ``billing`` section: per session, the twin's true energy, the CSMS's OCPI CDR (its energy and
total) and the final cost the charger's display showed, side by side.

The CSMS prices sessions only where a tariff applies, so the section is there only when the run has CDRs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from simulator.station.cost_display import SessionCostShown


class TruthSession(Protocol):
    """A session as the twin really ran it (``simulator.report.TruthTransaction``)."""

    @property
    def station_id(self) -> str: ...
    @property
    def connector_id(self) -> int: ...
    @property
    def key(self) -> str: ...
    @property
    def started_s(self) -> float: ...
    @property
    def energy_kwh(self) -> float: ...


@dataclass(frozen=True)
class CdrRecord:
    """One CDR as the CSMS stored it, by the transaction id the charger knows (amounts incl./excl. VAT)."""

    station_id: str
    key: str
    currency: str
    energy_kwh: Decimal
    total_excl_vat: Decimal
    total_incl_vat: Decimal
    review_reasons: tuple[str, ...] = ()


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def section(
    truth: Sequence[TruthSession], cdrs: list[CdrRecord], shown: dict[tuple[str, str], SessionCostShown]
) -> dict[str, Any] | None:
    """Per session of the twin: its CDR and what its display showed at the end (None: the run has no CDR)."""
    if not cdrs:
        return None
    by_key = {(c.station_id, c.key): c for c in cdrs}
    rows: list[dict[str, Any]] = []
    worst_wh = Decimal(0)
    mismatched = 0
    for t in sorted(truth, key=lambda t: (t.started_s, t.station_id, t.connector_id)):
        cdr = by_key.get((t.station_id, t.key))
        display = shown.get((t.station_id, t.key))
        displayed = None if display is None else display.final
        truth_wh = Decimal(str(t.energy_kwh)) * 1000
        error_wh = None if cdr is None else abs(cdr.energy_kwh * 1000 - truth_wh)
        if error_wh is not None:
            worst_wh = max(worst_wh, error_wh)
        matches = None if cdr is None or displayed is None else displayed == cdr.total_incl_vat
        mismatched += matches is False
        rows.append(
            {
                "station_id": t.station_id,
                "transaction_id": t.key,
                "truth_kwh": round(t.energy_kwh, 6),
                "cdr_kwh": None if cdr is None else str(cdr.energy_kwh),
                "energy_error_wh": None if error_wh is None else float(round(error_wh, 3)),
                "currency": None if cdr is None else cdr.currency,
                "cdr_total_excl_vat": None if cdr is None else _money(cdr.total_excl_vat),
                "cdr_total_incl_vat": None if cdr is None else _money(cdr.total_incl_vat),
                "displayed_final_cost": _money(displayed),
                "displayed_matches_cdr": matches,
                "review_reasons": [] if cdr is None else list(cdr.review_reasons),
            }
        )
    return {
        "sessions": len(rows),
        "cdrs": len(cdrs),
        "without_cdr": sum(1 for r in rows if r["cdr_total_incl_vat"] is None),
        "displayed_final_mismatches": mismatched,
        "energy_max_error_wh": float(round(worst_wh, 3)),
        "per_session": rows,
    }
