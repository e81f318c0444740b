"""The station's installed profiles and running transactions, with the version entry points."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from . import _composite, _wire
from ._model import (
    ActiveTransaction,
    ChargingProfile,
    ClearStatus,
    CompositeSchedule,
    Limit,
    ProfileStatus,
    Purpose,
    RateUnit,
    SetProfileOutcome,
)

__all__ = ["Conflict", "ProfileStore"]


class Conflict(Enum):
    """What a new profile does to another one with the same purpose and stack level.

    REPLACE is OCPP 1.6 (same stackLevel/purpose on the same connector: the new one replaces).
    REJECT is OCPP 2.0.1: K01.FR.06 (same EVSE, overlapping validity) and K01.FR.39 (TxProfile,
    same transaction) refuse the newcomer instead.
    """

    REPLACE = "replace"
    REJECT = "reject"


def _overlap(a: ChargingProfile, b: ChargingProfile, now: float) -> bool:
    """Whether the validity windows meet; an absent validFrom means "from receipt" (``now``)."""
    a_from = now if a.valid_from is None else a.valid_from
    b_from = now if b.valid_from is None else b.valid_from
    a_to = float("inf") if a.valid_to is None else a.valid_to
    b_to = float("inf") if b.valid_to is None else b.valid_to
    return a_from < b_to and b_from < a_to


def _clashes(new: ChargingProfile, old: ChargingProfile) -> bool:
    if new.purpose is not old.purpose or new.stack_level != old.stack_level:
        return False
    if new.purpose is Purpose.TX:
        return new.transaction_id == old.transaction_id
    return new.connector_id == old.connector_id


@dataclass(frozen=True, slots=True)
class _KeptLimit:
    """An answer of :meth:`ProfileStore.limit_at`, valid for the same profiles and arguments from ``since``
    until the next breakpoint of any profile (``until``): the twin asks at every physics step. The reference
    instant counts only when a profile reads it (``any_reference`` else): an idle connector's reference is
    ``now`` itself, a new one at every ask, while its profiles are mostly Absolute ones with a start."""

    profiles: list[ChargingProfile]
    key: tuple[int, RateUnit | None, float, int]
    reference: float
    any_reference: bool
    since: float
    until: float
    limit: Limit | None


class ProfileStore:
    """Charging profiles installed on one station, per connector/EVSE (0 = the station).

    Mutable, but holds no clock: every method that depends on time takes ``now`` (POSIX s).

    Args:
        connector_count: connectors (1.6) or EVSEs (2.0.1), numbered from 1.
    """

    __slots__ = ("_limits", "_profiles", "_transactions", "connector_count")

    def __init__(self, connector_count: int) -> None:
        self.connector_count = connector_count
        # Installation order breaks stack-level ties. Never changed in place: every change assigns a new list,
        # which is what tells a kept limit (``_limits``) that it is stale.
        self._profiles: list[ChargingProfile] = []
        self._transactions: dict[int, ActiveTransaction] = {}
        self._limits: dict[int, _KeptLimit] = {}  # per connector: the last answer of limit_at, while it holds

    # --- state ---------------------------------------------------------------------------------

    @property
    def profiles(self) -> tuple[ChargingProfile, ...]:
        """Installed profiles, oldest first."""
        return tuple(self._profiles)

    @property
    def transactions(self) -> Mapping[int, ActiveTransaction]:
        """Running transactions by connector (a read-only copy)."""
        return dict(self._transactions)

    def _context(self) -> _wire.ValidationContext:
        return _wire.ValidationContext(self.connector_count, dict(self._transactions))

    def start_transaction(self, connector_id: int, transaction_id: str | int, now: float) -> None:
        """Note a transaction started on ``connector_id`` at ``now``; Relative profiles start here."""
        self._transactions[connector_id] = ActiveTransaction(connector_id, str(transaction_id), now)

    def end_transaction(self, connector_id: int) -> tuple[ChargingProfile, ...]:
        """Forget the connector's transaction and remove its TxProfiles; returns those removed."""
        self._transactions.pop(connector_id, None)
        removed = tuple(p for p in self._profiles if p.purpose is Purpose.TX and p.connector_id == connector_id)
        self._profiles = [p for p in self._profiles if p not in removed]
        return removed

    def purge_expired(self, now: float) -> tuple[ChargingProfile, ...]:
        """Remove profiles whose ``valid_to`` has passed; returns those removed."""
        removed = tuple(p for p in self._profiles if p.valid_to is not None and p.valid_to <= now)
        self._profiles = [p for p in self._profiles if p not in removed]
        return removed

    # --- installing and clearing -----------------------------------------------------------------

    def install(self, profile: ChargingProfile, now: float, conflict: Conflict = Conflict.REPLACE) -> SetProfileOutcome:
        """Store an already validated profile.

        A profile with the same id is always replaced. One with the same purpose and stack level
        (same connector; for TxProfiles the same transaction) is replaced or, under
        ``Conflict.REJECT`` and with overlapping validity, makes this call reply Rejected.
        """
        others = [p for p in self._profiles if p.id != profile.id]
        clashing = [p for p in others if _clashes(profile, p)]
        if conflict is Conflict.REJECT:
            clashing = [p for p in clashing if profile.purpose is Purpose.TX or _overlap(profile, p, now)]
            if clashing:
                return SetProfileOutcome(
                    ProfileStatus.REJECTED,
                    None,
                    "DuplicateProfile",
                    f"profile {clashing[0].id} has the same purpose and stack level",
                )
        self._profiles = [p for p in others if p not in clashing] + [profile]
        return SetProfileOutcome(ProfileStatus.ACCEPTED, profile)

    def set_charging_profile_v16(self, payload: Mapping[str, Any], now: float) -> SetProfileOutcome:
        """Handle a 1.6 ``SetChargingProfile.req`` payload: validate, then install (REPLACE)."""
        outcome = _wire.parse_set_charging_profile_v16(payload, self._context())
        if outcome.profile is None:
            return outcome
        return self.install(outcome.profile, now, Conflict.REPLACE)

    def set_charging_profile_v201(self, payload: Mapping[str, Any], now: float) -> SetProfileOutcome:
        """Handle a 2.0.1 ``SetChargingProfileRequest`` payload: validate, then install (REJECT)."""
        outcome = _wire.parse_set_charging_profile_v201(payload, self._context())
        if outcome.profile is None:
            return outcome
        return self.install(outcome.profile, now, Conflict.REJECT)

    def clear(
        self,
        id: int | None = None,
        connector_id: int | None = None,
        purpose: Purpose | None = None,
        stack_level: int | None = None,
        *,
        keep: frozenset[Purpose] = frozenset(),
    ) -> ClearStatus:
        """Remove profiles: the one with ``id``, else all matching every criterion given.

        With no argument at all every profile goes. Profiles whose purpose is in ``keep`` are
        never removed (2.0.1 never clears ChargingStationExternalConstraints).

        Returns:
            Accepted if something was removed, else Unknown.
        """

        def matches(p: ChargingProfile) -> bool:
            if p.purpose in keep:
                return False
            if id is not None:
                return p.id == id
            return (
                (connector_id is None or p.connector_id == connector_id)
                and (purpose is None or p.purpose is purpose)
                and (stack_level is None or p.stack_level == stack_level)
            )

        kept = [p for p in self._profiles if not matches(p)]
        if len(kept) == len(self._profiles):
            return ClearStatus.UNKNOWN
        self._profiles = kept
        return ClearStatus.ACCEPTED

    def clear_charging_profile_v16(self, payload: Mapping[str, Any]) -> ClearStatus:
        """Handle a 1.6 ``ClearChargingProfile.req`` payload."""
        purpose = payload.get("chargingProfilePurpose")
        return self.clear(
            payload.get("id"),
            payload.get("connectorId"),
            None if purpose is None else _wire.purpose_from_v16(purpose),
            payload.get("stackLevel"),
        )

    def clear_charging_profile_v201(self, payload: Mapping[str, Any]) -> ClearStatus:
        """Handle a 2.0.1 ``ClearChargingProfileRequest`` payload (ExternalConstraints are kept)."""
        criteria = payload.get("chargingProfileCriteria", {})
        purpose = criteria.get("chargingProfilePurpose")
        return self.clear(
            payload.get("chargingProfileId"),
            criteria.get("evseId"),
            None if purpose is None else _wire.purpose_from_v201(purpose),
            criteria.get("stackLevel"),
            keep=frozenset({Purpose.EXTERNAL_CONSTRAINTS}),
        )

    # --- evaluating ----------------------------------------------------------------------------

    def _reference(self, connector_id: int, start: float, transaction_start: float | None) -> float:
        if transaction_start is not None:
            return transaction_start
        active = self._transactions.get(connector_id)
        return start if active is None else active.started_at

    def limit_at(
        self,
        connector_id: int,
        now: float,
        transaction_start: float | None = None,
        *,
        unit: RateUnit | None = None,
        volts_per_phase: float = _composite.DEFAULT_VOLTS_PER_PHASE,
        phases: int = _composite.DEFAULT_PHASES,
    ) -> Limit | None:
        """The limit in force on ``connector_id`` at ``now`` (None: no profile limits it).

        Args:
            transaction_start: where Relative schedules start; default the connector's running
                transaction, else ``now`` itself.
            unit: the unit wanted; None keeps the winning profile's unit.
            volts_per_phase, phases: for A↔W conversion where a period gives no numberPhases.
        """
        if transaction_start is not None:  # self._reference(…), inlined: the twin asks at every step and pump
            reference = transaction_start
        else:
            active = self._transactions.get(connector_id)
            reference = now if active is None else active.started_at
        profiles = self._profiles
        key = (connector_id, unit, volts_per_phase, phases)
        kept = self._limits.get(connector_id)
        if (
            kept is not None
            and kept.profiles is profiles
            and kept.key == key
            and (kept.reference == reference or kept.any_reference)
            and kept.since <= now < kept.until
        ):
            return kept.limit
        limit = _composite.limit_at(profiles, connector_id, now, reference, unit, volts_per_phase, phases)
        until = _composite.next_breakpoint(profiles, now, reference)
        any_reference = not any(_composite.reads_reference(p) for p in profiles)
        self._limits[connector_id] = _KeptLimit(profiles, key, reference, any_reference, now, until, limit)
        return limit

    def composite_schedule(
        self,
        connector_id: int,
        now: float,
        duration_s: float,
        unit: RateUnit | None = None,
        *,
        transaction_start: float | None = None,
        volts_per_phase: float = _composite.DEFAULT_VOLTS_PER_PHASE,
        phases: int = _composite.DEFAULT_PHASES,
    ) -> CompositeSchedule:
        """The composite schedule of ``connector_id`` over ``[now, now + duration_s)``.

        Connector 0 gives the grid connection's limits (station max and external constraints);
        the sum of the connectors' schedules is not computed.
        """
        reference = self._reference(connector_id, now, transaction_start)
        return _composite.composite(
            self._profiles, connector_id, now, duration_s, reference, unit, volts_per_phase, phases
        )

    def next_change(self, connector_id: int, now: float, transaction_start: float | None = None) -> float | None:
        """The next instant after ``now`` when :meth:`limit_at` changes: the timer to arm, or None."""
        reference = self._reference(connector_id, now, transaction_start)
        return _composite.next_change(self._profiles, connector_id, now, reference)

    def get_composite_schedule_v16(
        self,
        payload: Mapping[str, Any],
        now: float,
        *,
        rating: float | None = None,
        volts_per_phase: float = _composite.DEFAULT_VOLTS_PER_PHASE,
        phases: int = _composite.DEFAULT_PHASES,
    ) -> dict[str, Any]:
        """Answer a 1.6 ``GetCompositeSchedule.req``; ``rating`` fills periods nothing limits."""
        connector_id = payload["connectorId"]
        if not 0 <= connector_id <= self.connector_count:
            return _wire.composite_schedule_response_v16(None)
        unit = RateUnit(payload["chargingRateUnit"]) if "chargingRateUnit" in payload else None
        schedule = self.composite_schedule(
            connector_id, now, payload["duration"], unit, volts_per_phase=volts_per_phase, phases=phases
        )
        return _wire.composite_schedule_response_v16(schedule, rating)

    def get_composite_schedule_v201(
        self,
        payload: Mapping[str, Any],
        now: float,
        *,
        rating: float | None = None,
        volts_per_phase: float = _composite.DEFAULT_VOLTS_PER_PHASE,
        phases: int = _composite.DEFAULT_PHASES,
    ) -> dict[str, Any]:
        """Answer a 2.0.1 ``GetCompositeScheduleRequest``; ``rating`` as in the 1.6 one."""
        evse_id = payload["evseId"]
        if not 0 <= evse_id <= self.connector_count:
            return _wire.composite_schedule_response_v201(None)
        unit = RateUnit(payload["chargingRateUnit"]) if "chargingRateUnit" in payload else None
        schedule = self.composite_schedule(
            evse_id, now, payload["duration"], unit, volts_per_phase=volts_per_phase, phases=phases
        )
        return _wire.composite_schedule_response_v201(schedule, rating)
