"""The cost of a running session on the charger's display, as a host plugin.

Every ``cost_update_interval_s`` of a priced session (one whose answers carried a cost, 2.0.1; any 1.6 session)
the CSMS prices it as it stands and sends the charger a 2.0.1 **CostUpdated**, or, to a 1.6 charger that
declared ``CustomDisplayCostAndPrice`` true, the California Pricing DataTransfer **RunningCost**. To such a 1.6
charger it also sends **SetUserPrice** with the tariff's text when a driver's token is accepted (Authorize), or,
for a session that starts without an Authorize at the charger (a remote start: RemoteStartTransaction accepted,
then StartTransaction; a token the charger knew from its cache or local list), when its StartTransaction is
accepted; and **FinalCost** with the CDR's total when the session ends (2.0.1 has both in its answers:
personalMessage and totalCost). The prices come from :mod:`csms.services.cdrs`; this plugin only keeps time and sends,
and holds each running session's cost between its updates (:class:`~csms.services.cdrs.ShownCost`: an update
prices only what was stored since the last one).

An ad-hoc session paid at the charger's payment terminal (:mod:`csms.services.payments`) is stopped with
**RequestStopTransaction** once its running cost reaches the threshold its card's hold allows (the answer's
``cost_limit``): a 2.0.1 TransactionEventResponse cannot stop a session, and 2.0.1 has no cost limit to give it.

Whether a 1.6 charger shows such messages is its configuration key ``CustomDisplayCostAndPrice``: when the boot
of a 1.6 charger where a tariff applies is accepted, the plugin asks for that key (GetConfiguration) and keeps
the answer with the station's other settings (:mod:`csms.services.configuration`), so no operator has to read
it first. A charger where nothing is priced is not asked.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from csms.core.plugins.settings_call import call_and_keep
from csms.core.scheduler import Alarm
from csms.domain import events as ev
from csms.ocpp import commands
from csms.ocpp.convert import from_posix
from csms.ocpp.outgoing import Call, SessionCost, VariableRef
from csms.ocpp.versions import OCPP16, Version
from csms.services import cdrs, tariffs

if TYPE_CHECKING:
    from csms.core.host import CsmsHost, Reports

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Running:
    station_id: str
    due: float


class CostDisplay:
    #: The reports :meth:`committed` acts on (:class:`~csms.core.host.SelectiveReports`): a boot, an authorization,
    #: and the transaction events, whose answer is the :class:`~csms.domain.events.TransactionAck` it reads.
    report_kinds: frozenset[type] = frozenset(
        {ev.BootReported, ev.AuthorizationRequested, ev.TransactionStarted, ev.TransactionUpdated, ev.TransactionEnded}
    )

    def __init__(self) -> None:
        self._host: CsmsHost | None = None
        self._alarm: Alarm | None = None
        self._versions: dict[str, Version] = {}
        #: Priced sessions by transaction id, with when their cost is next sent.
        self._running: dict[int, _Running] = {}
        #: Their costs as last sent, fed at each update with what was stored since (touched by the database work
        #: alone); the database is the record: a session missing here (a restart) is priced from all of it once.
        self._shown: dict[int, cdrs.ShownCost] = {}
        #: CostUpdated / RunningCost calls sent (for tests and metrics).
        self.sent = 0
        #: Ad-hoc sessions stopped because their cost reached their card's hold (transaction ids).
        self.stopped_at_limit: set[int] = set()
        #: 1.6 tokens told their price at an Authorize, by station, until their StartTransaction.
        self._told: dict[str, set[str]] = {}

    # ---- plugin -------------------------------------------------------------------------------------------
    def attach(self, host: CsmsHost) -> None:
        self._host = host
        self._alarm = Alarm(host.scheduler, self._on_timer)
        self._shown = {}

    def stop(self) -> None:
        if self._alarm is not None:
            self._alarm.disarm()
        self._host = None

    def connected(self, station_id: str, version: Version, registered: bool, now: float) -> None:
        self._versions[station_id] = version

    def disconnected(self, station_ids: Sequence[str], now: float) -> None:
        for station_id in station_ids:  # the sessions go on offline; calls to them are skipped until they are back
            self._told.pop(station_id, None)

    def committed(self, station_id: str, reports: Reports, now: float) -> None:
        version = self._versions.get(station_id)
        if version is None or self._host is None:
            return
        for report, decision in reports:
            if isinstance(report, ev.BootReported) and isinstance(decision, ev.BootDecision):
                if version == OCPP16 and decision.status == "Accepted":
                    self._read_display_key(station_id)
            elif isinstance(decision, ev.TransactionAck) and decision.transaction_id and not decision.duplicate:
                self._transaction(station_id, version, report, decision, now)
            elif (
                isinstance(report, ev.AuthorizationRequested)
                and isinstance(decision, ev.AuthorizationInfo)
                and decision.price_text
                and version == OCPP16
            ):
                call = commands.user_price(version, report.id_token, decision.price_text)
                self._told.setdefault(station_id, set()).add(report.id_token)
                self._send_16(station_id, call)

    def _transaction(
        self, station_id: str, version: Version, report: ev.StationReport, ack: ev.TransactionAck, now: float
    ) -> None:
        if isinstance(report, ev.TransactionStarted) and version == OCPP16:
            self._price_at_start(station_id, version, report, ack)
        if isinstance(report, ev.TransactionEnded):
            self._running.pop(ack.transaction_id, None)
            self.stopped_at_limit.discard(ack.transaction_id)
            if version == OCPP16 and ack.total_cost is not None:
                self._final_16(station_id, ack.transaction_id)
        elif (
            isinstance(report, ev.TransactionStarted | ev.TransactionUpdated)
            and (version == OCPP16 or ack.total_cost is not None)
            and ack.transaction_id not in self._running
        ):
            assert self._host is not None and self._alarm is not None
            due = now + self._host.config.cost_update_interval_s
            self._running[ack.transaction_id] = _Running(station_id, due)
            self._alarm.arm(due)
        if (
            isinstance(report, ev.TransactionUpdated)
            and ack.cost_limit is not None
            and ack.total_cost is not None
            and ack.total_cost >= ack.cost_limit
            and ack.transaction_id not in self.stopped_at_limit
        ):
            self.stopped_at_limit.add(ack.transaction_id)
            log.info("station %s: transaction %s reached its card's hold, stopped", station_id, ack.transaction_id)
            self._call(station_id, commands.remote_stop(version, ack.transaction_id, report.charger_tx_id))

    def _price_at_start(
        self, station_id: str, version: Version, report: ev.TransactionStarted, ack: ev.TransactionAck
    ) -> None:
        """SetUserPrice for a 1.6 session whose driver was not told the price at an Authorize (remote start)."""
        text = ack.authorization.price_text if ack.authorization is not None else None
        told = self._told.get(station_id, set())
        if report.id_token in told:
            told.discard(report.id_token)
        elif text and report.id_token:
            self._send_16(station_id, commands.user_price(version, report.id_token, text))

    # ---- the periodic update ------------------------------------------------------------------------------
    def _on_timer(self) -> None:
        host = self._host
        if host is None:
            return
        now = host.scheduler.now()
        interval = host.config.cost_update_interval_s
        due = [(tx_id, r.station_id) for tx_id, r in self._running.items() if r.due <= now]
        for tx_id, _ in due:
            self._running[tx_id].due = now + interval
        self._rearm()
        if not due:
            return
        factory, config, at = host.session_factory, host.config, from_posix(now)
        versions = {station_id: self._versions.get(station_id) for _, station_id in due}
        running, shown = set(self._running), self._shown

        def price() -> list[tuple[str, int, SessionCost | None]]:
            out: list[tuple[str, int, SessionCost | None]] = []
            for gone in shown.keys() - running:  # ended, or no longer shown
                del shown[gone]
            with factory() as db:
                shows = {s: v != OCPP16 or cdrs.shows_cost_16(db, s) for s, v in versions.items()}
                for tx_id, station_id in due:
                    cost = cdrs.session_cost(db, tx_id, at, config, shown) if shows[station_id] else None
                    out.append((station_id, tx_id, cost))
            return out

        host.scheduler.run_db(price, self._send_costs)

    def _send_costs(self, priced: list[tuple[str, int, SessionCost | None]]) -> None:
        for station_id, tx_id, cost in priced:
            version = self._versions.get(station_id)
            if cost is None or version is None:
                self._running.pop(tx_id, None)  # ended meanwhile, no tariff, or a charger that shows no cost
                continue
            if self._call(station_id, commands.running_cost(version, cost)):
                self.sent += 1
        self._rearm()

    def _rearm(self) -> None:
        if self._alarm is not None and self._running:
            self._alarm.arm(min(r.due for r in self._running.values()))

    # ---- 1.6 California Pricing ---------------------------------------------------------------------------
    def _send_16(self, station_id: str, call: Call) -> None:
        """Send ``call`` once the charger is known to show costs."""
        host = self._host
        if host is None:
            return
        factory = host.session_factory

        def shows() -> bool:
            with factory() as db:
                return cdrs.shows_cost_16(db, station_id)

        def then(yes: bool) -> None:
            if yes:
                self._call(station_id, call)

        host.scheduler.run_db(shows, then)

    def _read_display_key(self, station_id: str) -> None:
        """Ask a booted 1.6 charger where a tariff applies whether it shows California Pricing messages; keep
        what it says."""
        host = self._host
        if host is None:
            return
        factory = host.session_factory

        def priced_here() -> bool:
            with factory() as db:
                return tariffs.applies_at(db, station_id)

        host.scheduler.run_db(priced_here, lambda yes: self._ask_display_key(station_id) if yes else None)

    def _ask_display_key(self, station_id: str) -> None:
        host = self._host
        if host is None or not host.is_connected(station_id):
            return
        # A charger that does not answer shows nothing until an operator reads its settings.
        [call] = commands.get_configuration(OCPP16, [VariableRef(cdrs.CALIFORNIA_KEY)])
        call_and_keep(host, station_id, OCPP16, call)

    def _final_16(self, station_id: str, transaction_id: int) -> None:
        host = self._host
        if host is None:
            return
        factory = host.session_factory

        def final() -> Call | None:
            with factory() as db:
                row = cdrs.stored_for(db, transaction_id)
                if row is None or not cdrs.shows_cost_16(db, station_id):
                    return None
                total = row.total_cost_incl_vat
                return commands.final_cost(OCPP16, transaction_id, Decimal(total), cdrs.receipt_text(row), row.id)

        def then(call: Call | None) -> None:
            if call is not None:
                self._call(station_id, call)

        host.scheduler.run_db(final, then)

    def _call(self, station_id: str, call: Call) -> bool:
        host = self._host
        if host is None or not host.is_connected(station_id):
            return False
        action, payload = call
        try:
            host.call(station_id, action, payload)
        except Exception as exc:  # not connected any more, or refused by the version's schema: a display only
            log.warning("station %s: %s not sent: %s", station_id, action, exc)
            return False
        return True
