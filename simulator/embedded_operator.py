"""The harness's two doors into the embedded CSMS, both through its services (never its tables):

* :class:`EmbeddedOperator` carries out the scenario's operator actions (the fleet's ``Operator``): tokens
  are provisioned as ``POST /tokens`` would, calls are sent as the API sends them (``CsmsHost.call``), a
  remote stop names the port's running transaction as the CSMS knows it.
* :class:`CsmsRecords` reads what the report sets beside the twin's truth: the CSMS's transactions, how many
  stations it accepted, its per-port uptime.
"""

from __future__ import annotations

from typing import Any

from csms import uptime as up
from csms.domain.transaction import TransactionStatus
from csms.ocpp import commands
from csms.ocpp.convert import from_posix
from csms.ocpp.outgoing import Call
from csms.ocpp.versions import Version
from csms.services import authorization, contracts, stations, transactions
from csms.services import uptime as uptime_service
from simulator import report
from simulator.embedded_csms import EmbeddedCsms
from simulator.fleet import OperatorCall, operator_payload
from simulator.scenario.models import RemoteStart, RemoteStop, Scenario


class EmbeddedOperator:
    """The operator of a virtual run: acts on the embedded CSMS at the fleet's virtual ``now``."""

    def __init__(self, csms: EmbeddedCsms) -> None:
        self.csms = csms
        self._remote_start_ids = 0

    def provision_stations(self, scenario: Scenario, now: float) -> None:
        """Every station of the scenario, known to the CSMS before the run (as ``csms stations add``)."""
        with self.csms.session_factory() as db:
            for group in scenario.chargers:
                for station_id in group.station_ids:
                    stations.provision(db, station_id, ocpp_version=group.ocpp, password=None, now=from_posix(now))
            db.commit()

    def install_contract_root(self, pem: str, now: float) -> None:
        """Trust the twin's mobility operator for contract certificates (as ``csms contract-roots add``)."""
        with self.csms.session_factory() as db:
            contracts.install_root(db, pem, "MO", from_posix(now))
            db.commit()

    def provision_tokens(self, tokens: list[str], group: str | None, now: float) -> None:
        with self.csms.session_factory() as db:
            for token in tokens:
                authorization.create(db, token, from_posix(now), group_id=group, upsert=True)
            db.commit()

    def call(self, station_id: str, version: Version, item: OperatorCall, now: float) -> None:
        """Sent only to a connected station (an operator's call to an offline one fails at once)."""
        self._remote_start_ids += isinstance(item, RemoteStart)
        if isinstance(item, RemoteStop):
            call = self._remote_stop(station_id, version, item)
        else:
            call = operator_payload(item, version, self._remote_start_ids)
        if call is not None and self.csms.connected(station_id):
            self.csms.call(station_id, *call)

    def _remote_stop(self, station_id: str, version: Version, item: RemoteStop) -> Call | None:
        with self.csms.session_factory() as db:
            tx = transactions.active_on(db, station_id, item.connector)
            return None if tx is None else commands.remote_stop(version, tx.id, tx.charger_tx_id)


class CsmsRecords:
    """What the embedded CSMS recorded, read-only."""

    def __init__(self, csms: EmbeddedCsms) -> None:
        self.csms = csms

    def transactions(self) -> list[report.CsmsTransaction]:
        with self.csms.session_factory() as db:
            return [
                report.CsmsTransaction(
                    tx.station_id, tx.charger_tx_id, tx.energy_wh / 1000.0, tx.status == TransactionStatus.COMPLETED
                )
                for tx in transactions.listed(db)
            ]

    def stations_accepted(self) -> int:
        with self.csms.session_factory() as db:
            return stations.count_accepted(db)

    def port_uptime(self, period: up.Period) -> list[dict[str, Any]]:
        """µ per port over ``period``, as ``GET /uptime`` gives it."""
        with self.csms.session_factory() as db:
            return uptime_service.port_uptime(db, period)
