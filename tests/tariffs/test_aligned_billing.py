"""A session across a time-of-use boundary whose power steps inside a periodic meter interval (the "known limit"
of docs/design/tariffs.md): with clock-aligned meter values the charger reads its register on the boundary, and
the CSMS's CDR bills each price's energy exactly, to the cent. The twin's charger firmware is paired with the
real CSMS core (tests/simulator/helpers.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

import pytest

from csms.services import cdrs, tariffs
from csms.services.config import CsmsConfig
from csms.tariffs.aligned import aligned_interval_s
from csms.tariffs.model import Tariff
from csms.tariffs.parse import parse_tariff
from tests.simulator.helpers import STATION, T0, StationPair

#: T0 is 22:00 UTC, 23:00 in Berlin (CET): the night price starts at 23:30 local, 22:30 UTC (T0 + 1800).
NIGHT = {
    "currency": "EUR",
    "elements": [
        {
            "price_components": [{"type": "ENERGY", "price": "0.22", "step_size": 1}],
            "restrictions": {"start_time": "23:30", "end_time": "06:00"},
        },
        {"price_components": [{"type": "ENERGY", "price": "0.31", "step_size": 1}]},
    ],
}
BOUNDARY, STEP, START, STOP = 1800.0, 1830.0, 100.0, 2900.0  # offsets from T0 [s]
LOW_W, HIGH_W = 2000.0, 11000.0


class SteppedMeter:
    """The car draws 2 kW from the start, 11 kW from 22:30:30 UTC, 30 s after the boundary."""

    def __init__(self, pair: StationPair) -> None:
        self.pair = pair

    def _t(self) -> float:
        return self.pair.now - T0

    def energy_wh(self, connector_id: int) -> float:
        t = max(START, self._t())
        return (LOW_W * (min(t, STEP) - START) + HIGH_W * max(0.0, t - STEP)) / 3600

    def power_w(self, connector_id: int) -> float:
        return HIGH_W if self._t() >= STEP else LOW_W

    def current_a(self, connector_id: int) -> tuple[float, ...]:
        return (self.power_w(connector_id) / 690,) * 3

    def voltage_v(self, connector_id: int) -> float:
        return 230.0

    def soc(self, connector_id: int) -> float | None:
        return None


def truth_eur() -> Decimal:
    """The physics priced by hand: 2 kW for 1700 s at 0.31, then 30 s of 2 kW and 1070 s of 11 kW at 0.22."""
    day_wh = Decimal(LOW_W) * Decimal(BOUNDARY - START) / 3600
    night_wh = (Decimal(LOW_W) * Decimal(STEP - BOUNDARY) + Decimal(HIGH_W) * Decimal(STOP - STEP)) / 3600
    exact = day_wh * Decimal("0.31") / 1000 + night_wh * Decimal("0.22") / 1000
    return exact.quantize(Decimal("0.01"), ROUND_HALF_UP)


def session_total(tmp_path, version: str, aligned_s: int) -> Decimal:
    keys = (
        {"MeterValueSampleInterval": "900", "ClockAlignedDataInterval": str(aligned_s)}
        if version == "1.6"
        else {"SampledDataCtrlr.TxUpdatedInterval": "900", "AlignedDataCtrlr.Interval": str(aligned_s)}
    )
    config = CsmsConfig(
        heartbeat_interval_s=300,
        pending_interval_s=60,
        known_vendors=frozenset(),
        tariff_time_zone="Europe/Berlin",
    )
    pair = StationPair(tmp_path, version, csms=config, config=keys)
    pair.meter = pair.charger.meter = pair.charger._tx.meter = SteppedMeter(pair)  # type: ignore[assignment]
    with pair.db() as db:
        tariffs.put(db, "NIGHT", NIGHT, datetime.fromtimestamp(T0 - 86400, UTC))
        tariffs.assign(db, "NIGHT", now=datetime.fromtimestamp(T0, UTC), station_id=STATION)
        db.commit()
    pair.start()
    pair.advance_to(T0 + START)
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)
    pair.settle()
    pair.advance_to(T0 + STOP)
    pair.charger.unplug(1, pair.now)
    pair.settle()
    [row] = pair.transactions()
    assert row.energy_wh == pytest.approx((LOW_W * (STEP - START) + HIGH_W * (STOP - STEP)) / 3600, abs=0.5)
    with pair.db() as db:
        cdr = cdrs.stored(db, row.id)
        return Decimal(cdr.total_cost_excl_vat)


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_aligned_values_on_the_boundary_make_the_cdr_exact_to_the_cent(tmp_path, version):
    assert truth_eur() == Decimal("1.02")
    assert session_total(tmp_path / "aligned", version, 900) == truth_eur()
    # Without them the 15-min interval around 22:30 is spread evenly: 156 Wh of night energy billed at the day price.
    assert session_total(tmp_path / "periodic", version, 0) == Decimal("1.03")


def _tariff(*times: tuple[str, str]) -> Tariff:
    elements = [
        {
            "price_components": [{"type": "ENERGY", "price": "0.20", "step_size": 1}],
            "restrictions": {"start_time": start, "end_time": end},
        }
        for start, end in times
    ]
    elements.append({"price_components": [{"type": "ENERGY", "price": "0.30", "step_size": 1}]})
    return parse_tariff({"id": "T", "currency": "EUR", "elements": elements})


def test_the_interval_asked_for_reads_on_every_boundary_from_local_or_utc_midnight():
    # multifamily-peak's tariffs (21:00-07:00, 22:00-06:00, 08:00-20:00) in Berlin: every hour
    berlin = [_tariff(("21:00", "07:00")), _tariff(("22:00", "06:00"), ("08:00", "20:00"))]
    assert aligned_interval_s(berlin, "Europe/Berlin", 2026) == 3600
    assert aligned_interval_s([_tariff(("23:30", "06:00"))], "Europe/Berlin", 2026) == 1800
    # 22:00 local is 16:30 UTC in Kolkata (+05:30): from UTC midnight an hour would miss it
    assert aligned_interval_s([_tariff(("22:00", "06:00"))], "Asia/Kolkata", 2026) == 1800
    assert aligned_interval_s([_tariff(("22:00", "06:00"))], "Asia/Kathmandu", 2026) == 900  # +05:45
    flat = parse_tariff(
        {
            "id": "F",
            "currency": "EUR",
            "elements": [{"price_components": [{"type": "ENERGY", "price": "0.30", "step_size": 1}]}],
        }
    )
    assert aligned_interval_s([flat], "Europe/Berlin", 2026) is None
