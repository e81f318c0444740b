"""The one place that routes a station's reports to the services, whatever the OCPP version.

Heartbeats and meter values (by far the most frequent reports) are served from queued writes and the cache
of running transactions; the ORM session is opened only for the reports that need it.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime
from typing import Any

from csms.domain import events as ev
from csms.domain import plausibility
from csms.pki.lookups import Pending
from csms.services import (
    access,
    certificates,
    contracts,
    ev_charging,
    reservations,
    stations,
    transactions,
)
from csms.services.config import CsmsConfig
from csms.services.uow import UnitOfWork


def handle(  # noqa: C901, PLR0911, PLR0912 - one case per report type: the table from report to service, read at a glance
    uow: UnitOfWork,
    station_id: str,
    report: ev.StationReport,
    now: datetime,
    config: CsmsConfig,
    *,
    csms_assigns_tx_ids: bool,
) -> ev.Decision | Pending:
    """The decision, or what it waits for (:class:`~csms.pki.lookups.Pending`: an OCSP or provider lookup)."""
    report = _screened(uow, station_id, report, now)
    match report:
        case ev.HeartbeatReceived():
            stations.seen(uow, station_id, now)
            return ev.TimeNow(now)
        case ev.StatusReported():
            stations.status(uow.session, station_id, report, now)
            return ev.Acknowledged()
        case ev.MeterValuesReported():
            transactions.meter_values(uow, station_id, report, csms_assigned=csms_assigns_tx_ids, now=now)
            return ev.Acknowledged()
        case ev.TransactionStarted():
            return _reserved(uow, station_id, report, transactions.start(uow, station_id, report, now))
        case ev.TransactionUpdated():
            return _reserved(uow, station_id, report, transactions.update(uow, station_id, report, now))
        case ev.TransactionEnded():
            return transactions.end(uow, station_id, report, now, csms_assigned=csms_assigns_tx_ids)
        case ev.AuthorizationRequested() if report.certificate is not None or report.contract:
            return contracts.authorize(uow.session, report, now)
        case ev.AuthorizationRequested():
            return access.authorize_request(uow.session, report.id_token, station_id, now)
        case ev.CertificateStatusRequested():
            return contracts.certificate_status(report)
        case ev.EvCertificateRequested():
            return contracts.ev_certificate(report)
        case ev.BootReported():
            return stations.boot(uow.session, station_id, report, now, config)
        case ev.VendorDataReceived():
            return stations.vendor_data(uow.session, station_id, report, now, config)
        case ev.ChargingNeedsReported():
            return ev_charging.needs(uow.session, station_id, report, now)
        case ev.EvScheduleReported():
            return ev_charging.schedule(uow.session, station_id, report, now)
        case ev.ReservationStatusReported():
            reservations.status_reported(uow.session, station_id, report, now)
            return ev.Acknowledged()
        case ev.StationNotice():
            stations.notice(uow.session, station_id, report, now)
            return ev.Acknowledged()
        case ev.CertificateSigningRequested():
            return certificates.sign_request(uow.session, station_id, report, now, config)
    raise TypeError(f"no service handles {type(report).__name__}")


def _reserved(
    uow: UnitOfWork, station_id: str, report: ev.TransactionStarted | ev.TransactionUpdated, ack: ev.TransactionAck
) -> ev.TransactionAck:
    """A transaction that names a reservation uses it up."""
    if report.reservation_id is not None and not ack.duplicate:
        reservations.used(uow.session, station_id, report.reservation_id, ack.transaction_id, report.timestamp)
    return ack


def _screened(uow: UnitOfWork, station_id: str, report: ev.StationReport, now: datetime) -> ev.StationReport:
    """The report without the values it cannot mean (:mod:`csms.domain.plausibility`); those are flagged as
    one ``implausible_values`` station event instead of being stored as what the station measured."""
    flagged: list[dict[str, Any]] = []
    changes: dict[str, Any] = {}
    samples: tuple[ev.Sample, ...] = getattr(report, "samples", ())
    if samples:
        kept = tuple(s for s in samples if plausibility.sample_problem(s, now) is None)
        if len(kept) != len(samples):
            changes["samples"] = kept
            flagged += [_sample_flag(s, now) for s in samples if s not in kept]
    for name in ("meter_start_wh", "meter_stop_wh"):
        wh: float | None = getattr(report, name, None)
        problem = None if wh is None else plausibility.value_problem(ev.ENERGY_REGISTER, wh)
        if wh is not None and problem:
            changes[name] = None  # as if the station had not reported it: the readings decide
            flagged.append({"field": name, "value": _json_number(wh), "reason": problem})
    if isinstance(report, ev.StatusReported) and report.timestamp is not None:
        problem = plausibility.time_problem(report.timestamp, now)
        if problem:
            changes["timestamp"] = None  # taken as received now
            flagged.append({"field": "timestamp", "timestamp": report.timestamp.isoformat(), "reason": problem})
    if not flagged:
        return report
    stations.flag_implausible(uow.session, station_id, type(report).__name__, flagged, now)
    return dataclasses.replace(report, **changes)


def _sample_flag(sample: ev.Sample, now: datetime) -> dict[str, Any]:
    return {
        "measurand": sample.measurand,
        "value": _json_number(sample.value),
        "unit": sample.unit,
        "timestamp": sample.timestamp.isoformat(),
        "reason": plausibility.sample_problem(sample, now),
    }


def _json_number(value: float) -> float | str:
    return value if math.isfinite(value) else repr(value)  # JSON (and PostgreSQL) has no inf or nan
