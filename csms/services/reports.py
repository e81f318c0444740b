"""The one place that routes a station's reports to the services, whatever the OCPP version.

Heartbeats and meter values (by far the most frequent reports) are served from queued writes and the cache
of running transactions; the ORM session is opened only for the reports that need it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from csms.domain import events as ev
from csms.domain import plausibility
from csms.ocpp.convert import from_posix
from csms.pki.lookups import Pending
from csms.services import (
    access,
    cdrs,
    certificates,
    contracts,
    ev_charging,
    payments,
    reservations,
    stations,
    transactions,
)
from csms.services.config import CsmsConfig
from csms.services.uow import UnitOfWork
from csms.store.models import Transaction


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
    if not isinstance(report, ev.BootReported):  # (a boot writes it with the station's row)
        _seen(uow, station_id, now, 0.0 if isinstance(report, ev.HeartbeatReceived) else config.heartbeat_interval_s)
    match report:
        case ev.HeartbeatReceived():
            return ev.TimeNow(now)
        case ev.StatusReported():
            stations.status(uow.connection, station_id, report, now)
            return ev.Acknowledged()
        case ev.MeterValuesReported():
            transactions.meter_values(uow, station_id, report, csms_assigned=csms_assigns_tx_ids, now=now)
            if report.charger_tx_id is not None and csms_assigns_tx_ids:
                rebuilt = cdrs.after_late_values(uow, station_id, report.charger_tx_id, config, now)
                return ev.Acknowledged(cdr_rebuilt=rebuilt)
            return ev.Acknowledged()
        case ev.TransactionStarted():
            ack = _reserved(uow, station_id, report, transactions.start(uow, station_id, report, now))
            return _priced(uow, station_id, report, ack, config, now)
        case ev.TransactionUpdated():
            ack = _reserved(uow, station_id, report, transactions.update(uow, station_id, report, now))
            return _priced(uow, station_id, report, ack, config, now)
        case ev.TransactionEnded():
            ack = transactions.end(uow, station_id, report, now, csms_assigned=csms_assigns_tx_ids)
            return cdrs.final_cost(uow, ack, config, now)
        case ev.AuthorizationRequested() if report.certificate is not None or report.contract:
            return contracts.authorize(uow.session, report, now)
        case ev.AuthorizationRequested() if report.payment_card is not None:
            return _card(uow, station_id, report, report.payment_card, now, config)
        case ev.AuthorizationRequested():
            auth = access.authorize_request(uow.session, report.id_token, station_id, now)
            if isinstance(auth, Pending):  # an OCPI roaming token the eMSP is asked about
                return auth
            return cdrs.with_price_text(uow, auth, station_id, None, report.id_token)
        case ev.CertificateStatusRequested():
            return contracts.certificate_status(report)
        case ev.EvCertificateRequested():
            return contracts.ev_certificate(report)
        case ev.BootReported():
            return stations.boot(uow, station_id, report, now, config)
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


def _seen(uow: UnitOfWork, station_id: str, now: datetime, every_s: float) -> None:
    """Any report shows the station alive, not only a Heartbeat: a charger that heartbeats as the spec defines
    (after an interval without exchanges) sends none while it reports meter values. ``stations.last_seen_at``
    is written at a Heartbeat, else when this node last wrote it ``every_s`` (the heartbeat interval) ago or
    more: it is never older than a periodic Heartbeat would have kept it, for a write per station per interval
    instead of one per batch. (The alert engine's liveness is its own, from every report.)"""
    if uow.live.mark_seen(station_id, now.timestamp(), every_s):
        stations.seen(uow, station_id, now)


def answered(uow: UnitOfWork, answers: Mapping[str, float], config: CsmsConfig) -> None:
    """Answers to the CSMS's calls (CALLRESULT, CALLERROR), by station: when the last came (POSIX seconds). Such
    an answer is an exchange too, after which a charger heartbeats only an interval later, so one the CSMS keeps
    calling may send nothing else: it moves ``last_seen_at`` as a report other than a Heartbeat does."""
    for station_id, at in answers.items():
        _seen(uow, station_id, from_posix(at), config.heartbeat_interval_s)


def _card(
    uow: UnitOfWork, station_id: str, report: ev.AuthorizationRequested, card: str, now: datetime, config: CsmsConfig
) -> ev.AuthorizationInfo:
    """A payment terminal's card: the hold's answer, with the tariff's text after the amount held."""
    adhoc = payments.AdHoc(config.card_processor, config.adhoc_preauth, config.adhoc_group_id)
    held = payments.preauthorise(uow.session, report.id_token, card, station_id, now, adhoc)
    priced = cdrs.with_price_text(uow, held, station_id, None, report.id_token)
    if held.price_text and priced.price_text and priced.price_text != held.price_text:
        return dataclasses.replace(priced, price_text=f"{held.price_text} {priced.price_text}")
    return priced


def _reserved(
    uow: UnitOfWork, station_id: str, report: ev.TransactionStarted | ev.TransactionUpdated, ack: ev.TransactionAck
) -> ev.TransactionAck:
    """A transaction that names a reservation uses it up."""
    if report.reservation_id is not None and not ack.duplicate:
        reservations.used(uow.session, station_id, report.reservation_id, ack.transaction_id, report.timestamp)
    return ack


def _priced(
    uow: UnitOfWork,
    station_id: str,
    report: ev.TransactionStarted | ev.TransactionUpdated,
    ack: ev.TransactionAck,
    config: CsmsConfig,
    now: datetime,
) -> ev.TransactionAck:
    """A running session's answer with its cost so far and, for a token given now, the tariff's text; a report
    of a session that has ended already rebuilds its CDR instead."""
    if ack.authorization is not None and report.id_token and not ack.duplicate:
        evse_id = report.evse_id or None
        text = cdrs.with_price_text(uow, ack.authorization, station_id, evse_id, report.id_token)
        ack = dataclasses.replace(ack, authorization=text)
    if report.charger_tx_id is None:  # 1.6 StartTransaction: the session has just begun, nothing to pay yet
        return ack
    if ack.duplicate or not ack.transaction_id or ack.transaction_id in uow.live.unpriced:
        return ack  # a session without a tariff: its meter values stay on the fast path
    if uow.live.cost(station_id, ack.transaction_id) is None and _ended(uow, ack):
        return dataclasses.replace(ack, cdr_rebuilt=cdrs.after_end(uow, ack, config, now))
    return cdrs.running_cost(uow, station_id, ack, report, config)


def _ended(uow: UnitOfWork, ack: ev.TransactionAck) -> bool:
    tx = uow.session.get(Transaction, ack.transaction_id) if ack.transaction_id else None
    return tx is not None and tx.stopped_at is not None


#: Reports whose only measurements are their samples (no meterStart/meterStop, no status time).
_SAMPLES_ONLY = frozenset({ev.MeterValuesReported, ev.TransactionUpdated, ev.HeartbeatReceived})


def _screened(uow: UnitOfWork, station_id: str, report: ev.StationReport, now: datetime) -> ev.StationReport:
    """The report without the values it cannot mean (:mod:`csms.domain.plausibility`); those are flagged as
    one ``implausible_values`` station event instead of being stored as what the station measured."""
    if type(report) in _SAMPLES_ONLY and plausibility.all_plausible(getattr(report, "samples", ()), now):
        return report  # the most frequent reports: nothing else in them to screen
    flagged: list[dict[str, Any]] = []
    changes: dict[str, Any] = {}
    samples: tuple[ev.Sample, ...] = getattr(report, "samples", ())
    if samples and not plausibility.all_plausible(samples, now):
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
