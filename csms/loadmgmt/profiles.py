"""Allocations as OCPP charging profiles, and the bookkeeping of what each charger was sent.

Profile scheme (both versions)
------------------------------
* Ids are deterministic, so a new limit *replaces* the old profile on the charger (same id) instead of
  stacking a new one: ``STATION_MAX_ID`` for the station-wide cap, ``TX_DEFAULT_BASE + evse`` and
  ``TX_BASE + evse`` per EVSE. All ours sit at stack level :data:`STACK_LEVEL`, leaving lower levels to the
  installer's defaults and higher ones to operator overrides.
* A running transaction gets a TxProfile bound to it (1.6 ``transactionId`` int, 2.0.1 string); a plugged
  EVSE without a transaction, and every idle EVSE, get a TxDefaultProfile on their own connector/EVSE
  (idle ones at their fallback limit, so a car that plugs in starts there until the next plan).
  A station-wide ChargePointMaxProfile / ChargingStationMaxProfile caps the station at what the tightest
  node above it allows, a safety net that holds even when the CSMS is gone.
* Absolute kind, ``startSchedule`` = ``validFrom`` = now, no ``validTo``. A profile that carries an
  allocation is *leased*: its allocation from 0, then the EVSE's fallback from ``lease_s`` on, so a station
  that loses the CSMS falls back by itself once the lease is over (the planner reserves the allocation
  until then, the fallback after), and the tracker renews it at half the lease. A profile at the fallback
  has one period. Unit A with ``numberPhases`` for AC, W for DC. Limits are rounded *down* (0.1 A, 1 W):
  rounding never takes a charger over its allocation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from csms.loadmgmt.revision import Revision
from csms.ocpp.outgoing import ChargingProfile, SchedulePeriod

STACK_LEVEL = 5
STATION_MAX_ID = 90000
TX_DEFAULT_BASE = 91000
TX_BASE = 92000


class Purpose(StrEnum):
    """As 2.0.1 names it (1.6: ChargePointMaxProfile for the station's cap)."""

    TX = "TxProfile"
    TX_DEFAULT = "TxDefaultProfile"
    STATION_MAX = "ChargingStationMaxProfile"


@dataclass(frozen=True)
class ProfileSpec:
    """One limit for one charger: what the payload says, version-neutral."""

    station_id: str
    evse_id: int  # 0: the whole station
    purpose: Purpose
    limit: float
    unit: str = "A"  # A | W
    number_phases: int | None = None
    transaction_id: str | None = None
    #: The limit from ``lease_s`` on (None: ``limit`` holds until replaced).
    fallback: float | None = None
    lease_s: float | None = None

    #: ``limit`` as the charger is sent it (:func:`round_limit`).
    rounded: float = field(init=False, repr=False, compare=False)
    #: The schedule changes to ``fallback`` after the lease (the limit is not the fallback already).
    leased: bool = field(init=False, repr=False, compare=False)
    #: (station, EVSE, purpose): what the tracker keeps it under, the purpose as its plain str (equal to the member,
    #: and hashed without the str enum's slower slot: the tracker looks up every desired spec at each re-plan).
    slot: tuple[str, int, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Worked out once (the spec is frozen): the tracker reads all three of every new spec at each re-plan, and a
        # cached_property's first read takes a lock (Python 3.11).
        rounded = round_limit(self.limit, self.unit)
        leased = (
            self.fallback is not None and self.lease_s is not None and round_limit(self.fallback, self.unit) != rounded
        )
        value: str = self.purpose._value_
        object.__setattr__(self, "rounded", rounded)
        object.__setattr__(self, "leased", leased)
        object.__setattr__(self, "slot", (self.station_id, self.evse_id, value))

    @property
    def profile_id(self) -> int:
        if self.purpose is Purpose.STATION_MAX:
            return STATION_MAX_ID
        return (TX_BASE if self.purpose is Purpose.TX else TX_DEFAULT_BASE) + self.evse_id


def round_limit(limit: float, unit: str) -> float:
    if unit == "A":
        return max(0.0, math.floor(limit / 0.1 + 1e-9) * 0.1)
    return float(max(0, math.floor(limit)))


def charging_profile(spec: ProfileSpec, now: float) -> ChargingProfile:
    """``spec`` as the profile to send at ``now`` (``commands.set_charging_profile`` renders it per version).

    Raises:
        ValueError: a TxProfile without a transaction id.
    """
    limit = round(spec.rounded, 1)
    phases = spec.number_phases if spec.unit == "A" else None
    periods = [SchedulePeriod(0, limit, phases)]
    if spec.leased:
        assert spec.fallback is not None and spec.lease_s is not None
        periods.append(SchedulePeriod(int(spec.lease_s), round(round_limit(spec.fallback, spec.unit), 1), phases))
    return ChargingProfile(
        spec.profile_id,
        spec.evse_id,
        STACK_LEVEL,
        spec.purpose.value,
        spec.unit,
        now,
        tuple(periods),
        spec.transaction_id if spec.purpose is Purpose.TX else None,
    )


def profile_id_of(version: str, payload: dict[str, Any]) -> tuple[int, int]:
    """``(evse_id, profile_id)`` of a SetChargingProfile payload of :func:`charging_profile`."""
    if "connectorId" in payload:  # by shape: a station may have changed version since it was sent
        return payload["connectorId"], payload["csChargingProfiles"]["chargingProfileId"]
    return payload["evseId"], payload["chargingProfile"]["id"]


def transaction_of(payload: dict[str, Any]) -> str | None:
    """The transaction a SetChargingProfile payload binds its profile to (None: not a TxProfile)."""
    profile = payload.get("csChargingProfiles") or payload.get("chargingProfile") or {}
    tx = profile.get("transactionId")
    return None if tx is None else str(tx)


@dataclass
class _Slot:
    spec: ProfileSpec
    status: str  # pending | accepted | failed
    at: float
    #: The last limit the charger accepted in this slot (None: none yet).
    accepted_limit: float | None = None
    #: When the charger stops applying ``accepted_limit`` by itself (its lease ends; inf: never).
    accepted_until: float = float("inf")
    #: When the last sent profile was sent (``at`` moves on a failure).
    sent_at: float = 0.0
    #: The charger's answer to it (None: none yet); after a timeout it may have arrived.
    answer: str | None = None
    #: A failure since the last Accepted answer (a re-send does not clear it; an Accepted does).
    failing: bool = False


@dataclass
class ProfileTracker:
    """What each charger was last sent and what it acknowledged; :meth:`changes` returns only what must be
    (re)sent.

    A new limit is sent when the purpose, transaction or unit changed, when it pauses or resumes, when it is
    *lower* than the sent one (always: the tree depends on it — the planner holds a small decrease itself, handing
    the sent spec back, only where the tree allows it, :meth:`holds`), or *higher* by more than the deadband. A
    Rejected answer, a CALLERROR or a timeout marks the EVSE unresponsive: the planner reserves
    ``max(fallback, last accepted limit)`` for it, and the profile is retried after ``retry_after_s``.
    """

    deadband_a: float = 0.5
    deadband_w: float = 300.0
    retry_after_s: float = 300.0
    _slots: dict[tuple[str, int, str], _Slot] = field(default_factory=dict)
    #: When each slot whose status is "failed" failed (``_Slot.at``): the retry deadline is asked for at every
    #: committed report, and walking every slot for it cost more than the re-plans it serves.
    _failed_at: dict[tuple[str, int, str], float] = field(default_factory=dict)
    #: The slots whose ``failing`` is set: :meth:`unresponsive` is asked at every re-plan, and most of the time none is.
    _failing: set[tuple[str, int, str]] = field(default_factory=set)
    #: Bumped whenever ``_failed_at`` changes (the retry deadline moves).
    revision: Revision = field(default_factory=Revision, compare=False, repr=False)

    def changes(self, desired: list[ProfileSpec], now: float) -> list[ProfileSpec]:
        out = []
        slots = self._slots
        bands = self.deadband_a >= 0 and self.deadband_w >= 0
        for spec in desired:
            slot = slots.get(spec.slot)
            if (
                slot is not None
                and slot.spec is spec
                and bands
                and slot.status != "failed"
                and (not spec.leased or now < slot.sent_at + (spec.lease_s or 0.0) / 2)
            ):
                continue  # the same spec as sent, its lease not due for renewal: :meth:`_differs` says False
            if slot is None or self._differs(slot, spec, now):
                out.append(spec)
                accepted = slot.accepted_limit if slot is not None else None
                until = slot.accepted_until if slot is not None else float("inf")
                if slot is not None and (slot.spec.transaction_id != spec.transaction_id):
                    accepted = None
                failing = slot is not None and slot.failing
                self._slots[spec.slot] = _Slot(spec, "pending", now, accepted, until, now, failing=failing)
                if self._failed_at.pop(spec.slot, None) is not None:
                    self.revision.bump()
        return out

    def holds(self, sent: ProfileSpec, limit: float, now: float) -> bool:
        """Whether the planner may keep the charger at the ``sent`` spec instead of ``limit`` (its unit): a change
        within the deadband that is not a pause or resume, the slot not failed. An increase is one this tracker would
        not send (its lease not due for renewal, when the increase goes out with it); a *decrease* is one it would
        (every decrease is), which the planner holds only where the tree allows it."""
        slot = self._slots.get(sent.slot)
        if slot is None or slot.spec is not sent or slot.status == "failed":
            return False
        new, old = round_limit(limit, sent.unit), sent.rounded
        band = self.deadband_a if sent.unit == "A" else self.deadband_w
        if new <= 0 or old <= 0 or new == old or abs(new - old) > band:
            return False
        return new < old or not (sent.leased and now >= slot.sent_at + (sent.lease_s or 0.0) / 2)

    def _differs(self, slot: _Slot, spec: ProfileSpec, now: float) -> bool:
        if slot.status == "failed":
            return now >= slot.at + self.retry_after_s or spec.limit < slot.spec.rounded
        old = slot.spec
        band = self.deadband_a if spec.unit == "A" else self.deadband_w
        if old is spec:
            # The same profile as sent (most slots at most re-plans: the planner hands the same spec again): only
            # its lease's renewal can send it — the comparisons below, with every difference zero. (An equal spec
            # that is another object gets the same answer from them.)
            return (old.leased and now >= slot.sent_at + (old.lease_s or 0.0) / 2) or band < 0
        if (old.purpose, old.transaction_id, old.unit, old.number_phases) != (
            spec.purpose,
            spec.transaction_id,
            spec.unit,
            spec.number_phases,
        ):
            return True
        new_limit, old_limit = spec.rounded, old.rounded
        if (new_limit == 0) != (old_limit == 0) or new_limit < old_limit:
            return True
        if spec.leased != old.leased or (spec.leased and now >= slot.sent_at + (spec.lease_s or 0.0) / 2):
            return True  # renew the lease at half its length
        return new_limit - old_limit > band

    def on_response(
        self,
        station_id: str,
        evse_id: int,
        profile_id: int,
        status: str,
        now: float,
        transaction_id: str | None = None,
    ) -> bool:
        """``status``: the charger's ``Accepted`` / ``Rejected``, or ``error`` (CALLERROR) / ``timeout``;
        ``transaction_id``: the one the answered TxProfile was bound to.

        Returns False, changing nothing, for a moot answer: the answered profile is no longer what its slot
        holds — the slot was forgotten since it was sent (the transaction ended, the station reconnected) or
        now holds another transaction's TxProfile. Typically a TxProfile that crossed the end of its
        transaction, which the charger rightly rejects: that says nothing about the charger."""
        for purpose in Purpose:  # a slot's profile id follows from its EVSE and purpose: one can match
            key = (station_id, evse_id, purpose)
            slot = self._slots.get(key)
            if slot is not None and slot.spec.profile_id == profile_id:
                if transaction_id is not None and slot.spec.transaction_id != transaction_id:
                    return False
                if status == "Accepted":
                    slot.status = "accepted"
                    if self._failed_at.pop(key, None) is not None:
                        self.revision.bump()
                    slot.failing = False
                    self._failing.discard(key)
                    slot.accepted_limit = slot.spec.rounded
                    spec = slot.spec
                    slot.accepted_until = slot.sent_at + (spec.lease_s or 0.0) if spec.leased else float("inf")
                else:
                    slot.status = "failed"
                    slot.failing = True
                    self._failing.add(key)
                    slot.at = self._failed_at[key] = now
                    self.revision.bump()
                slot.answer = status
                return True
        return False

    def forget(self, station_id: str, evse_id: int | None = None, purpose: Purpose | None = None) -> None:
        """The charger lost or removed these profiles (reboot, transaction ended): send them again."""
        for key in [k for k in self._slots if k[0] == station_id]:
            if (evse_id is None or key[1] == evse_id) and (purpose is None or key[2] == purpose):
                del self._slots[key]
                self._failing.discard(key)
                if self._failed_at.pop(key, None) is not None:
                    self.revision.bump()

    def unresponsive(self) -> list[tuple[ProfileSpec, float | None]]:
        """Per-EVSE profiles that failed since their last Accepted answer (a re-send may be on its way), with
        the limit the slot last accepted (None: none)."""
        if not self._failing:
            return []
        return [
            (slot.spec, slot.accepted_limit) for slot in self._slots.values() if slot.failing and slot.spec.evse_id > 0
        ]

    def applied_bounds(self, station_id: str, now: float) -> dict[int, float]:
        """Per EVSE of a station that can no longer be told anything (offline), the highest limit it may
        still be applying now by our profiles (spec unit): an accepted one whose lease is not over, or one
        sent but not answered (it may have arrived). EVSEs absent: none applies beyond the fallback."""
        out: dict[int, float] = {}
        for (station, evse_id, _), slot in self._slots.items():
            if station != station_id or evse_id <= 0:
                continue
            bounds = []
            if slot.accepted_limit is not None and now < slot.accepted_until:
                bounds.append(slot.accepted_limit)
            spec = slot.spec
            if slot.answer in (None, "timeout") and (not spec.leased or now < slot.sent_at + (spec.lease_s or 0.0)):
                bounds.append(spec.rounded)
            if bounds:
                out[evse_id] = max(out.get(evse_id, 0.0), *bounds)
        return out

    def failing(self, station_id: str) -> bool:
        """Whether any of the station's profiles failed since it was last accepted."""
        return any(slot.failing for key, slot in self._slots.items() if key[0] == station_id)

    def retry_deadline(self) -> float | None:
        if not self._failed_at:
            return None
        return min(at + self.retry_after_s for at in self._failed_at.values())

    def sent(self, station_id: str, evse_id: int, purpose: Purpose) -> ProfileSpec | None:
        value: str = purpose._value_  # (a slot's key: see ProfileSpec.slot)
        return self.sent_in((station_id, evse_id, value))

    def sent_in(self, slot_key: tuple[str, int, str]) -> ProfileSpec | None:
        """The spec last sent in a slot (its :attr:`ProfileSpec.slot`), None: none."""
        slot = self._slots.get(slot_key)
        return slot.spec if slot else None
