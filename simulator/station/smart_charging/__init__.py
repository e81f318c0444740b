"""Smart charging for the charger firmware model: profile storage and composite schedules.

Theory of operation
-------------------
The module is sans-IO and clock-free. Every instant is a POSIX timestamp in seconds
(``float``, UTC) passed in as ``now``; every span is in seconds. Datetimes appear only at the
JSON edge (:mod:`._wire`), where ISO 8601 strings are parsed and written.

* ``_model`` holds version-neutral frozen nouns: :class:`ChargingProfile` (one to three
  :class:`ChargingSchedule` of :class:`SchedulePeriod`), :class:`Limit`, :class:`CompositeSchedule`.
* ``_wire`` turns 1.6 ``SetChargingProfile`` (``connectorId``, ``csChargingProfiles``) and 2.0.1
  ``SetChargingProfile`` (``evseId``, ``chargingProfile``) payloads into profiles, checking them
  against one table of rules per version (``V16_RULES``, ``V201_RULES``). A broken rule gives a
  Rejected :class:`SetProfileOutcome` with a reason code, never an exception. It also builds the
  ``GetCompositeSchedule`` responses of both versions (limits rounded to 0.1).
* ``ProfileStore`` keeps the installed profiles and running transactions of one station.
  Same id replaces; same purpose + stack level on the same connector replaces in 1.6 and is
  Rejected in 2.0.1 (K01.FR.06/39); ending a transaction removes its TxProfiles; ``clear``
  follows ClearChargingProfile of both versions.
* ``_composite`` evaluates. A profile is *active* at ``t`` inside ``[validFrom, validTo)``, after
  its schedule start (Absolute: ``startSchedule``; Relative: the transaction start; Recurring:
  the latest daily/weekly repetition of ``startSchedule``) and before ``duration`` ends; its last
  period lasts until then. The purposes combine by the one table ``COMPOSITION``: the
  TxProfile of the connector, else its own TxDefault, else the station-wide (connector 0)
  TxDefault, each group won by the highest active stack level, so a schedule that has ended
  falls back to the next one; the result is capped by the station max and external
  constraints (the minimum, after A↔W conversion with ``volts_per_phase`` and ``phases``).
* :meth:`ProfileStore.next_change` is the deadline to hand to the scheduler: the next instant
  at which the limit differs, so the twin re-evaluates power exactly then.

:class:`Firmware` says whether the station obeys profiles at all (``compliant``), answers them
Rejected (``reject``) or accepts and ignores them (``ignore``); the charger applies it.

Without a transaction a Relative profile is evaluated as if it started at the query's ``now``.
"""

from ._composite import COMPOSITION, DEFAULT_PHASES, DEFAULT_VOLTS_PER_PHASE, Role, Scope, convert
from ._model import (
    DAY_S,
    WEEK_S,
    ActiveTransaction,
    ChargingProfile,
    ChargingSchedule,
    ClearStatus,
    CompositePeriod,
    CompositeSchedule,
    Firmware,
    Kind,
    Limit,
    ProfileStatus,
    Purpose,
    RateUnit,
    Recurrency,
    SchedulePeriod,
    SetProfileOutcome,
)
from ._store import Conflict, ProfileStore
from ._wire import (
    V16_RULES,
    V201_RULES,
    ValidationContext,
    clear_charging_profile_response,
    composite_schedule_response_v16,
    composite_schedule_response_v201,
    format_instant,
    parse_instant,
    parse_set_charging_profile_v16,
    parse_set_charging_profile_v201,
    set_charging_profile_response_v16,
    set_charging_profile_response_v201,
)

__all__ = [
    "COMPOSITION",
    "DAY_S",
    "DEFAULT_PHASES",
    "DEFAULT_VOLTS_PER_PHASE",
    "V16_RULES",
    "V201_RULES",
    "WEEK_S",
    "ActiveTransaction",
    "ChargingProfile",
    "ChargingSchedule",
    "ClearStatus",
    "CompositePeriod",
    "CompositeSchedule",
    "Conflict",
    "Firmware",
    "Kind",
    "Limit",
    "ProfileStatus",
    "ProfileStore",
    "Purpose",
    "RateUnit",
    "Recurrency",
    "Role",
    "SchedulePeriod",
    "Scope",
    "SetProfileOutcome",
    "ValidationContext",
    "clear_charging_profile_response",
    "composite_schedule_response_v16",
    "composite_schedule_response_v201",
    "convert",
    "format_instant",
    "parse_instant",
    "parse_set_charging_profile_v16",
    "parse_set_charging_profile_v201",
    "set_charging_profile_response_v16",
    "set_charging_profile_response_v201",
]
