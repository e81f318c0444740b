"""The ``security`` section of a run's report: how each station connects at the end, as the CSMS stores it
and as the charger itself does, the certificates the CSMS issued, its security events, and the operator's
security calls. The lowest profile counts a station only where both sides agree (a profile the CSMS holds
as pending, or a charger that went to profile 3 and cannot get back in, counts as the lower one)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class CsmsStationSecurity:
    """What the CSMS stores of one station."""

    station_id: str
    profile: int
    pending_profile: int | None
    #: Serial (hex) of the newest certificate the CSMS issued to it and it accepted (None: none).
    certificate_serial: str | None
    certificate_not_after: str | None


@dataclass(frozen=True, slots=True)
class ChargerSecurity:
    """The twin's truth for one station."""

    station_id: str
    profile: int
    certificate_serial: str | None
    connected: bool


def security_section(
    csms: Iterable[CsmsStationSecurity],
    chargers: Iterable[ChargerSecurity],
    *,
    events: Mapping[str, int],
    certificates_issued: int,
    operator_calls: Mapping[tuple[str, str], int],
) -> dict[str, Any]:
    stored = {row.station_id: row for row in csms}
    stations: list[dict[str, Any]] = []
    agreed_profiles: list[int] = []
    for truth in sorted(chargers, key=lambda c: c.station_id):
        row = stored.get(truth.station_id)
        agreed = truth.profile if row is None else min(truth.profile, row.profile)
        agreed_profiles.append(agreed)
        stations.append(
            {
                "station_id": truth.station_id,
                "profile": agreed,
                "csms_profile": None if row is None else row.profile,
                "csms_pending_profile": None if row is None else row.pending_profile,
                "charger_profile": truth.profile,
                "connected": truth.connected,
                "has_certificate": truth.certificate_serial is not None,
                # the serial itself is random (keys come from the OS): a reproducible report leaves it out
                "certificate_known_to_csms": row is not None
                and truth.certificate_serial is not None
                and row.certificate_serial == truth.certificate_serial,
                "certificate_not_after": None if row is None else row.certificate_not_after,
            }
        )
    profiles = Counter(agreed_profiles)
    calls = sorted(operator_calls.items())
    return {
        "lowest_profile": min(agreed_profiles, default=0),
        "stations_by_profile": {str(p): profiles[p] for p in sorted(profiles)},
        "stations_connected": sum(1 for s in stations if s["connected"]),
        "certificates_issued": certificates_issued,
        "events": dict(sorted(events.items())),
        "operator_calls": [{"action": action, "outcome": outcome, "count": n} for (action, outcome), n in calls],
        "stations": stations,
    }
