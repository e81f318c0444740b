"""Price a session under OCPI 2.2.1 tariffs: incrementally (:class:`RunningCost`) or at once (:func:`price_session`).

The session is cut into segments at every instant where something priced can change: samples, state changes,
tariff validity edges, duration limits, local time-of-day limits, local midnights and DST jumps. In each segment
the first element of the valid tariff that has a component of a dimension and whose restrictions hold prices
that dimension. Quantities are exact fractions; money is rounded once, to the currency's minor unit.

Samples cut segments only when a restriction reads the meter (energy, power or current): otherwise the meter is
a piecewise-linear curve of the energy priced so far, and a segment's energy is the curve's rise across it —
the same exact figure with a segment per tariff change instead of one per sample.
"""

from __future__ import annotations

import bisect
import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

from csms.domain import money as currency
from csms.tariffs.model import Dimension, Price, PriceComponent, Tariff
from csms.tariffs.restrictions import Moment, matches
from csms.tariffs.timeline import MeterSample, SessionTimeline, State, StateChange

ABSURD_POWER_KW = 1000  # no charger delivers this: such a jump is a meter fault, not energy
STALE_METER = timedelta(minutes=15)
_MICROSECOND = timedelta(microseconds=1)
_WH_PER_US_AT_1_KW = Decimal("3.6e6")  # Wh x 3.6e6 / µs = kW
_TIMED = (Dimension.TIME, Dimension.PARKING_TIME)
_METER_LIMITS = ("min_kwh", "max_kwh", "min_power", "max_power", "min_current", "max_current")
_US_PER_S = 10**6
_ZERO = Fraction(0)
#: Wh (a Fraction: the meter curve is interpolated), µs (an int) or 1 for FLAT: exact, and ints are cheap
Volume = Fraction | int


@dataclass(frozen=True)
class DimensionCost:
    dimension: Dimension
    volume: Decimal  # kWh, hours, or 1 for FLAT
    billed_volume: Decimal  # after step_size rounding
    excl_vat: Decimal
    incl_vat: Decimal


@dataclass(frozen=True)
class ChargingPeriod:
    start_date_time: datetime
    tariff_id: str
    state: State
    dimensions: tuple[tuple[Dimension, Decimal], ...]


@dataclass(frozen=True)
class CdrResult:
    currency: str
    start: datetime
    stop: datetime
    total_energy: Decimal  # kWh
    total_time: Decimal  # hours, the whole session
    total_parking_time: Decimal  # hours
    total_cost: Price
    costs: tuple[DimensionCost, ...]
    charging_periods: tuple[ChargingPeriod, ...]
    review_reasons: tuple[str, ...] = ()

    def cost(self, dimension: Dimension) -> DimensionCost | None:
        return next((c for c in self.costs if c.dimension is dimension), None)


@dataclass
class _Piece:
    """One dimension's volumes (Wh, seconds, or 1 for FLAT) per price component: money is computed once, at the end."""

    dimension: Dimension
    by_component: dict[PriceComponent, Volume] = field(default_factory=dict)
    volume: Volume = 0
    last: PriceComponent | None = None

    def money(self) -> tuple[Volume, Fraction, Fraction]:
        """The billed volume (after the last component's step size) and its cost excl. and incl. VAT."""
        unit = _unit(self.dimension)
        excl = incl = _ZERO
        for component, volume in self.by_component.items():
            price, with_vat = _rates(component)
            amount = volume * price
            excl += amount
            incl += amount * with_vat
        billed, last = self.volume, self.last
        if last is not None and self.dimension is not Dimension.FLAT and last.step_size > 1:
            step = last.step_size * (1 if self.dimension is Dimension.ENERGY else _US_PER_S)  # Wh or s → µs
            billed = -(-self.volume // step) * step
            price, with_vat = _rates(last)
            amount = (billed - self.volume) * price
            excl += amount
            incl += amount * with_vat
        return billed, excl / unit, incl / unit


@functools.cache
def _rates(component: PriceComponent) -> tuple[Fraction, Fraction]:
    """A component's price per unit and its VAT factor, as exact fractions."""
    return Fraction(component.price), Fraction(1) if component.vat is None else 1 + Fraction(component.vat) / 100


def seconds_in(span: timedelta) -> Fraction:
    """Exact seconds (timedelta.total_seconds() is a float)."""
    return Fraction(span.days * 86400 + span.seconds) + Fraction(span.microseconds, 10**6)


def _unit(dimension: Dimension) -> int:
    """Volumes per unit of the CDR: Wh per kWh, µs per hour, 1 for FLAT."""
    if dimension is Dimension.FLAT:
        return 1
    return 1000 if dimension is Dimension.ENERGY else 3600 * _US_PER_S


def _in_units(volume: Volume, dimension: Dimension) -> Decimal:
    """``volume`` in the CDR's unit, to six decimals (as :func:`_quantity`, without building a Fraction)."""
    numerator, denominator = volume.numerator, volume.denominator * _unit(dimension)
    return Decimal((2 * numerator * 10**6 + denominator) // (2 * denominator)).scaleb(-6)


def _round_half_up(value: Fraction, places: int) -> Decimal:
    """``value`` to ``places`` decimals, halves up (integer arithmetic: floor(x·10^p + ½))."""
    scaled = (2 * value.numerator * 10**places + value.denominator) // (2 * value.denominator)
    return Decimal(scaled).scaleb(-places)


def _money(amount: Fraction, code: str) -> Decimal:
    return _round_half_up(amount, currency.minor_units(code))


def _local_boundaries(tariffs: Sequence[Tariff]) -> set[time]:
    found = {time(0, 0)}
    for tariff in tariffs:
        for element in tariff.elements:
            r = element.restrictions
            if r is not None:
                found.update(t for t in (r.start_time, r.end_time) if t is not None)
    return found


def _reads_meter(tariffs: Sequence[Tariff]) -> bool:
    """Does any restriction depend on the meter (then every sample starts a segment)?"""
    return any(
        getattr(element.restrictions, limit) is not None
        for tariff in tariffs
        for element in tariff.elements
        if element.restrictions is not None
        for limit in _METER_LIMITS
    )


def _static_points(tariffs: Sequence[Tariff], start: datetime) -> list[datetime]:
    """Validity edges and duration limits: the breakpoints that do not depend on the day or the meter."""
    points: set[datetime] = set()
    for tariff in tariffs:
        points.update(t for t in (tariff.start_date_time, tariff.end_date_time) if t is not None)
        for element in tariff.elements:
            r = element.restrictions
            if r is not None:
                points.update(start + timedelta(seconds=s) for s in (r.min_duration, r.max_duration) if s is not None)
    return sorted(points)


def _offset_jumps(zone: ZoneInfo, a: datetime, b: datetime) -> list[datetime]:
    """Instants in (a, b) where the zone's UTC offset changes (DST), to the second."""
    if b - a < timedelta(days=100) and a.astimezone(zone).utcoffset() == b.astimezone(zone).utcoffset():
        return []
    jumps, step, lo = [], timedelta(minutes=15), a
    while lo < b:
        hi = min(lo + step, b)
        if lo.astimezone(zone).utcoffset() != hi.astimezone(zone).utcoffset():
            left, right = lo, hi
            while right - left > timedelta(seconds=1):
                mid = left + timedelta(seconds=(right - left).total_seconds() // 2)
                same = left.astimezone(zone).utcoffset() == mid.astimezone(zone).utcoffset()
                left, right = (mid, right) if same else (left, mid)
            jumps.append(right)
        lo = hi
    return jumps


@functools.lru_cache(maxsize=8192)
def _day_points(zone: ZoneInfo, day: date, clocks: frozenset[time]) -> frozenset[datetime]:
    """The UTC instants of a local day's time-of-day limits, both folds (shared by every session of a zone)."""
    return frozenset(
        datetime.combine(day, clock, tzinfo=zone).replace(fold=fold).astimezone(UTC)
        for clock in clocks
        for fold in (0, 1)
    )


class RunningCost:
    """The cost of a session so far; feed samples and state changes in time order, then :meth:`finish`."""

    def __init__(self, tariffs: Sequence[Tariff], start: datetime, time_zone: str) -> None:
        if not tariffs:
            raise ValueError("at least one tariff is needed")
        if len({t.currency for t in tariffs}) != 1:
            raise ValueError("the tariffs of one session must share a currency")
        self._tariffs = tuple(tariffs)
        self._start = start.astimezone(UTC)
        self._zone = ZoneInfo(time_zone)
        self._times = frozenset(_local_boundaries(tariffs))
        self._cursor = self._start
        self._prev: MeterSample | None = None
        self._first_wh: Decimal | None = None
        self._high_wh = Decimal(0)
        self._state = State.CHARGING
        self._pending: list[StateChange] = []
        self._pieces: dict[Dimension, _Piece] = {d: _Piece(d) for d in Dimension}
        self._flat_tariff: str | None = None
        #: (start, tariff id, state, (dimension, element index) priced, which version of the tariffs given)
        self._periods: list[tuple[datetime, str, State, tuple[tuple[Dimension, int], ...], int]] = []
        self._period_volumes: list[dict[Dimension, Volume]] = []
        self._reasons: list[str] = []
        self._energy_wh = Fraction(0)
        self._parking_us = 0
        self._static = _static_points(tariffs, self._start)
        self._per_sample = _reads_meter(tariffs)
        self._curve: list[tuple[datetime, Decimal]] = []  # (instant, Wh priced since the start) at samples
        self._horizon: datetime | None = None  # no breakpoint lies between the cursor and it

    @property
    def reads_meter(self) -> bool:
        """Does a restriction read the meter (then every sample starts a segment)?"""
        return self._per_sample

    # -- feeding ------------------------------------------------------------------------------------------
    def set_state(self, change: StateChange) -> None:
        if change.at < self._cursor:
            raise ValueError(f"state change at {change.at} is before what was already priced ({self._cursor})")
        self._pending.append(change)
        self._pending.sort(key=lambda c: c.at)
        if self._horizon is not None and change.at < self._horizon:
            self._horizon = change.at

    def add_sample(self, sample: MeterSample) -> None:
        at = sample.at.astimezone(UTC)
        if at < self._cursor or (self._curve and at < self._curve[-1][0]):
            raise ValueError(f"sample at {at} is before what was already priced ({self._cursor})")
        if self._per_sample:
            self._advance(at, sample)
        else:
            self._extend_curve(at, sample)
        if self._first_wh is None:
            self._first_wh = self._high_wh = sample.wh
        elif sample.wh < self._high_wh:
            self._ran_backwards(at, sample.wh, self._high_wh)
        self._high_wh = max(self._high_wh, sample.wh)
        self._prev = MeterSample(at, self._high_wh, sample.current_a)

    def add_samples(self, samples: Sequence[MeterSample]) -> None:
        """:meth:`add_sample` for each of ``samples`` (in time order), in one pass when no restriction reads the
        meter: the samples only build the energy curve, and the segments are priced once, by :meth:`finish` or
        the next feed. The same figures as one call per sample (pricing a finished session, a restart)."""
        if self._per_sample:
            for sample in samples:
                self.add_sample(sample)
        elif samples:
            self._load_curve(samples)

    def _load_curve(self, samples: Sequence[MeterSample]) -> None:
        curve = self._curve
        if not curve:
            curve.append((self._cursor, Decimal(0)))
        prev_at = None if self._prev is None else self._prev.at
        high, first = self._high_wh, self._first_wh
        last_at, total = max(curve[-1][0], self._cursor), curve[-1][1]
        for sample in samples:
            at = sample.at.astimezone(UTC)
            if at < last_at:
                raise ValueError(f"sample at {at} is before what was already priced ({last_at})")
            wh = sample.wh
            if prev_at is not None:
                total += self._priced_rise(wh - high if wh > high else Decimal(0), at - prev_at, sample)
            curve.append((at, total))
            if first is None:
                first = high = wh
            elif wh < high:
                self._ran_backwards(at, wh, high)
            else:
                high = wh
            prev_at = last_at = at
        self._prev = MeterSample(last_at, high, samples[-1].current_a)
        self._high_wh, self._first_wh = high, first
        self._horizon = None
        points = self._breakpoints(self._cursor, last_at)
        if len(points) > 2:  # price up to the last breakpoint before the last sample: a live curve stays short
            self._advance(points[-2], None)

    def estimate(self, now: datetime) -> CdrResult:
        """The cost if the session stopped at ``now`` (energy after the last sample is not yet known)."""
        snapshot = RunningCost.__new__(RunningCost)
        snapshot.__dict__ = {
            **self.__dict__,
            "_pieces": {d: _Piece(d, dict(p.by_component), p.volume, p.last) for d, p in self._pieces.items()},
            "_periods": list(self._periods),
            "_period_volumes": [dict(v) for v in self._period_volumes],
            "_reasons": list(self._reasons),
            "_pending": list(self._pending),
            "_curve": list(self._curve),
        }
        return snapshot.finish(now, final=False)

    def finish(self, stop: datetime, *, final: bool = True) -> CdrResult:
        stop = stop.astimezone(UTC)
        self._advance(max(stop, self._cursor), None)
        if final:
            self._review_meter(stop)
        return self._result(stop)

    def _ran_backwards(self, at: datetime, wh: Decimal, high: Decimal) -> None:
        self._reasons.append(
            f"meter ran backwards at {at.isoformat()}: {wh} Wh after {high} Wh; the decrease is not priced"
        )

    # -- segmentation -------------------------------------------------------------------------------------
    def _breakpoints(self, a: datetime, b: datetime) -> list[datetime]:
        points = {a, b}
        points.update(c.at for c in self._pending)
        points.update(self._static[bisect.bisect_left(self._static, a) : bisect.bisect_right(self._static, b)])
        day, last_day = a.astimezone(self._zone).date() - timedelta(days=1), b.astimezone(self._zone).date()
        while day <= last_day:
            points.update(_day_points(self._zone, day, self._times))
            day += timedelta(days=1)
        points.update(_offset_jumps(self._zone, a, b))
        return sorted(p for p in points if a <= p <= b)

    def _extend_curve(self, at: datetime, sample: MeterSample) -> None:
        """Add the sample to the energy curve and price the segments that end before it."""
        delta, _ = self._rise(sample)
        if not self._curve:
            self._curve.append((self._cursor, Decimal(0)))
        self._curve.append((at, self._curve[-1][1] + delta))
        if self._horizon is None:
            self._horizon = self._breakpoints(self._cursor, self._cursor + timedelta(days=2))[1]
        if at <= self._horizon:
            return
        points = self._breakpoints(self._cursor, at)
        if len(points) > 2:  # a breakpoint other than the ends: price up to the last one before the sample
            self._advance(points[-2], None)

    def _curve_at(self, at: datetime) -> Fraction:
        """Wh priced from the start to ``at`` (flat before the first and after the last sample)."""
        curve = self._curve
        if not curve:
            return Fraction(0)
        if at <= curve[0][0]:
            return Fraction(curve[0][1])
        if at >= curve[-1][0]:
            return Fraction(curve[-1][1])
        i = bisect.bisect_right(curve, at, key=lambda point: point[0])
        (t0, e0), (t1, e1) = curve[i - 1], curve[i]
        if at == t0:
            return Fraction(e0)
        return Fraction(e0) + Fraction(e1 - e0) * Fraction((at - t0) // _MICROSECOND, (t1 - t0) // _MICROSECOND)

    def _advance(self, until: datetime, next_sample: MeterSample | None) -> None:
        points = self._breakpoints(self._cursor, until)
        delta_wh, interval_s = self._interval(next_sample) if self._per_sample else (Fraction(0), Fraction(0))
        power = delta_wh * Fraction(36, 10) / interval_s if interval_s else Fraction(0)
        for seg_start, seg_end in itertools.pairwise(points):
            while self._pending and self._pending[0].at <= seg_start:
                self._state = self._pending.pop(0).state
            if self._per_sample:
                energy_wh = delta_wh * seconds_in(seg_end - seg_start) / interval_s if interval_s else Fraction(0)
            else:
                energy_wh = self._curve_at(seg_end) - self._curve_at(seg_start)
            self._price_segment(seg_start, seg_end, energy_wh, power)
        while self._pending and self._pending[0].at <= until:
            self._state = self._pending.pop(0).state
        self._cursor = until
        self._horizon = None
        if len(self._curve) > 2:  # what lies before the cursor is priced: keep the point at or before it
            keep = bisect.bisect_right(self._curve, until, key=lambda point: point[0]) - 1
            if keep > 0:
                del self._curve[:keep]

    def _interval(self, next_sample: MeterSample | None) -> tuple[Fraction, Fraction]:
        """Energy (Wh) and length (s) of the current sample interval; nothing is known outside samples."""
        if self._prev is None or next_sample is None:
            return Fraction(0), Fraction(0)
        delta, span = self._rise(next_sample)
        return Fraction(delta), max(seconds_in(span), Fraction(0))

    def _rise(self, next_sample: MeterSample) -> tuple[Decimal, timedelta]:
        """The Wh priced for the interval that ``next_sample`` ends, and its length."""
        if self._prev is None:
            return Decimal(0), timedelta(0)
        span = next_sample.at.astimezone(UTC) - self._prev.at
        delta = max(next_sample.wh, self._high_wh) - self._high_wh
        return self._priced_rise(delta, span, next_sample), span

    def _priced_rise(self, delta: Decimal, span: timedelta, next_sample: MeterSample) -> Decimal:
        """``delta`` Wh over ``span``, or none when the meter jumped absurdly (a fault, not energy)."""
        micros = span // _MICROSECOND
        if micros > 0 and delta * _WH_PER_US_AT_1_KW <= ABSURD_POWER_KW * micros:
            return delta
        if delta:
            self._reasons.append(
                f"meter jumped {delta} Wh in {seconds_in(span)} s before {next_sample.at.isoformat()}; not priced"
            )
        return Decimal(0)

    def _moment(self, at: datetime, power_kw: Fraction) -> Moment:
        prev = self._prev
        duration = Fraction((at - self._start) // _MICROSECOND, _US_PER_S)
        if not self._per_sample:  # no restriction reads the meter
            return Moment(at.astimezone(self._zone), duration, _ZERO, power_kw, None)
        energy = _ZERO if prev is None or self._first_wh is None else Fraction(prev.wh - self._first_wh)
        current = None if prev is None or prev.current_a is None else Fraction(prev.current_a)
        return Moment(at.astimezone(self._zone), duration, energy / 1000, power_kw, current)

    def _tariff_at(self, at: datetime) -> Tariff | None:
        return next((t for t in reversed(self._tariffs) if t.valid_at(at)), None)

    def _price_segment(self, a: datetime, b: datetime, energy_wh: Fraction, power: Fraction) -> None:
        micros = (b - a) // _MICROSECOND
        if micros <= 0:
            return
        tariff = self._tariff_at(a)
        if tariff is None:
            self._reasons.append(f"no tariff valid at {a.isoformat()}; that time is not priced")
            return
        moment = self._moment(a, power)
        self._energy_wh += energy_wh
        if self._state is State.PARKING:
            self._parking_us += micros
        timed = Dimension.TIME if self._state is State.CHARGING else Dimension.PARKING_TIME
        volumes: dict[Dimension, Volume] = {Dimension.ENERGY: energy_wh, timed: micros}
        used: list[tuple[Dimension, int]] = []
        for index, element in enumerate(tariff.elements):
            if not matches(element.restrictions, moment):
                continue
            for component in element.price_components:
                if component.type in {d for d, _ in used}:
                    continue
                if component.type is Dimension.FLAT and self._flat_tariff is not None:
                    continue
                used.append((component.type, index))
                self._charge(component, volumes.get(component.type, 0), tariff.id)
        self._record_period(a, tariff, tuple(sorted(used)), volumes)

    def _charge(self, component: PriceComponent, volume: Volume, tariff_id: str) -> None:
        piece = self._pieces[component.type]
        if component.type is Dimension.FLAT:
            self._flat_tariff = tariff_id
            volume = 1
        if volume <= 0:
            return
        piece.volume += volume
        piece.by_component[component] = piece.by_component.get(component, 0) + volume
        piece.last = component

    def _record_period(
        self,
        at: datetime,
        tariff: Tariff,
        used: tuple[tuple[Dimension, int], ...],
        volumes: dict[Dimension, Volume],
    ) -> None:
        if Dimension.FLAT in {d for d, _ in used}:
            volumes = {**volumes, Dimension.FLAT: 1}
        # a period ends where the prices change (another element, or another version of the tariff); the
        # one-off FLAT does not start a new one
        priced = tuple(u for u in used if u[0] is not Dimension.FLAT)
        key = (tariff.id, self._state, priced, self._tariffs.index(tariff))
        if self._periods and self._periods[-1][1:] == key:
            for dimension, volume in volumes.items():
                totals = self._period_volumes[-1]
                totals[dimension] = totals.get(dimension, 0) + volume
            return
        self._periods.append((at, *key))
        self._period_volumes.append(dict(volumes))

    # -- closing ------------------------------------------------------------------------------------------
    def _review_meter(self, stop: datetime) -> None:
        if self._prev is None:
            self._reasons.append("no meter sample during the session: energy is not priced")
        elif stop - self._prev.at > STALE_METER:
            minutes = int((stop - self._prev.at).total_seconds() // 60)
            self._reasons.append(
                f"meter stopped: the last sample is {minutes} min before the end; energy after it is not priced"
            )

    def _result(self, stop: datetime) -> CdrResult:
        code = self._tariffs[0].currency
        excl = incl = Fraction(0)
        costs: list[DimensionCost] = []
        for dimension, piece in self._pieces.items():
            if piece.last is None:
                continue
            billed, piece_excl, piece_incl = piece.money()
            excl, incl = excl + piece_excl, incl + piece_incl
            costs.append(
                DimensionCost(dimension, _in_units(piece.volume, dimension), _in_units(billed, dimension),
                              _money(piece_excl, code), _money(piece_incl, code))
            )  # fmt: skip
        bounds = self._tariff_at(self._start) or self._tariffs[0]
        if bounds.min_price is not None and excl < Fraction(bounds.min_price.excl_vat):
            excl, incl = _bound(bounds.min_price)
        if bounds.max_price is not None and excl > Fraction(bounds.max_price.excl_vat):
            excl, incl = _bound(bounds.max_price)
        periods = tuple(
            ChargingPeriod(
                at,
                tariff_id,
                state,
                tuple((d, _in_units(v, d)) for d, v in sorted(volumes.items()) if v > 0),
            )
            for (at, tariff_id, state, _, _), volumes in zip(self._periods, self._period_volumes, strict=True)
        )
        return CdrResult(
            currency=code,
            start=self._start,
            stop=stop,
            total_energy=_quantity(self._energy_wh / 1000),
            total_time=_quantity(seconds_in(stop - self._start) / 3600),
            total_parking_time=_in_units(self._parking_us, Dimension.PARKING_TIME),
            total_cost=Price(_money(excl, code), _money(incl, code)),
            costs=tuple(costs),
            charging_periods=periods,
            review_reasons=tuple(self._reasons),
        )


def _bound(price: Price) -> tuple[Fraction, Fraction]:
    excl = Fraction(price.excl_vat)
    return excl, excl if price.incl_vat is None else Fraction(price.incl_vat)


def _quantity(value: Fraction) -> Decimal:
    """Volumes for display: six decimals are finer than any meter."""
    return _round_half_up(value, 6)


def feed(running: RunningCost, samples: Sequence[MeterSample], states: Sequence[StateChange]) -> None:
    """Feed samples and state changes in time order (a state change before a sample of the same instant).

    Raises:
        ValueError: something lies before what ``running`` has already priced."""
    if not running.reads_meter:  # every state change is known before the next segment is priced
        for change in sorted(states, key=lambda c: c.at.astimezone(UTC)):
            running.set_state(change)
        running.add_samples(sorted(samples, key=lambda s: s.at.astimezone(UTC)))
        return
    events: list[tuple[datetime, int, MeterSample | StateChange]] = [
        *((c.at.astimezone(UTC), 0, c) for c in states),
        *((s.at.astimezone(UTC), 1, s) for s in samples),
    ]
    for _, _, event in sorted(events, key=lambda e: (e[0], e[1])):
        if isinstance(event, StateChange):
            running.set_state(event)
        else:
            running.add_sample(event)


def running_cost(tariffs: Sequence[Tariff], timeline: SessionTimeline) -> RunningCost:
    """A :class:`RunningCost` fed with the whole ``timeline`` (not finished: feed it more, or estimate)."""
    running = RunningCost(tariffs, timeline.start, timeline.time_zone)
    feed(running, timeline.samples, timeline.states)
    return running


def price_session(tariffs: Sequence[Tariff], timeline: SessionTimeline, *, final: bool = True) -> CdrResult:
    """The CDR of a finished session; ``tariffs`` are the versions in force, later ones winning where they overlap.

    ``final=False``: the cost of a running session up to ``timeline.stop`` (a meter that has not reported for a
    while is not yet a reason for review)."""
    return running_cost(tariffs, timeline).finish(timeline.stop, final=final)


__all__ = ["CdrResult", "ChargingPeriod", "DimensionCost", "RunningCost", "feed", "price_session", "running_cost"]
