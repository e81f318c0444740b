"""Which stations load management cannot steer, and why: the record the planner reserves from.

Theory of operation
-------------------
A station is *unmanaged* when it answers a profile Rejected or with a CALLERROR (``rejected``), or when
an EVSE of it is seen drawing more than its allocation for ``overdraw_after_s`` (``overdraw``: firmware
that accepts profiles and ignores them). The planner reserves such EVSEs at their worst case and shares
what remains among the others. ``rejected`` ends at the station's next Accepted answer (a compliant
charger may reject one profile for a passing reason, e.g. a transaction that just ended); ``overdraw``
holds until the CSMS restarts, because a firmware that ignores limits shows it only by overdrawing again,
which the site cannot afford twice.

Offline time is counted here too: minutes a station was planned at its fallback because it was offline.
The record is plain data kept by the :class:`~csms.loadmgmt.manager.LoadManager` per site, so a planner
rebuilt for a changed site keeps it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from csms.loadmgmt.topology import EvseKey

REJECTED = "rejected"
OVERDRAW = "overdraw"


@dataclass
class Compliance:
    """Unmanaged stations, overdraw detection and counters of one site."""

    #: Draw above the allocation that counts as overdraw (A per phase): above the meters' noise.
    overdraw_margin_a: float = 2.0
    #: How long overdraw must last before the EVSE is flagged (several meter samples).
    overdraw_after_s: float = 120.0
    #: After a new allocation the charger's meter may still show the old one for a sample or so.
    overdraw_grace_s: float = 75.0
    profiles_rejected: int = 0
    #: station → (reason, since)
    flagged: dict[str, tuple[str, float]] = field(default_factory=dict)
    #: every flag raised, in order: (station, reason, at) — for the report
    history: list[tuple[str, str, float]] = field(default_factory=list)
    #: EVSEs seen coming down to a reduced allocation: the planner trusts their next reductions at once.
    followed: set[EvseKey] = field(default_factory=set)
    _over_since: dict[EvseKey, float] = field(default_factory=dict)
    _overdrawn: set[EvseKey] = field(default_factory=set)
    _offline_since: dict[str, float] = field(default_factory=dict)
    _offline_s: dict[str, float] = field(default_factory=dict)

    # ---- facts -----------------------------------------------------------------------------------------
    def answer(self, station_id: str, status: str, now: float) -> bool:
        """A profile's outcome (``Accepted``/``Rejected``/``error``/``timeout``); True when it flags or clears
        the station. A timeout says nothing about the firmware (the planner treats it on its own)."""
        if status == "Accepted":
            current = self.flagged.get(station_id)
            if current is not None and current[0] == REJECTED:
                del self.flagged[station_id]
                return True
            return False
        if status not in ("Rejected", "error"):
            return False
        self.profiles_rejected += 1
        if station_id in self.flagged:
            return False
        self._flag(station_id, REJECTED, now)
        return True

    def meter(self, key: EvseKey, now: float, *, measured_a: float, allocated_a: float, limit_since: float) -> bool:
        """An EVSE's measured current against the allocation it has had since ``limit_since``; True when
        this sample flags it."""
        if key in self._overdrawn or now - limit_since < self.overdraw_grace_s:
            return False
        if measured_a <= allocated_a + self.overdraw_margin_a:
            self._over_since.pop(key, None)
            return False
        since = self._over_since.setdefault(key, now)
        if now - since < self.overdraw_after_s:
            return False
        self._overdrawn.add(key)
        if self.flagged.get(key[0], ("",))[0] != OVERDRAW:
            self._flag(key[0], OVERDRAW, now)
        return True

    def _flag(self, station_id: str, reason: str, now: float) -> None:
        self.flagged[station_id] = (reason, now)
        self.history.append((station_id, reason, now))

    def offline(self, station_id: str, now: float) -> None:
        self._offline_since.setdefault(station_id, now)

    def online(self, station_id: str, now: float) -> None:
        since = self._offline_since.pop(station_id, None)
        if since is not None:
            self._offline_s[station_id] = self._offline_s.get(station_id, 0.0) + now - since

    # ---- questions -------------------------------------------------------------------------------------
    def unmanaged(self, key: EvseKey) -> str | None:
        """Why the planner cannot steer this EVSE (None: it can)."""
        flag = self.flagged.get(key[0])
        return None if flag is None else flag[0]

    def offline_s(self, now: float) -> dict[str, float]:
        """Seconds each station has been planned at its fallback because it was offline (after it had been
        online once), up to ``now``."""
        out = dict(self._offline_s)
        for station_id, since in self._offline_since.items():
            out[station_id] = out.get(station_id, 0.0) + now - since
        return out

    def summary(self, now: float) -> dict[str, Any]:
        offline = self.offline_s(now)
        return {
            "profiles_rejected": self.profiles_rejected,
            "stations_noncompliant": [
                {"station": station, "reason": reason, "at": at} for station, reason, at in self.history
            ],
            "fallback_minutes": {station: round(s / 60.0, 1) for station, s in sorted(offline.items()) if s > 0},
        }
