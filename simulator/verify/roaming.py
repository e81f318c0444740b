"""The report's ``roaming`` section: what the twin's eMSP (its own HTTP server, speaking OCPI 2.2.1 to the CSMS)
was sent, beside the twin's truth. Each roaming driver's session must have been authorised through the eMSP (a
token it pushed, its real-time answer, or its START_SESSION, as the driver's ``start`` and ``whitelist`` say),
each START_SESSION must have started the driver's session, and each ended session's CDR must have reached the
eMSP exactly once, equal to the twin's truth to the Wh and, worked out again from the truth by the independent
calculator (:func:`simulator.verify.billing.truth_cost`), to the cent."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from simulator.verify.billing import TariffPlan, TruthTimeline, truth_cost
from simulator.verify.tariff_reference import minor_units

#: What the eMSP expects in a session's ``auth_method`` by how its driver starts.
EXPECTED_AUTH = {"app": "COMMAND", "ALWAYS": "WHITELIST", "ALLOWED": "WHITELIST", "ALLOWED_OFFLINE": "AUTH_REQUEST",
                 "NEVER": "AUTH_REQUEST"}  # fmt: skip


@dataclass(frozen=True)
class TruthSession:
    """A session as the twin ran it: where, the id the CSMS knows it by, the driver's token, when, how much."""

    station_id: str
    connector_id: int
    key: str
    id_token: str | None
    started_s: float
    ended: bool
    energy_kwh: float


@dataclass(frozen=True)
class Start:
    """A START_SESSION the eMSP sent when its app driver plugged in, and the CPO's CommandResponse."""

    reference: str
    uid: str
    station_id: str
    connector_id: int
    at_s: float
    response: str


@dataclass(frozen=True)
class EmspView:
    """What the eMSP holds at the end of the run."""

    sessions: dict[str, dict[str, Any]]
    cdrs: list[dict[str, Any]]
    authorized: set[str]
    results: dict[str, dict[str, Any]]
    starts: list[Start]
    refused_while_down: int
    push_attempts: dict[str, int]
    locations: int
    tariffs: int
    #: Locations and tariffs the CPO PUT to the eMSP when they changed.
    pushed: dict[str, int]
    #: Times the CPO pulled the eMSP's tokens.
    token_pulls: int


def _driver_mode(drivers: dict[str, tuple[str, str]], uid: str) -> str:
    start, whitelist = drivers[uid]
    return "app" if start == "app" else whitelist


def section(
    truth: list[TruthSession],
    drivers: dict[str, tuple[str, str]],
    view: EmspView,
    keys: dict[str, tuple[str, str]],
    timelines: dict[tuple[str, str], TruthTimeline],
    plan: TariffPlan,
    zone: str,
) -> dict[str, Any]:
    """``drivers``: each roaming token's (start, whitelist); ``keys``: the CSMS's session id → (station, the id the
    charger knows)."""
    by_key = {(keys[s["id"]]): s for s in view.sessions.values() if s.get("id") in keys}
    cdr_count = Counter(keys.get(str(c.get("session_id")), ("?", "?")) for c in view.cdrs)
    cdr_by_key = {keys[str(c["session_id"])]: c for c in view.cdrs if str(c.get("session_id")) in keys}
    roaming = [t for t in truth if t.id_token in drivers]
    leaked = sum(1 for k, s in by_key.items() if s.get("cdr_token", {}).get("uid") not in drivers)
    rows, unauthorised, differences, worst_wh, lost = [], 0, [], Decimal(0), 0
    for t in sorted(roaming, key=lambda t: (t.started_s, t.station_id, t.connector_id)):
        assert t.id_token is not None
        mode = _driver_mode(drivers, t.id_token)
        pushed = by_key.get((t.station_id, t.key))
        auth = None if pushed is None else pushed.get("auth_method")
        ok = auth == EXPECTED_AUTH[mode] and (auth != "AUTH_REQUEST" or t.id_token in view.authorized)
        unauthorised += not ok
        cdr = cdr_by_key.get((t.station_id, t.key))
        lost += t.ended and cdr is None
        row: dict[str, Any] = {"station_id": t.station_id, "transaction_id": t.key, "token": t.id_token,
                               "driver": mode, "auth_method": auth, "authorised": ok,
                               "truth_kwh": round(t.energy_kwh, 6), "cdr_kwh": None, "energy_error_wh": None,
                               "cdr_total_incl_vat": None, "truth_total_incl_vat": None,
                               "cost_difference_minor": None,
                               "cdrs_received": cdr_count.get((t.station_id, t.key), 0)}  # fmt: skip
        if cdr is not None:
            energy = Decimal(str(cdr["total_energy"]))
            error_wh = abs(energy * 1000 - Decimal(str(t.energy_kwh)) * 1000)
            worst_wh = max(worst_wh, error_wh)
            row.update(cdr_kwh=str(energy), energy_error_wh=float(round(error_wh, 3)),
                       cdr_total_incl_vat=str(cdr["total_cost"]["incl_vat"]))  # fmt: skip
            timeline = timelines.get((t.station_id, t.key))
            cost = None if timeline is None else truth_cost(plan, t.station_id, timeline, zone)
            if cost is not None:
                currency = str(cdr["currency"])
                excl = Decimal(str(cdr["total_cost"]["excl_vat"]))
                incl = Decimal(str(cdr["total_cost"].get("incl_vat", excl)))
                difference = max(abs(minor_units(excl - cost[0], currency)), abs(minor_units(incl - cost[1], currency)))
                differences.append(difference)
                row.update(truth_total_incl_vat=str(cost[1]), cost_difference_minor=difference)
        rows.append(row)
    missing = sum(1 for s in view.starts if not _started(s, roaming, view.results))
    return {
        "emsp_locations_pulled": view.locations,
        "emsp_tariffs_pulled": view.tariffs,
        "locations_pushed": view.pushed.get("locations", 0),
        "tariffs_pushed": view.pushed.get("tariffs", 0),
        "token_pulls": view.token_pulls,
        "sessions": len(roaming),
        "unauthorised": unauthorised,
        "remote_starts": len(view.starts),
        "remote_starts_missing": missing,
        "remote_start_commands": [
            {
                "reference": s.reference,
                "token": s.uid,
                "station_id": s.station_id,
                "connector_id": s.connector_id,
                "at_s": round(s.at_s, 3),
                "response": s.response,
                "result": view.results.get(s.reference, {}).get("result"),
                "started": _started(s, roaming, view.results),
            }
            for s in view.starts
        ],
        "real_time_authorisations": len(view.authorized),
        "cdrs_received": len(view.cdrs),
        "cdrs_lost": lost,
        "cdrs_duplicated": sum(n - 1 for n in cdr_count.values() if n > 1),
        "pushes_refused_while_down": view.refused_while_down,
        "push_attempts": dict(view.push_attempts),
        "sessions_leaked": leaked,
        "cost_compared": len(differences),
        "cost_mismatches": sum(1 for d in differences if d != 0),
        "max_cost_difference_minor": max(differences, default=0),
        "energy_max_error_wh": float(round(worst_wh, 3)),
        "per_session": rows,
    }


def _started(start: Start, roaming: list[TruthSession], results: dict[str, dict[str, Any]]) -> bool:
    """The START_SESSION was accepted (at once and by the station) and the driver's session began there."""
    if start.response != "ACCEPTED" or results.get(start.reference, {}).get("result") != "ACCEPTED":
        return False
    return any(t.id_token == start.uid and t.station_id == start.station_id and t.connector_id == start.connector_id
               and t.started_s >= start.at_s for t in roaming)  # fmt: skip


def check_values(section: dict[str, Any] | None) -> dict[str, float]:
    if section is None:
        return {}
    values = {
        "roaming_sessions": section["sessions"],
        "roaming_unauthorised": section["unauthorised"],
        "roaming_remote_starts_missing": section["remote_starts_missing"],
        "roaming_cdrs_lost": section["cdrs_lost"],
        "roaming_cdrs_duplicated": section["cdrs_duplicated"],
        "roaming_cdr_max_error_wh": section["energy_max_error_wh"],
        "roaming_sessions_leaked": section["sessions_leaked"],
        "roaming_tariffs_pushed": section["tariffs_pushed"],
    }
    if section["cost_compared"]:
        values["roaming_cdr_cost_mismatches"] = section["cost_mismatches"]
        values["roaming_cdr_max_difference_minor"] = section["max_cost_difference_minor"]
    return values
