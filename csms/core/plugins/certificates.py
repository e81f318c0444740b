"""Station certificates as a host plugin: the CertificateSigned call after a SignCertificate was answered
Accepted, and the renewal of certificates nearing their end.

Delivery (2.0.1 A02/A03, 1.6 security whitepaper): once the Accepted answer is committed, the certificate
and its CA chain go to the station in CertificateSigned. A call that times out or fails is sent again up to
``config.certificate_signed_retries`` times; the outcome (Accepted, Rejected by the station, failed) is
stored on the issued certificate. A station that rejected it or never got it sends a new CSR on its own
(its CertSigningRepeatTimes), which is answered like the first.

Renewal: at connection (the stations that connected while the previous check ran are checked together, so a
reconnect storm of 10,000 is a few database jobs, not 10,000 of them queued between the group commits) and then
every ``check_every_s``, a connected station whose current certificate ends
within ``config.renew_before_days`` gets a ``certificate_expiring`` alert and is asked for a new CSR
(2.0.1 TriggerMessage SignChargingStationCertificate, 1.6 ExtendedTriggerMessage SignChargePointCertificate).
The alert is resolved when a renewed certificate is accepted.

Revocation: the API closes the connections of a certificate it revokes at once; every ``sweep_every_s``
this plugin closes those whose certificate was revoked elsewhere (``csms certificates revoke``, another
node of a cluster). A revoked certificate is refused at the handshake by the admission rule.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from csms.alerts.engine import CERTIFICATE_EXPIRING, SEVERITY
from csms.core.scheduler import Alarm
from csms.domain import events as ev
from csms.ocpp import commands
from csms.ocpp.convert import from_posix
from csms.ocpp.rpc import Outcome, PendingCall
from csms.ocpp.versions import Version
from csms.services import alerts, certificates

if TYPE_CHECKING:
    from csms.core.host import CsmsHost, Reports

log = logging.getLogger(__name__)


class CertificateManager:
    #: :meth:`committed` acts on an Accepted :class:`~csms.domain.events.CertificateSigningDecision`, the answer to
    #: a signing request (:class:`~csms.core.host.SelectiveReports`).
    report_kinds: frozenset[type] = frozenset({ev.CertificateSigningRequested})

    def __init__(self, check_every_s: float = 3600.0, sweep_every_s: float = 60.0) -> None:
        self.check_every_s = check_every_s
        self.sweep_every_s = sweep_every_s
        self._host: CsmsHost | None = None
        self._alarm: Alarm | None = None
        self._sweep: Alarm | None = None
        #: Stations that connected while a check of connected stations was running: the next check's.
        self._due: list[str] = []
        self._checking = False

    # ---- plugin ------------------------------------------------------------------------------------------
    def attach(self, host: CsmsHost) -> None:
        self._host = host
        self._alarm = Alarm(host.scheduler, self._on_timer)
        self._alarm.arm(host.scheduler.now() + self.check_every_s)
        self._sweep = Alarm(host.scheduler, self._on_sweep)
        self._sweep.arm(host.scheduler.now() + self.sweep_every_s)

    @property
    def host(self) -> CsmsHost:
        assert self._host is not None, "attach the plugin to a host first"
        return self._host

    def stop(self) -> None:
        for alarm in (self._alarm, self._sweep):
            if alarm is not None:
                alarm.disarm()
        self._host = None

    def connected(self, station_id: str, version: Version, registered: bool, now: float) -> None:
        if registered:
            self._due.append(station_id)
            if not self._checking:
                self._check_due(now)

    def disconnected(self, station_ids: Sequence[str], now: float) -> None:
        pass

    def committed(self, station_id: str, reports: Reports, now: float) -> None:
        for _, decision in reports:
            if isinstance(decision, ev.CertificateSigningDecision) and decision.status == "Accepted":
                self._deliver(station_id, decision, attempt=0)

    # ---- CertificateSigned -------------------------------------------------------------------------------
    def _deliver(self, station_id: str, decision: ev.CertificateSigningDecision, attempt: int) -> None:
        assert decision.chain is not None and decision.serial is not None
        serial = decision.serial
        connection = self.host.connections.get(station_id)
        if connection is None:
            self._store_delivery(station_id, serial, "failed")
            return
        action, payload = commands.certificate_signed(connection.version, decision.chain, decision.certificate_type)

        def answered(pending: PendingCall) -> None:
            if self._host is None:
                return
            if pending.outcome is Outcome.RESULT:
                self._store_delivery(station_id, serial, str((pending.payload or {}).get("status", "failed")))
            elif attempt < self.host.config.certificate_signed_retries and pending.outcome is not Outcome.CANCELLED:
                self._deliver(station_id, decision, attempt + 1)
            else:
                self._store_delivery(station_id, serial, "failed")

        try:
            self.host.call(station_id, action, payload, on_done=answered)
        except Exception:  # gone meanwhile, or invalid for its version: the station will ask again
            log.exception("station %s: CertificateSigned could not be sent", station_id)
            self._store_delivery(station_id, serial, "failed")

    def _store_delivery(self, station_id: str, serial: str, outcome: str) -> None:
        at = from_posix(self.host.scheduler.now())

        def store(db: Any) -> None:
            certificates.delivered(db, serial, outcome)
            if outcome == "Accepted":
                alerts.auto_resolve(db, CERTIFICATE_EXPIRING, station_id, None, at)

        self._in_db(store, lambda _: None)

    # ---- revocation --------------------------------------------------------------------------------------
    def _on_sweep(self) -> None:
        if self._host is None:
            return
        serials = {c.client_serial for c in self.host.connections.values() if c.client_serial is not None}
        if serials:
            self._in_db(lambda db: certificates.revoked_among(db, serials), self._drop)
        if self._sweep is not None:
            self._sweep.arm(self.host.scheduler.now() + self.sweep_every_s)

    def _drop(self, revoked: set[str]) -> None:
        if self._host is not None and revoked:
            self.host.drop_certificate(revoked)

    # ---- renewal -----------------------------------------------------------------------------------------
    def _on_timer(self) -> None:
        if self._host is None:
            return
        now = self.host.scheduler.now()
        self._check(list(self.host.connections), now)
        if self._alarm is not None:
            self._alarm.arm(now + self.check_every_s)

    def _check_due(self, now: float) -> None:
        station_ids, self._due = self._due, []
        self._checking = True

        def then(due: list[tuple[str, str]]) -> None:
            self._checking = False
            self._renew(due)
            if self._due and self._host is not None:
                self._check_due(self.host.scheduler.now())

        self._check(station_ids, now, then, failed=[])

    def _check(
        self,
        station_ids: list[str],
        now: float,
        then: Callable[[list[tuple[str, str]]], None] | None = None,
        failed: list[tuple[str, str]] | None = None,
    ) -> None:
        """``then(due)`` after the check (default: renew them); ``failed``: what it gets when the check fails
        (default: nothing is called)."""
        if not station_ids:
            return
        at = from_posix(now)
        days = self.host.config.renew_before_days

        def find(db: Any) -> list[tuple[str, str]]:
            due = certificates.nearing_end(db, station_ids, at, days)
            for row in due:
                details = {"serial": row.serial, "not_after": row.not_after.isoformat()}
                alerts.raise_alert(
                    db, CERTIFICATE_EXPIRING, row.station_id, None, SEVERITY[CERTIFICATE_EXPIRING], at, details
                )
            return [(row.station_id, row.certificate_type) for row in due]

        self._in_db(find, then or self._renew, failed)

    def _renew(self, due: list[tuple[str, str]]) -> None:
        if self._host is None:
            return
        for station_id, kind in due:
            connection = self.host.connections.get(station_id)
            if connection is None:
                continue
            action, payload = commands.trigger_certificate_renewal(connection.version, kind)
            try:
                self.host.call(station_id, action, payload)
            except Exception:
                log.exception("station %s: %s could not be sent", station_id, action)

    def _in_db(self, work: Callable[[Any], Any], then: Callable[[Any], None], failed: Any = None) -> None:
        """``work`` in one transaction on the database thread, then ``then`` with its result; if it fails, the
        failure is logged and ``then(failed)`` called (unless ``failed`` is None)."""
        factory = self.host.session_factory

        def run() -> Any:
            try:
                with factory() as db, db.begin():
                    return work(db)
            except Exception:
                if failed is None:
                    raise
                log.exception("certificate check failed")
                return failed

        self.host.scheduler.run_db(run, then)
