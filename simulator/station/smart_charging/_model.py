"""Version-neutral charging-profile model: frozen nouns, no behaviour beyond small helpers.

All instants are POSIX seconds (``float``, UTC); all spans are seconds. Datetimes exist only
in :mod:`._wire`, at the JSON edge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

__all__ = [
    "DAY_S",
    "WEEK_S",
    "ActiveTransaction",
    "ChargingProfile",
    "ChargingSchedule",
    "ClearStatus",
    "CompositePeriod",
    "CompositeSchedule",
    "Kind",
    "Limit",
    "ProfileStatus",
    "Purpose",
    "RateUnit",
    "Recurrency",
    "SchedulePeriod",
    "SetProfileOutcome",
]

DAY_S = 86_400.0
WEEK_S = 7 * DAY_S


class Purpose(Enum):
    """What a profile limits. Values are the 2.0.1 wire names; 1.6 names map in :mod:`._wire`."""

    STATION_MAX = "ChargingStationMaxProfile"  # 1.6: ChargePointMaxProfile
    EXTERNAL_CONSTRAINTS = "ChargingStationExternalConstraints"  # 2.0.1 only
    TX_DEFAULT = "TxDefaultProfile"
    TX = "TxProfile"


class Kind(Enum):
    """How a schedule is anchored in time."""

    ABSOLUTE = "Absolute"
    RECURRING = "Recurring"
    RELATIVE = "Relative"


class Recurrency(Enum):
    """Repetition interval of a Recurring profile; ``period_s`` is its length."""

    DAILY = "Daily"
    WEEKLY = "Weekly"

    @property
    def period_s(self) -> float:
        return DAY_S if self is Recurrency.DAILY else WEEK_S


class RateUnit(Enum):
    """Unit of a limit: amperes per phase or watts in total."""

    A = "A"
    W = "W"


class ProfileStatus(Enum):
    """Reply to SetChargingProfile (both versions)."""

    ACCEPTED = "Accepted"
    REJECTED = "Rejected"


class ClearStatus(Enum):
    """Reply to ClearChargingProfile (both versions)."""

    ACCEPTED = "Accepted"
    UNKNOWN = "Unknown"


@dataclass(frozen=True, slots=True)
class SchedulePeriod:
    """One step of a schedule: from ``start_period_s`` after the schedule start, at most ``limit``."""

    start_period_s: int
    limit: float
    number_phases: int | None = None


@dataclass(frozen=True, slots=True)
class ChargingSchedule:
    """Periods in one unit, anchored by the profile kind; ``start_schedule`` is POSIX seconds."""

    rate_unit: RateUnit
    periods: tuple[SchedulePeriod, ...]
    duration_s: int | None = None
    start_schedule: float | None = None
    min_charging_rate: float | None = None
    id: int | None = None  # 2.0.1 only


@dataclass(frozen=True, slots=True)
class ChargingProfile:
    """A charging profile as the station stores it.

    ``connector_id`` is the 1.6 connector or 2.0.1 EVSE it was installed on; 0 is the whole
    station. ``transaction_id`` is a string in both versions (1.6 integers are stringified).
    ``schedules`` has one element in 1.6 and one to three in 2.0.1.
    """

    id: int
    stack_level: int
    purpose: Purpose
    kind: Kind
    schedules: tuple[ChargingSchedule, ...]
    connector_id: int = 0
    recurrency: Recurrency | None = None
    valid_from: float | None = None
    valid_to: float | None = None
    transaction_id: str | None = None

    def is_valid_at(self, now: float) -> bool:
        """Whether ``now`` lies in ``[valid_from, valid_to)``."""
        if self.valid_from is not None and now < self.valid_from:
            return False
        return self.valid_to is None or now < self.valid_to


@dataclass(frozen=True, slots=True)
class ActiveTransaction:
    """A running transaction on a connector, as far as smart charging cares."""

    connector_id: int
    transaction_id: str
    started_at: float


@dataclass(frozen=True, slots=True)
class Limit:
    """The limit in force: ``value`` in ``unit``; ``number_phases`` as the binding period says."""

    value: float
    unit: RateUnit
    number_phases: int | None = None


@dataclass(frozen=True, slots=True)
class CompositePeriod:
    """A step of a composite schedule; ``limit`` is None where no profile limits charging."""

    start_period_s: float
    limit: float | None
    number_phases: int | None = None


@dataclass(frozen=True, slots=True)
class CompositeSchedule:
    """The composite of all profiles for one connector over ``[start, start + duration_s)``."""

    connector_id: int
    start: float
    duration_s: float
    unit: RateUnit
    periods: tuple[CompositePeriod, ...]


class Firmware(Enum):
    """How the firmware treats the charging profiles it is sent.

    COMPLIANT stores and obeys them. REJECT answers every SetChargingProfile Rejected (some chargers ship
    with smart charging switched off). IGNORE answers Accepted and stores them, but the power electronics
    never hear of them: the EVSE keeps drawing its full rating (a firmware bug seen in the field).
    """

    COMPLIANT = "compliant"
    REJECT = "reject"
    IGNORE = "ignore"


@dataclass(frozen=True, slots=True)
class SetProfileOutcome:
    """Result of a SetChargingProfile: the status, the stored profile, and why if Rejected.

    ``reason`` is a short code (at most 20 characters, fit for 2.0.1 ``statusInfo.reasonCode``);
    ``detail`` says what was wrong in words.
    """

    status: ProfileStatus
    profile: ChargingProfile | None = None
    reason: str | None = None
    detail: str | None = field(default=None, compare=False)

    @property
    def accepted(self) -> bool:
        return self.status is ProfileStatus.ACCEPTED
