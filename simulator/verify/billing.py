"""The report's ``billing`` section: per session, the twin's true energy, the CSMS's OCPI CDR (its energy and
total) and the final cost the charger's display showed, side by side; and, where the scenario's ``set_tariff``
actions say which tariff applied, the cost worked out again from the twin's own physics (its truth timeline:
the energy register over time, charging or plugged in without power) by the independent calculator
(:mod:`simulator.verify.tariff_reference`), beside the CDR's totals.

The CSMS prices sessions only where a tariff applies, so the section is there only when the run has CDRs.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Protocol

from simulator.station.cost_display import SessionCostShown
from simulator.verify.tariff_reference import Wh, minor_units, reference_cost


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


@dataclass(frozen=True)
class CardHold:
    """An ad-hoc card payment as the CSMS recorded it: the hold, what it captured, and the session its token
    started (station and the charger's transaction id; None: none) and whether that session has ended."""

    id_token: str
    status: str  # held | captured | released | declined
    authorisation: str
    currency: str
    amount_minor: int
    captured_minor: int
    over_minor: int
    station_id: str | None
    key: str | None
    ended: bool
    stop_reason: str | None = None


class CardFee(Protocol):
    """The card's disclosed processing fee as the scenario set it (``csms.adhoc_payments``)."""

    @property
    def card_fee_fixed(self) -> str: ...
    @property
    def card_fee_percent(self) -> str: ...


@dataclass(frozen=True)
class TruthTimeline:
    """One ended session as the twin's physics ran it: the energy register (Wh) at its start, wherever the power
    changed and at its stop (a straight line in between), and the spans it was plugged in without power."""

    start: datetime
    stop: datetime
    id_token: str | None
    samples: tuple[tuple[datetime, float], ...]
    parking: tuple[tuple[datetime, datetime], ...]


def _at(t_s: float) -> datetime:
    return datetime.fromtimestamp(t_s, UTC)


def truth_timeline(
    power_log: Sequence[tuple[float, float, float]], start_s: float, stop_s: float, id_token: str | None
) -> TruthTimeline:
    """Cut a connector's power log (twin seconds: register Wh and power W from each row on) to [start_s, stop_s]
    (the same clock)."""
    times = [row[0] for row in power_log]

    def register(t: float) -> tuple[float, float]:
        i = bisect.bisect_right(times, t) - 1
        if i < 0:
            return (power_log[0][1] if power_log else 0.0), 0.0
        at, wh, power_w = power_log[i]
        return wh + power_w * (t - at) / 3600.0, power_w

    points = [(start_s, *register(start_s))]
    points += [(at, wh, p) for at, wh, p in power_log if start_s < at < stop_s]
    points.append((stop_s, register(stop_s)[0], 0.0))
    samples = tuple((_at(t), wh) for t, wh, _ in points)
    parking: list[tuple[datetime, datetime]] = []
    for (t, _, power_w), (until, _, _) in itertools.pairwise(points):
        if power_w > 0 or until <= t:
            continue
        if parking and parking[-1][1] == _at(t):
            parking[-1] = (parking[-1][0], _at(until))
        else:
            parking.append((_at(t), _at(until)))
    return TruthTimeline(_at(start_s), _at(stop_s), id_token, samples, tuple(parking))


@dataclass
class TariffPlan:
    """The tariffs the scenario set (``set_tariff``), as the CSMS stores them: a version of a tariff id each
    time its body changed, and one assignment per (station, token group) that a later one at the same place
    replaces. Mirrors the CSMS's precedence as far as scenarios use it: a station's assignment for the driver's
    token group before its assignment for everyone."""

    #: tariff id -> [(valid from, OCPI body)], oldest first
    versions: dict[str, list[tuple[datetime, dict[str, Any]]]] = field(default_factory=dict)
    #: (station, group or None) -> [(from, tariff id)]
    assignments: dict[tuple[str, str | None], list[tuple[datetime, str]]] = field(default_factory=dict)
    #: id token -> its token group
    token_groups: dict[str, str] = field(default_factory=dict)

    def set(self, at: datetime, tariff_id: str, body: dict[str, Any], stations: Sequence[str], group: str | None):
        """One ``set_tariff`` action."""
        history = self.versions.setdefault(tariff_id, [])
        if not history or history[-1][1] != body:
            history.append((at, body))
        for station_id in stations:
            self.assignments.setdefault((station_id, group), []).append((at, tariff_id))

    def tariff_for(self, station_id: str, id_token: str | None, at: datetime) -> str | None:
        """The tariff id the CSMS resolves for the driver at the station at ``at`` (a session's end)."""
        group = None if id_token is None else self.token_groups.get(id_token)
        for wanted in [group, None] if group is not None else [None]:
            chosen = [tid for since, tid in self.assignments.get((station_id, wanted), []) if since <= at]
            if chosen:
                return chosen[-1]
        return None

    def versions_for(self, tariff_id: str, start: datetime, stop: datetime) -> list[dict[str, Any]]:
        """The versions that priced some of [start, stop], as OCPI JSON; each later one from when it was set."""
        rows = self.versions[tariff_id]
        chosen: list[dict[str, Any]] = []
        for index, (since, body) in enumerate(rows):
            following = rows[index + 1][0] if index + 1 < len(rows) else None
            if following is not None and following <= start:
                continue
            if chosen and since >= stop:
                break
            if chosen:
                own = body.get("start_date_time")
                begins = since if own is None else max(datetime.fromisoformat(own.replace("Z", "+00:00")), since)
                body = {**body, "start_date_time": begins.isoformat()}
            chosen.append(body)
        return chosen


def truth_cost(plan: TariffPlan, station_id: str, timeline: TruthTimeline, zone: str) -> tuple[Decimal, Decimal] | None:
    """What the session costs, worked out from the twin's truth (None: no tariff of the scenario applies)."""
    tariff_id = plan.tariff_for(station_id, timeline.id_token, timeline.stop)
    if tariff_id is None:
        return None
    versions = plan.versions_for(tariff_id, timeline.start, timeline.stop)
    samples: list[tuple[datetime, Wh]] = [(at, Decimal(repr(wh))) for at, wh in timeline.samples]
    return reference_cost(versions, timeline.start, timeline.stop, zone, samples, list(timeline.parking))


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def section(
    truth: Sequence[TruthSession],
    cdrs: list[CdrRecord],
    shown: dict[tuple[str, str], SessionCostShown],
    timelines: dict[tuple[str, str], TruthTimeline] | None = None,
    plan: TariffPlan | None = None,
    zone: str = "UTC",
    adhoc: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Per session of the twin: its CDR, what its display showed at the end and, for an ended session with a
    truth timeline under a tariff of ``plan``, its cost worked out from the truth in the CSMS's tariff time zone
    ``zone`` (None: the run has no CDR)."""
    if not cdrs:
        return None
    by_key = {(c.station_id, c.key): c for c in cdrs}
    rows: list[dict[str, Any]] = []
    worst_wh = Decimal(0)
    mismatched = 0
    differences: list[int] = []
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
        timeline = (timelines or {}).get((t.station_id, t.key))
        cost = None
        if cdr is not None and timeline is not None and plan is not None:
            cost = truth_cost(plan, t.station_id, timeline, zone)
        difference = None
        if cost is not None and cdr is not None:
            difference = max(
                abs(minor_units(cdr.total_excl_vat - cost[0], cdr.currency)),
                abs(minor_units(cdr.total_incl_vat - cost[1], cdr.currency)),
            )
            differences.append(difference)
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
                "truth_total_excl_vat": None if cost is None else _money(cost[0]),
                "truth_total_incl_vat": None if cost is None else _money(cost[1]),
                "cost_difference_minor": difference,
                "truth_parking_s": None if timeline is None else _parking_s(timeline),
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
        "cost_compared": len(differences),
        "cost_mismatches": sum(1 for d in differences if d != 0),
        "max_cost_difference_minor": max(differences, default=0),
        "tariff_time_zone": zone,
        "per_session": rows,
        **({} if adhoc is None else {"adhoc_payments": adhoc}),
    }


def _parking_s(timeline: TruthTimeline) -> float:
    return round(sum((b - a).total_seconds() for a, b in timeline.parking), 3)


def adhoc_section(
    holds: Sequence[CardHold], cdrs: Sequence[CdrRecord], books: dict[str, int | None], fee: CardFee
) -> dict[str, Any]:
    """Every card payment: what should have been captured (the session's CDR incl. VAT and the card fee the
    scenario disclosed, worked out again here, at most the hold) beside what the CSMS recorded and what the
    processor's own books (``books``: authorisation -> captured minor units, None: not captured) say."""
    by_key = {(c.station_id, c.key): c for c in cdrs}
    rows: list[dict[str, Any]] = []
    for hold in holds:
        cdr = by_key.get((hold.station_id or "", hold.key or ""))
        expected = None
        if cdr is not None:
            gross = minor_units(cdr.total_incl_vat, cdr.currency)
            fixed = minor_units(Decimal(fee.card_fee_fixed), cdr.currency)
            variable = (Decimal(gross) * Decimal(fee.card_fee_percent) / 100).quantize(Decimal(1), ROUND_HALF_UP)
            expected = min(gross + fixed + int(variable), hold.amount_minor)
        processor = books.get(hold.authorisation) if hold.authorisation else None
        settled = hold.status in ("captured", "released")
        rows.append(
            {
                "id_token": hold.id_token,
                "status": hold.status,
                "station_id": hold.station_id,
                "transaction_id": hold.key,
                "held_minor": hold.amount_minor,
                "captured_minor": hold.captured_minor if settled else None,
                "processor_captured_minor": processor,
                "expected_capture_minor": expected,
                "over_hold_minor": hold.over_minor,
                "stop_reason": hold.stop_reason,
                # an ended session whose card was not captured for exactly its CDR and fee, or whose processor
                # books disagree with the CSMS
                "mismatch": hold.ended
                and (
                    expected is None
                    or not settled
                    or hold.captured_minor != expected
                    or (processor or 0) != hold.captured_minor
                ),
            }
        )
    sessions = [r for r in rows if r["transaction_id"] is not None]
    return {
        "cards": len(rows),
        "declined": sum(1 for r in rows if r["status"] == "declined"),
        "sessions": len(sessions),
        "captured": sum(1 for r in rows if r["status"] == "captured"),
        "capture_mismatches": sum(1 for r in rows if r["mismatch"]),
        "over_hold": sum(1 for r in rows if r["over_hold_minor"]),
        # sessions the CSMS stopped (RequestStopTransaction): in a run without operator stops, at their hold
        "stopped_by_csms": sum(1 for r in rows if r["stop_reason"] == "Remote"),
        "unused_holds": sum(1 for r in rows if r["status"] == "held" and r["transaction_id"] is None),
        "per_card": rows,
    }
