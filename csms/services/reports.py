"""The one place that routes a station's reports to the services, whatever the OCPP version.

Heartbeats and meter values (by far the most frequent reports) are served from queued writes and the cache
of running transactions; the ORM session is opened only for the reports that need it.
"""

from __future__ import annotations

from datetime import datetime

from csms.domain import events as ev
from csms.services import authorization, stations, transactions
from csms.services.config import CsmsConfig
from csms.services.uow import UnitOfWork


def handle(  # noqa: C901, PLR0911 - one case per report type: the table from report to service, read at a glance
    uow: UnitOfWork,
    station_id: str,
    report: ev.StationReport,
    now: datetime,
    config: CsmsConfig,
    *,
    csms_assigns_tx_ids: bool,
) -> ev.Decision:
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
            return transactions.start(uow, station_id, report, now)
        case ev.TransactionUpdated():
            return transactions.update(uow, station_id, report, now)
        case ev.TransactionEnded():
            return transactions.end(uow, station_id, report, now, csms_assigned=csms_assigns_tx_ids)
        case ev.AuthorizationRequested():
            return authorization.authorize(uow.session, report.id_token, now)
        case ev.BootReported():
            return stations.boot(uow.session, station_id, report, now, config)
        case ev.VendorDataReceived():
            return stations.vendor_data(uow.session, station_id, report, now, config)
        case ev.ChargingNeedsReported():
            stations.charging_needs(uow.session, station_id, report, now)
            return ev.Acknowledged()
        case ev.StationNotice():
            stations.notice(uow.session, station_id, report, now)
            return ev.Acknowledged()
    raise TypeError(f"no service handles {type(report).__name__}")
