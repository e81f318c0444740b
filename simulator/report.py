"""The run report: the twin's ground truth beside the CSMS's own records, as ``report.json``.

The schema is documented in ``docs/report.md``; keys are only ever added. Same scenario + seed gives a
byte-identical file when ``reproducible`` is set (wall-clock time is then written as 0).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.scenario.expect import parse_comparison
from simulator.twin.records import VehicleRecord
from simulator.twin.site_meter import MeterStep
from simulator.verify import roaming as roaming_checks

SCHEMA_VERSION = 1
#: Energy registers are whole Wh on the wire in OCPP 1.6 (and we send Wh in 2.0.1): the meter resolution.
METER_RESOLUTION_KWH = 0.001


@dataclass(frozen=True)
class TruthTransaction:
    """A transaction as the charger really ran it, with the true energy its meter integrated."""

    station_id: str
    connector_id: int
    key: str  # the id the CSMS knows it by: 1.6 transactionId as text, 2.0.1 transactionId
    started_s: float
    stopped_s: float | None
    energy_kwh: float


@dataclass(frozen=True)
class CsmsTransaction:
    station_id: str
    key: str
    energy_kwh: float | None  # None: the CSMS stored no energy for it
    completed: bool


#: Checks whose value is a CSMS-side figure of ``transactions`` (None when it was not measured).
CSMS_TRANSACTION_CHECKS = ("transactions_lost", "transactions_duplicated", "energy_mismatch_kwh")
#: The report section each CSMS-side check reads, for its ``not_measured`` reason.
CHECK_SECTIONS = {
    **dict.fromkeys(CSMS_TRANSACTION_CHECKS, "transactions"),
    "uptime_max_error_pp": "uptime",
    "alerts_missed": "alerts",
    "alerts_false": "alerts",
    "alerts_late": "alerts",
}


@dataclass
class RunRecord:
    scenario_name: str
    scenario_file: str
    seed: int
    start_iso: str
    mode: str
    simulated_seconds: float
    wall_seconds: float
    grid_limit_kw: float | None
    meter_log: tuple[MeterStep, ...]
    vehicles: list[VehicleRecord]
    truth_transactions: list[TruthTransaction]
    csms_transactions: list[CsmsTransaction]
    stations: int
    stations_booted: int
    expect: dict[str, Any]
    frames: dict[str, int] = field(default_factory=dict)
    reproducible: bool = False
    uptime: dict[str, Any] | None = None  # simulator.verify.faults.uptime_section
    alerts: dict[str, Any] | None = None  # simulator.verify.faults.alerts_section
    #: ``simulator.verify.optimum.run_metrics`` over the twin's sessions (None: not computed).
    energy: dict[str, float] | None = None
    load_management: dict[str, Any] | None = None
    #: ``simulator.verify.roaming.section`` (None: no roaming in the run)
    roaming: dict[str, Any] | None = None
    #: ``simulator.verify.security.security_section`` (None: the run had no PKI)
    security: dict[str, Any] | None = None
    #: ``simulator.verify.multifamily.section``: unit statements beside the twin's truth (None: no property)
    multifamily: dict[str, Any] | None = None
    #: :func:`dr_section`: the site's import during each demand-response event (None: there was none)
    demand_response: dict[str, Any] | None = None
    #: :func:`simulator.verify.cost.section`: the site's import priced by its utility tariff (None: no tariff)
    energy_cost: dict[str, Any] | None = None
    #: ``simulator.embedded_migration.PlatformMigration.section`` (None: the run moved no fleet)
    migration: dict[str, Any] | None = None
    #: ``simulator.verify.billing.section``: each session's CDR beside the twin's truth and its display (None: no CDR)
    billing: dict[str, Any] | None = None
    phase_limits_a: tuple[float, float, float] | None = None
    #: where the CSMS side of ``transactions`` comes from: "embedded" (its database, virtual time) or, in real
    #: time, the operator that read it back ("api": chargetwin's API, "hooks": a hooks file); None: not measured
    csms_source: str | None = "embedded"
    #: per section ("transactions", "uptime", "alerts"), why its CSMS-side figures were not measured
    not_measured: dict[str, str] = field(default_factory=dict)
    #: real time: what the CSMS acknowledged to the chargers (their own view, not the CSMS's records)
    acknowledged_transactions: list[CsmsTransaction] | None = None
    #: why a section is absent or how to read it (real time: e.g. no operator API, or mixed clocks)
    notes: list[str] = field(default_factory=list)


def _r(value: float, digits: int = 3) -> float:
    return round(value + 0.0, digits)


def site_section(log: tuple[MeterStep, ...], limit_kw: float | None) -> dict[str, Any]:
    above = [s for s in log if s.above_limit_kw > 0]
    episodes = sum(1 for i, s in enumerate(log) if s.above_limit_kw > 0 and (i == 0 or log[i - 1].above_limit_kw <= 0))
    return {
        "limit_kw": limit_kw,
        "peak_import_kw": _r(max((s.import_kw for s in log), default=0.0)),
        "violation_count": episodes,
        "violation_minutes": _r(sum(s.duration_s for s in above) / 60.0, 1),
        "violation_kwh": _r(sum(s.above_limit_kw * s.duration_s for s in above) / 3600.0),
        "import_kwh": _r(sum(s.import_kw * s.duration_s for s in log) / 3600.0),
        "ev_kwh": _r(sum(s.ev_kw * s.duration_s for s in log) / 3600.0),
    }


def dr_section(log: tuple[MeterStep, ...], events: list[tuple[float, float, float]]) -> dict[str, Any]:
    """The site's import against each demand-response event's limit, from the twin's meter (step averages)."""
    rows, total_s = [], 0.0
    for start, end, limit in events:
        inside = [s for s in log if s.t_s < end and s.t_s + s.duration_s > start]
        above = [s for s in inside if s.import_kw > limit + 1e-9]
        minutes = sum(min(s.t_s + s.duration_s, end) - max(s.t_s, start) for s in above) / 60.0
        total_s += minutes * 60.0
        rows.append(
            {
                "start_s": _r(start, 1),
                "end_s": _r(end, 1),
                "limit_kw": _r(limit),
                "peak_import_kw": _r(max((s.import_kw for s in inside), default=0.0)),
                "minutes_above": _r(minutes, 1),
            }
        )
    return {"events": rows, "violation_minutes": _r(total_s / 60.0, 1)}


def phase_section(log: tuple[MeterStep, ...], limits_a: tuple[float, float, float] | None) -> dict[str, Any]:
    """Per-phase import (A, step averages) against the per-phase limit of the grid connection."""
    phased = [s for s in log if s.phase_import_a is not None]
    above = [s for s in phased if s.above_phase_limit_a > 0]
    currents = [s.phase_import_a for s in log if s.phase_import_a is not None]
    peak = [max((a[p] for a in currents), default=0.0) for p in range(3)]
    return {
        "limits_a": None if limits_a is None else list(limits_a),
        "peak_a": [_r(x, 2) for x in peak],
        "violation_count": sum(
            1
            for i, s in enumerate(phased)
            if s.above_phase_limit_a > 0 and (i == 0 or phased[i - 1].above_phase_limit_a <= 0)
        ),
        "violation_minutes": _r(sum(s.duration_s for s in above) / 60.0, 1),
        "max_over_a": _r(max((s.above_phase_limit_a for s in above), default=0.0), 2),
    }


def energy_section(metrics: dict[str, float] | None) -> dict[str, Any] | None:
    """Delivered energy (towards each vehicle's target) against the offline optimum and the request."""
    if metrics is None:
        return None
    return {
        "delivered_kwh": _r(metrics["delivered_kwh"]),
        "requested_kwh": _r(metrics["needed_kwh"]),
        "optimum_kwh": _r(metrics["optimum_kwh"]),
        "optimum_fraction": _r(metrics["fraction_of_optimum"], 4),
        "lowest_served_fraction": _r(metrics["lowest_served_fraction"], 4),
        "optimum_lowest_served_fraction": _r(metrics["optimum_lowest_served_fraction"], 4),
    }


def _matched(
    truth: list[TruthTransaction], csms: list[CsmsTransaction]
) -> tuple[list[dict[str, Any]], int, int, float]:
    """Per truth transaction its CSMS row; how many have none, how many CSMS rows are extra, the worst error."""
    by_key: dict[tuple[str, str], list[CsmsTransaction]] = {}
    for tx in csms:
        by_key.setdefault((tx.station_id, tx.key), []).append(tx)
    rows = []
    lost = 0
    worst = 0.0
    for t in sorted(truth, key=lambda t: (t.started_s, t.station_id, t.connector_id)):
        found = by_key.get((t.station_id, t.key))
        csms_kwh = found[0].energy_kwh if found else None
        if not found:
            lost += 1
        error = abs(csms_kwh - t.energy_kwh) if csms_kwh is not None and t.stopped_s is not None else None
        if error is not None:
            worst = max(worst, error)
        rows.append(
            {
                "station_id": t.station_id,
                "connector_id": t.connector_id,
                "transaction_id": t.key,
                "truth_kwh": _r(t.energy_kwh),
                "csms_kwh": None if csms_kwh is None else _r(csms_kwh),
                "error_kwh": None if error is None else _r(error),
                "completed": t.stopped_s is not None,
            }
        )
    truth_keys = {(t.station_id, t.key) for t in truth}
    duplicated = sum(len(v) - 1 for v in by_key.values()) + sum(1 for k in by_key if k not in truth_keys)
    return rows, lost, duplicated, worst


def transactions_section(
    truth: list[TruthTransaction],
    csms: list[CsmsTransaction],
    csms_source: str | None = "embedded",
    *,
    not_measured: str | None = None,
    acknowledged: list[CsmsTransaction] | None = None,
) -> dict[str, Any]:
    """Truth beside the CSMS's records; with ``not_measured`` (no one could read them) every CSMS-side figure
    is null and the reason is given, never a zero error."""
    rows, lost, duplicated, worst = _matched(truth, csms)
    section: dict[str, Any] = {
        "started": len(truth),
        "completed": sum(1 for t in truth if t.stopped_s is not None),
        "lost": lost,
        "duplicated": duplicated,
        "csms_recorded": len(csms),
        "csms_source": csms_source,
        "energy_max_error_kwh": _r(worst),
        "meter_resolution_kwh": METER_RESOLUTION_KWH,
        "per_transaction": rows,
    }
    if not_measured is not None:
        section.update(lost=None, duplicated=None, csms_recorded=None, csms_source=None, energy_max_error_kwh=None)
        section["not_measured"] = not_measured
        for row in rows:
            row.update(csms_kwh=None, error_kwh=None)
    if acknowledged is not None:
        _, ack_lost, ack_duplicated, ack_worst = _matched(truth, acknowledged)
        section["acknowledged"] = {
            "recorded": len(acknowledged),
            "lost": ack_lost,
            "duplicated": ack_duplicated,
            "energy_max_error_kwh": _r(ack_worst),
        }
    return section


def vehicles_section(vehicles: list[VehicleRecord]) -> dict[str, Any]:
    departed = [v for v in vehicles if v.departure_s is not None]
    judged = departed or vehicles
    at_target = sum(1 for v in judged if v.reached_target)
    return {
        "count": len(vehicles),
        "departed": len(departed),
        "unserved": sum(1 for v in vehicles if v.plug_in_s is None),
        "at_target": at_target,
        "at_target_fraction": _r(at_target / len(judged), 4) if judged else 1.0,
        "energy_received_kwh": _r(sum(v.energy_received_kwh for v in vehicles)),
    }


def check_values(report: dict[str, Any]) -> dict[str, float | None]:
    """The value of every known ``expect:`` check in a finished report."""
    site, tx, veh = report["site"], report["transactions"], report["vehicles"]
    values = {
        "site_limit_violations": site["violation_minutes"],
        "site_violation_kwh": site["violation_kwh"],
        "peak_import_kw": site["peak_import_kw"],
        "vehicles_at_target": veh["at_target_fraction"],
        "vehicles_unserved": veh["unserved"],
        "energy_delivered_kwh": veh["energy_received_kwh"],
        "transactions_lost": tx["lost"],
        "transactions_duplicated": tx["duplicated"],
        "transactions_started": tx["started"],
        "energy_mismatch_kwh": tx["energy_max_error_kwh"],
        "stations_booted": report["stations"]["booted"],
    }
    if "uptime" in report:
        values["uptime_max_error_pp"] = report["uptime"]["max_error_pp"]
    if "alerts" in report:
        alerts = report["alerts"]
        values.update(alerts_missed=alerts["missed"], alerts_false=alerts["false"], alerts_late=alerts["late"])
    if site.get("phases") is not None:
        values["site_phase_violations"] = site["phases"]["violation_minutes"]
    if "migration" in report:
        migration = report["migration"]
        values["stations_not_migrated"] = len(migration["stations_not_migrated"])
        values["migration_downtime_beyond_window"] = len(migration["downtime_beyond_window"])
        values["migration_data_mismatches"] = len(migration["data_mismatches"])
        values["migration_actions_to_old_csms"] = migration["actions_to_old_csms"]
    if "security" in report:
        values["lowest_security_profile"] = report["security"]["lowest_profile"]
    if "energy_cost" in report:
        values["energy_cost"] = report["energy_cost"]["total_cost"]
        values["cost_savings_fraction"] = report["energy_cost"]["savings_fraction"]
    if "demand_response" in report:
        values["dr_violation_minutes"] = report["demand_response"]["violation_minutes"]
    if "multifamily" in report:
        mf = report["multifamily"]
        values.update(statement_mismatch_cents=mf["max_error_cents"], statement_mismatch_wh=mf["max_error_wh"],
                      statement_ledger_mismatch_cents=mf["max_ledger_error_cents"])  # fmt: skip
    values.update(_billing_values(report.get("billing")))
    values.update(roaming_checks.check_values(report.get("roaming")))
    energy = report.get("energy")
    if energy is not None:
        values["energy_optimum_fraction"] = energy["optimum_fraction"]
        values["lowest_served_fraction"] = energy["lowest_served_fraction"]
    return values


def _billing_values(billing: dict[str, Any] | None) -> dict[str, float]:
    """The billing checks, once some session's cost was worked out from the truth (else not measured: failed)."""
    if not billing or not billing.get("cost_compared"):
        return {}
    values = {
        "billing_cost_mismatches": billing["cost_mismatches"],
        "billing_max_cost_difference_minor": billing["max_cost_difference_minor"],
    }
    adhoc = billing.get("adhoc_payments")
    if adhoc is not None:
        values.update(
            adhoc_sessions=adhoc["sessions"],
            adhoc_declined=adhoc["declined"],
            adhoc_capture_mismatches=adhoc["capture_mismatches"],
            adhoc_over_hold=adhoc["over_hold"],
            adhoc_stopped_at_hold=adhoc["stopped_by_csms"],
        )
    return values


def evaluate_checks(report: dict[str, Any], expect: dict[str, Any]) -> list[dict[str, Any]]:
    """Each check passed or failed; one on a CSMS-side figure nobody could read is neither (``passed`` null,
    with the ``not_measured`` reason)."""
    values = check_values(report)
    unmeasured = report.get("not_measured", {})
    checks = []
    for name, spec in expect.items():
        comparison = parse_comparison(spec)
        actual = values.get(name)
        reason = unmeasured.get(CHECK_SECTIONS.get(name, ""))
        check: dict[str, Any] = {"name": name, "passed": None, "actual": actual, "expected": str(comparison)}
        if actual is None and reason is not None:
            check["not_measured"] = reason
        else:
            check["passed"] = actual is not None and comparison.evaluate(actual)
        checks.append(check)
    return checks


def build(record: RunRecord) -> dict[str, Any]:
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "scenario": {
            "name": record.scenario_name,
            "file": record.scenario_file,
            "seed": record.seed,
            "start": record.start_iso,
        },
        "mode": record.mode,
        "reproducible": record.reproducible,
        "simulated_seconds": _r(record.simulated_seconds, 1),
        "wall_seconds": 0.0 if record.reproducible else _r(record.wall_seconds),
        "stations": {"count": record.stations, "booted": record.stations_booted},
        "site": site_section(record.meter_log, record.grid_limit_kw),
        "energy": energy_section(record.energy),
        "vehicles": vehicles_section(record.vehicles),
        "transactions": transactions_section(
            record.truth_transactions,
            record.csms_transactions,
            record.csms_source,
            not_measured=record.not_measured.get("transactions"),
            acknowledged=record.acknowledged_transactions,
        ),
        "frames": dict(sorted(record.frames.items())),
    }
    if record.uptime is not None:
        report["uptime"] = record.uptime
    if record.alerts is not None:
        report["alerts"] = record.alerts
    if record.phase_limits_a is not None:
        report["site"]["phases"] = phase_section(record.meter_log, record.phase_limits_a)
    if record.load_management is not None:
        report["load_management"] = record.load_management
    if record.security is not None:
        report["security"] = record.security
    optional = {
        "multifamily": record.multifamily,
        "demand_response": record.demand_response,
        "energy_cost": record.energy_cost,
        "migration": record.migration,
        "billing": record.billing,
        "roaming": record.roaming,
    }
    report.update({name: section for name, section in optional.items() if section is not None})
    if record.notes:
        report["notes"] = list(record.notes)
    if record.not_measured:
        report["not_measured"] = dict(sorted(record.not_measured.items()))
    report["checks"] = evaluate_checks(report, record.expect)
    report["passed"] = all(c["passed"] is True for c in report["checks"])
    return report


def write(report: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.json"
    path.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    return path
