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
* Absolute kind, ``startSchedule`` = ``validFrom`` = now, one period from 0, no ``validTo``: the limit
  holds until replaced (a TxProfile also ends with its transaction). Unit A with ``numberPhases`` for AC,
  W for DC. Limits are rounded *down* (0.1 A, 1 W): rounding never takes a charger over its allocation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from csms.ocpp import schemas

STACK_LEVEL = 5
STATION_MAX_ID = 90000
TX_DEFAULT_BASE = 91000
TX_BASE = 92000
ACTION = "SetChargingProfile"


class Purpose(StrEnum):
    TX = "TxProfile"
    TX_DEFAULT = "TxDefaultProfile"
    STATION_MAX = "ChargingStationMaxProfile"

    def wire(self, version: str) -> str:
        if self is Purpose.STATION_MAX and version == "1.6":
            return "ChargePointMaxProfile"
        return self.value


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

    @property
    def profile_id(self) -> int:
        if self.purpose is Purpose.STATION_MAX:
            return STATION_MAX_ID
        return (TX_BASE if self.purpose is Purpose.TX else TX_DEFAULT_BASE) + self.evse_id

    @property
    def slot(self) -> tuple[str, int, Purpose]:
        return (self.station_id, self.evse_id, self.purpose)


def round_limit(limit: float, unit: str) -> float:
    step = 0.1 if unit == "A" else 1.0
    return max(0.0, math.floor(limit / step + 1e-9) * step) if unit == "A" else float(max(0, math.floor(limit)))


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def to_payload(version: str, spec: ProfileSpec, now: float) -> dict[str, Any]:
    """The SetChargingProfile request for ``spec``, checked against the version's schema.

    Raises:
        ValueError: a TxProfile without a transaction id (1.6 needs an integer one).
        csms.ocpp.errors.OcppError: the payload breaks the schema (a bug here, never the caller's input).
    """
    limit = round(round_limit(spec.limit, spec.unit), 1)
    period: dict[str, Any] = {"startPeriod": 0, "limit": limit}
    if spec.unit == "A" and spec.number_phases is not None:
        period["numberPhases"] = spec.number_phases
    if spec.purpose is Purpose.TX and spec.transaction_id is None:
        raise ValueError(f"a TxProfile needs a transaction id ({spec.station_id} EVSE {spec.evse_id})")
    start = _iso(now)
    if version == "1.6":
        profile: dict[str, Any] = {
            "chargingProfileId": spec.profile_id,
            "stackLevel": STACK_LEVEL,
            "chargingProfilePurpose": spec.purpose.wire(version),
            "chargingProfileKind": "Absolute",
            "validFrom": start,
            "chargingSchedule": {
                "chargingRateUnit": spec.unit,
                "startSchedule": start,
                "chargingSchedulePeriod": [period],
            },
        }
        if spec.purpose is Purpose.TX:
            try:
                profile["transactionId"] = int(spec.transaction_id or "")
            except ValueError:
                raise ValueError(f"1.6 transaction ids are integers, got {spec.transaction_id!r}") from None
        payload: dict[str, Any] = {"connectorId": spec.evse_id, "csChargingProfiles": profile}
    else:
        profile = {
            "id": spec.profile_id,
            "stackLevel": STACK_LEVEL,
            "chargingProfilePurpose": spec.purpose.wire(version),
            "chargingProfileKind": "Absolute",
            "validFrom": start,
            "chargingSchedule": [
                {
                    "id": spec.profile_id,
                    "chargingRateUnit": spec.unit,
                    "startSchedule": start,
                    "chargingSchedulePeriod": [period],
                }
            ],
        }
        if spec.purpose is Purpose.TX:
            profile["transactionId"] = str(spec.transaction_id)
        payload = {"evseId": spec.evse_id, "chargingProfile": profile}
    schemas.validate(version, ACTION, "request", payload)  # type: ignore[arg-type]
    return payload


def profile_id_of(version: str, payload: dict[str, Any]) -> tuple[int, int]:
    """``(evse_id, profile_id)`` of a payload built by :func:`to_payload`."""
    if "connectorId" in payload:  # by shape: a station may have changed version since it was sent
        return payload["connectorId"], payload["csChargingProfiles"]["chargingProfileId"]
    return payload["evseId"], payload["chargingProfile"]["id"]


@dataclass
class _Slot:
    spec: ProfileSpec
    status: str  # pending | accepted | failed
    at: float
    #: The last limit the charger accepted in this slot (None: none yet).
    accepted_limit: float | None = None


@dataclass
class ProfileTracker:
    """What each charger was last sent and what it acknowledged; :meth:`changes` returns only what must be
    (re)sent.

    A new limit is sent when the purpose, transaction or unit changed, when it pauses or resumes, when it is
    *lower* than the sent one (always: the tree depends on it), or *higher* by more than the deadband. A
    Rejected answer, a CALLERROR or a timeout marks the EVSE unresponsive: the planner reserves
    ``max(fallback, last accepted limit)`` for it, and the profile is retried after ``retry_after_s``.
    """

    deadband_a: float = 0.5
    deadband_w: float = 300.0
    retry_after_s: float = 300.0
    _slots: dict[tuple[str, int, Purpose], _Slot] = field(default_factory=dict)

    def changes(self, desired: list[ProfileSpec], now: float) -> list[ProfileSpec]:
        out = []
        for spec in desired:
            slot = self._slots.get(spec.slot)
            if slot is None or self._differs(slot, spec, now):
                out.append(spec)
                accepted = slot.accepted_limit if slot is not None else None
                if slot is not None and (slot.spec.transaction_id != spec.transaction_id):
                    accepted = None
                self._slots[spec.slot] = _Slot(spec, "pending", now, accepted)
        return out

    def _differs(self, slot: _Slot, spec: ProfileSpec, now: float) -> bool:
        if slot.status == "failed":
            return now >= slot.at + self.retry_after_s or spec.limit < round_limit(slot.spec.limit, slot.spec.unit)
        old = slot.spec
        if (old.purpose, old.transaction_id, old.unit, old.number_phases) != (
            spec.purpose,
            spec.transaction_id,
            spec.unit,
            spec.number_phases,
        ):
            return True
        new_limit, old_limit = round_limit(spec.limit, spec.unit), round_limit(old.limit, old.unit)
        if (new_limit == 0) != (old_limit == 0) or new_limit < old_limit:
            return True
        band = self.deadband_a if spec.unit == "A" else self.deadband_w
        return new_limit - old_limit > band

    def on_response(self, station_id: str, evse_id: int, profile_id: int, status: str, now: float) -> bool:
        """``status``: the charger's ``Accepted`` / ``Rejected``, or ``error`` (CALLERROR) / ``timeout``.

        Returns False for a moot answer: its slot was forgotten since it was sent (typically a TxProfile
        that crossed the end of its transaction, which the charger rightly rejects)."""
        for key, slot in self._slots.items():
            if key[0] == station_id and key[1] == evse_id and slot.spec.profile_id == profile_id:
                if status == "Accepted":
                    slot.status = "accepted"
                    slot.accepted_limit = round_limit(slot.spec.limit, slot.spec.unit)
                else:
                    slot.status = "failed"
                    slot.at = now
                return True
        return False

    def forget(self, station_id: str, evse_id: int | None = None, purpose: Purpose | None = None) -> None:
        """The charger lost or removed these profiles (reboot, transaction ended): send them again."""
        for key in [k for k in self._slots if k[0] == station_id]:
            if (evse_id is None or key[1] == evse_id) and (purpose is None or key[2] is purpose):
                del self._slots[key]

    def unresponsive(self) -> list[tuple[ProfileSpec, float | None]]:
        """Per-EVSE profiles whose last attempt failed, with the limit the slot last accepted (None: none)."""
        return [
            (slot.spec, slot.accepted_limit)
            for slot in self._slots.values()
            if slot.status == "failed" and slot.spec.evse_id > 0
        ]

    def held_limits(self, station_id: str) -> list[tuple[ProfileSpec, float]]:
        """Per-EVSE limits the station may be applying: the last accepted one of each slot, or the one sent
        and not answered yet when it is higher (the station may have applied it)."""
        out = []
        for key, slot in self._slots.items():
            if key[0] != station_id or slot.spec.evse_id <= 0:
                continue
            sent = round_limit(slot.spec.limit, slot.spec.unit) if slot.status == "pending" else None
            held = max((x for x in (slot.accepted_limit, sent) if x is not None), default=None)
            if held is not None:
                out.append((slot.spec, held))
        return out

    def retry_deadline(self) -> float | None:
        times = [s.at + self.retry_after_s for s in self._slots.values() if s.status == "failed"]
        return min(times) if times else None

    def sent(self, station_id: str, evse_id: int, purpose: Purpose) -> ProfileSpec | None:
        slot = self._slots.get((station_id, evse_id, purpose))
        return slot.spec if slot else None
