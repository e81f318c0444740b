"""The harness's two doors into the embedded CSMS, both through its services (never its tables):

* :class:`EmbeddedOperator` carries out the scenario's operator actions (the fleet's ``Operator``): tokens
  are provisioned as ``POST /tokens`` would, calls are sent as the API sends them (``CsmsHost.call``), a
  remote stop names the port's running transaction as the CSMS knows it.
* :class:`CsmsRecords` reads what the report sets beside the twin's truth: the CSMS's transactions, how many
  stations it accepted, its per-port uptime.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from csms import uptime as up
from csms.core.plugins.reservations import ReservationExpiry
from csms.domain import money
from csms.domain.transaction import TransactionStatus
from csms.ocpp import commands
from csms.ocpp.convert import format_time, from_posix
from csms.ocpp.outgoing import Call, CredentialChange, SignedFirmware
from csms.ocpp.rpc import Outcome, PendingCall
from csms.ocpp.versions import Version
from csms.pki import build
from csms.services import (
    authorization,
    billing,
    cdrs,
    certificates,
    contracts,
    credentials,
    diagnostics,
    fleet,
    local_lists,
    multifamily,
    payments,
    reservations,
    security_events,
    stations,
    tariffs,
    transactions,
)
from csms.services import uptime as uptime_service
from csms.services.errors import DomainError
from simulator import report
from simulator.embedded_csms import EmbeddedCsms
from simulator.fleet import OperatorCall, operator_payload, security_calls
from simulator.loadmgmt import SITE_ID, managed
from simulator.operators import FirmwareImage, FleetVehicle
from simulator.rollout import FirmwareSigner, roll_out
from simulator.scenario.models import (
    AdhocPayments,
    DemandResponse,
    Onboard,
    RemoteStart,
    RemoteStop,
    Reserve,
    Scenario,
    SecurityAction,
    SetTariff,
    UpdateFirmware,
)
from simulator.station.charger import Charger
from simulator.verify.billing import CardHold, CdrRecord
from simulator.verify.multifamily import UnitStatement
from simulator.verify.security import ChargerSecurity, CsmsStationSecurity, security_section

log = logging.getLogger(__name__)


#: The garage of a scenario with ``csms.property``, as a property in the CSMS.
PROPERTY_ID = "garage"


class EmbeddedOperator:
    """The operator of a virtual run: acts on the embedded CSMS at the fleet's virtual ``now``."""

    def __init__(self, csms: EmbeddedCsms) -> None:
        self.csms = csms
        self.scenario: Scenario | None = None
        self._remote_start_ids = 0
        #: (action, how it ended) of every call the security actions sent: the report's tally.
        self.security_calls: Counter[tuple[str, str]] = Counter()
        #: The run's firmware manufacturer (signed roll-outs).
        self.signer = FirmwareSigner()

    def provision_stations(self, scenario: Scenario, now: float) -> None:
        """Every station of the scenario, known to the CSMS before the run (as ``csms stations add``)."""
        self.scenario = scenario
        with self.csms.session_factory() as db:
            for group in scenario.chargers:
                for station_id in group.station_ids:
                    stations.provision(
                        db,
                        station_id,
                        ocpp_version=group.ocpp,
                        password=group.password,
                        now=from_posix(now),
                        security_profile=group.security_profile,
                    )
            db.commit()

    def set_card_fee(self, terms: AdhocPayments) -> None:
        """The card's processing fee, disclosed on every receipt (as ``PUT /payment-fees/card/{currency}``)."""
        with self.csms.session_factory() as db:
            fixed = money.to_minor(terms.card_fee_fixed, terms.currency)
            billing.set_fee(db, "card", terms.currency, fixed_minor=fixed, percent=terms.card_fee_percent)
            db.commit()

    def install_contract_root(self, pem: str, now: float) -> None:
        """Trust the twin's mobility operator for contract certificates (as ``csms contract-roots add``)."""
        with self.csms.session_factory() as db:
            contracts.install_root(db, pem, "MO", from_posix(now))
            db.commit()

    def provision_tokens(self, tokens: list[str], group: str | None, now: float) -> None:
        """As ``POST /tokens``: stored, and the local lists that carry them brought in step."""
        at, concerned = from_posix(now), set[str]()
        with self.csms.session_factory() as db:
            for token in tokens:
                authorization.create(db, token, at, group_id=group, upsert=True)
                concerned.update(local_lists.token_changed(db, token, {group}, at))
            db.commit()
        if concerned and self.csms.host is not None:
            self.csms.local_lists.tokens_changed(sorted(concerned))

    def onboard(self, tokens: list[str], item: Onboard, now: float) -> None:
        """As the API's invitations: the garage as a property (on the first onboarding), a unit per resident,
        an invitation per driver, redeemed with the driver's own card."""
        scenario = self.scenario
        terms = None if scenario is None else scenario.csms.property
        if scenario is None or terms is None:
            return
        at = from_posix(now)
        with self.csms.session_factory() as db:
            if multifamily.find_property(db, PROPERTY_ID) is None:
                multifamily.create_property(
                    db, PROPERTY_ID, name=scenario.site.name or scenario.name, site_id=SITE_ID,
                    currency=terms.currency, billing_mode=terms.billing_mode, utility_rate=terms.utility_rate,
                    margin_pct=terms.margin_pct, flat_fee=terms.flat_fee, allowance_kwh=terms.allowance_kwh,
                    vat_pct=terms.vat_pct, tz=scenario.timezone or "UTC", now=at,
                )  # fmt: skip
            for token in tokens:
                unit = token if item.role == "resident" else None
                if unit is not None:
                    multifamily.add_unit(db, PROPERTY_ID, unit, now=at)
                code = f"{item.role}:{token}"
                multifamily.invite(db, PROPERTY_ID, code, kind=item.role, unit=unit, now=at, pass_days=item.pass_days)
                multifamily.redeem(db, code, holder=token, now=at, id_token=token, new_token=token)
            db.commit()

    def set_tariff(self, item: SetTariff, stations: list[str], now: float) -> None:
        """As ``PUT /tariffs/{id}`` (a changed tariff becomes its next version), then ``POST /tariff-assignments``
        for each station."""
        at = from_posix(now)
        with self.csms.session_factory() as db:
            tariffs.put(db, item.tariff, item.ocpi(), at)
            for station_id in stations:
                tariffs.assign(db, item.tariff, now=at, station_id=station_id, group_id=item.group)
            db.commit()
        if self.csms.host is not None:  # time-of-day prices: the stations read their meters on the boundaries
            self.csms.aligned_metering.tariffs_changed(stations)

    def register_vehicles(self, vehicles: list[FleetVehicle], now: float) -> None:
        """As ``POST /fleet/vehicles`` and ``PUT /fleet/vehicles/{id}/plan``: each vehicle with its token, its depot
        (the scenario's site unless the action names one) and its weekly plan; one already registered is kept."""
        at = from_posix(now)
        site = SITE_ID if self.scenario is not None and managed(self.scenario) else None
        with self.csms.session_factory() as db:
            for v in vehicles:
                try:
                    fleet.create_vehicle(
                        db, v.vehicle_id, now=at, name=v.vehicle_id, battery_kwh=v.battery_kwh, id_token=v.id_token,
                        depot_id=v.depot_id or site, tz=v.tz, max_ac_kw=v.max_ac_kw, max_dc_kw=v.max_dc_kw,
                    )  # fmt: skip
                except DomainError as exc:
                    log.warning("vehicle %s not registered: %s", v.vehicle_id, exc)
                    continue
                plan = [{"weekday": d, "time": t, "target_soc_pct": soc} for d, t, soc in v.departures]
                fleet.set_weekly_plan(db, v.vehicle_id, plan)
            db.commit()

    def telematics(self, vehicle_id: str, soc_pct: float, now: float) -> None:
        """As ``POST /fleet/telematics``: stored, then the CSMS told the vehicle changed (lost while it is down)."""
        if self.csms.host is None:
            return
        at = from_posix(now)
        with self.csms.session_factory() as db:
            try:
                fleet.record_soc(db, vehicle_id=vehicle_id, soc_pct=soc_pct, at=at, now=at, source="telematics")
            except DomainError as exc:
                log.warning("telematics of %s refused: %s", vehicle_id, exc)
                return
            db.commit()
        if self.csms.fleet_needs is not None:
            self.csms.fleet_needs.vehicle_changed(vehicle_id)

    def demand_response(self, item: DemandResponse, now: float) -> None:
        """As the CSMS's VEN does with an OpenADR event: the site's limit lowered for the event's duration
        (lost while the CSMS is down, as a VEN that is not running receives nothing)."""
        if self.csms.load is not None:
            self.csms.load.curtail(SITE_ID, f"dr-{int(now)}", now, now + item.duration, item.limit_kw)

    def call(
        self,
        station_id: str,
        version: Version,
        item: OperatorCall,
        now: float,
        on_answer: Callable[[str], None] | None = None,
    ) -> None:
        """Sent only to a connected station (an operator's call to an offline one fails at once). ``on_answer``
        hears how a remote start or stop, reset or availability change ended (``Action: status``)."""
        self._remote_start_ids += isinstance(item, RemoteStart)
        if isinstance(item, SecurityAction):
            self._security(station_id, version, item)
            return
        if isinstance(item, Reserve):
            self._reserve(station_id, version, item, now)
            return
        if isinstance(item, UpdateFirmware):
            self._roll_out(station_id, version, roll_out(item, self.signer, now), now)
            return
        if isinstance(item, RemoteStop):
            call = self._remote_stop(station_id, version, item)
        else:
            call = operator_payload(item, version, self._remote_start_ids)
        if call is None or not self.csms.connected(station_id):
            if on_answer is not None:
                on_answer("not sent: " + ("no transaction there" if call is None else "not connected"))
            return
        if on_answer is None:
            self.csms.call(station_id, *call)
            return
        action, tell = call[0], on_answer

        def answered(pending: PendingCall) -> None:
            if pending.outcome is Outcome.RESULT:
                tell(f"{action}: {(pending.payload or {}).get('status', 'answered')}")
            else:
                tell(f"{action}: {pending.outcome.value if pending.outcome is not None else 'not sent'}")

        self.csms.call(station_id, *call, on_done=answered)

    def _security(self, station_id: str, version: Version, item: SecurityAction) -> None:
        pki = self.csms.pki
        assert pki is not None, "the scenario's security actions need csms.pki (checked when it loads)"
        if not self.csms.connected(station_id):
            self.security_calls[(item.kind, "not connected")] += 1
            return
        _Sequence(self, station_id, version, security_calls(item, version, pki.csms_root_pem, pki.url)).next()

    def _reserve(self, station_id: str, version: Version, item: Reserve, now: float) -> None:
        """As ``POST /stations/{id}/reservations``: the reservation stored, ReserveNow sent, the answer kept."""
        if not self.csms.connected(station_id):
            log.warning("reserve on %s skipped: not connected", station_id)
            return
        expires_at = from_posix(now + item.valid_for)
        with self.csms.session_factory() as db:
            try:
                wanted = reservations.Wanted(item.id_token, expires_at, evse_id=item.connector)
                row = reservations.create(db, station_id, wanted, from_posix(now))
            except DomainError as exc:
                log.warning("reserve on %s refused: %s", station_id, exc)
                return
            reservation_id, call = row.id, commands.reserve_now(version, reservations.call_of(row))
            db.commit()
        self.csms.call(station_id, *call, on_done=lambda pending: self._reserved(reservation_id, expires_at, pending))

    def _reserved(self, reservation_id: int, expires_at: datetime, pending: PendingCall) -> None:
        outcome = {"outcome": (pending.outcome or Outcome.CANCELLED).value, "payload": pending.payload}
        with self.csms.session_factory() as db:
            status = reservations.answered(db, reservation_id, outcome, from_posix(self.csms.scheduler.now())).status
            db.commit()
        if status == reservations.ACTIVE and self.csms.host is not None:
            for plugin in self.csms.host.plugins:
                if isinstance(plugin, ReservationExpiry):
                    plugin.expect(expires_at)

    # ---- firmware and logs, as POST /stations/{id}/firmware, /signed-firmware, /diagnostics, /log ----------
    def update_firmware(  # noqa: PLR0913 - the API request's fields
        self,
        station_id: str,
        version: Version,
        name: str,
        now: float,
        *,
        retrieve_at: float | None = None,
        retries: int | None = None,
        retry_interval: int | None = None,
        signing_certificate: str | None = None,
        signature: str | None = None,
        install_at: float | None = None,
    ) -> int:
        """UpdateFirmware (signed when a certificate and signature are given) pointing at the stored image;
        returns the transfer's id (``diagnostics.list_transfers`` follows it)."""
        with self.csms.session_factory() as db:
            row, token = diagnostics.request_firmware(db, station_id, name, from_posix(now), diagnostics.FIRMWARE_TTL)
            transfer_id, request_id = row.id, row.request_id or row.id
            db.commit()
        location = f"{self.csms.base_url}/api/v1/firmware/{name}?token={token}"
        retrieve = format_time(from_posix(now if retrieve_at is None else retrieve_at))
        if signing_certificate is not None and signature is not None:
            install = None if install_at is None else format_time(from_posix(install_at))
            firmware = SignedFirmware(
                location, request_id, retrieve, signing_certificate, signature, install, retries, retry_interval
            )
            action, payload = commands.signed_update_firmware(version, firmware)
        else:
            action, payload = commands.update_firmware(
                version, location, request_id, retrieve, retries=retries, retry_interval=retry_interval
            )
        self._send_transfer(station_id, action, payload, transfer_id)
        return transfer_id

    def request_log(
        self,
        station_id: str,
        version: Version,
        now: float,
        *,
        log_type: str = "DiagnosticsLog",
        get_log: bool = True,
        start_time: float | None = None,
        stop_time: float | None = None,
    ) -> int:
        """GetLog (``get_log``; 2.0.1 and the 1.6 security extension) or GetDiagnostics (1.6) with a one-time
        upload URL on the embedded CSMS; returns the transfer's id."""
        with self.csms.session_factory() as db:
            row, token = diagnostics.request_diagnostics(db, station_id, from_posix(now), diagnostics.DIAGNOSTICS_TTL)
            transfer_id, request_id = row.id, row.request_id or row.id
            db.commit()
        location = f"{self.csms.base_url}/api/v1/uploads/diagnostics/{token}"
        build = commands.get_log if get_log else commands.get_diagnostics
        action, payload = build(
            version, location, request_id, log_type=log_type, retries=None, retry_interval=None,
            start_time=None if start_time is None else format_time(from_posix(start_time)),
            stop_time=None if stop_time is None else format_time(from_posix(stop_time)),
        )  # fmt: skip
        self._send_transfer(station_id, action, payload, transfer_id)
        return transfer_id

    def _roll_out(self, station_id: str, version: Version, firmware: FirmwareImage, now: float) -> None:
        """The scenario's ``update_firmware``: the image stored once (as ``POST /firmware-files``), then
        UpdateFirmware (signed: with the certificate and signature) to a connected station."""
        with self.csms.session_factory() as db:
            if all(row.name != firmware.name for row in diagnostics.list_firmware(db)):
                diagnostics.store_firmware(db, firmware.name, firmware.image, from_posix(now))
                db.commit()
        if not self.csms.connected(station_id):
            log.warning("update_firmware on %s skipped: not connected", station_id)
            return
        self.update_firmware(
            station_id,
            version,
            firmware.name,
            now,
            signing_certificate=firmware.signing_certificate,
            signature=firmware.signature,
        )

    def _send_transfer(self, station_id: str, action: str, payload: dict[str, Any], transfer_id: int) -> None:
        def answered(pending: PendingCall) -> None:
            if pending.outcome is Outcome.RESULT:
                status = (pending.payload or {}).get("status", "Accepted")
            else:
                status = pending.outcome.value if pending.outcome is not None else "not_sent"
            with self.csms.session_factory() as db:
                diagnostics.set_call_status(db, transfer_id, status)
                db.commit()

        self.csms.call(station_id, action, payload, on_done=answered)

    def _remote_stop(self, station_id: str, version: Version, item: RemoteStop) -> Call | None:
        with self.csms.session_factory() as db:
            tx = transactions.active_on(db, station_id, item.connector)
            return None if tx is None else commands.remote_stop(version, tx.id, tx.charger_tx_id)

    def post_unit_statements(self, start: float, end: float) -> None:
        """As ``csms properties statements --post`` at the end of the run: every unit's statement of each local
        month the run covers posted to its ledger (a month still running as it stands), twice — the second
        posting must change nothing."""
        with self.csms.session_factory() as db:
            prop = multifamily.find_property(db, PROPERTY_ID)
            if prop is None:
                return
            at = from_posix(end)
            for _ in range(2):
                for unit in multifamily.units(db, PROPERTY_ID):
                    for year, month in _months(ZoneInfo(prop.tz), start, end):
                        multifamily.post_statement(db, PROPERTY_ID, unit.name, year, month, now=at, by="twin")
            db.commit()


class _Sequence:
    """Calls sent one after another, each once the one before was accepted, as the API's
    ``/security-profile`` sends them: a call that changes the station's password or profile is vetted first
    and adopted when the station took it (:mod:`csms.services.credentials`)."""

    def __init__(self, operator: EmbeddedOperator, station_id: str, version: Version, calls: list[Call]) -> None:
        self.operator, self.station_id, self.version, self.calls = operator, station_id, version, list(calls)

    def next(self) -> None:
        if not self.calls:
            return
        action, payload = self.calls.pop(0)
        csms, tally = self.operator.csms, self.operator.security_calls
        change = commands.credential_change(self.version, action, payload)
        if change is not None:
            with csms.session_factory() as db:
                refusal = credentials.vet(db, self.station_id, change, from_posix(csms.scheduler.now()))
                db.commit()
            if refusal:
                log.warning("%s %s not sent: %s", self.station_id, action, refusal)
                tally[(action, "refused by the CSMS")] += 1
                return
        if not csms.connected(self.station_id):
            tally[(action, "not connected")] += 1
            return
        csms.call(self.station_id, action, payload, on_done=lambda pending: self._done(pending, change))

    def _done(self, pending: PendingCall, change: CredentialChange | None) -> None:
        csms = self.operator.csms
        result = pending.payload or {}
        answered = pending.outcome is Outcome.RESULT
        action, sent = pending.call.action, pending.call.payload
        if change is not None and answered and commands.change_taken(self.version, action, sent, result):
            with csms.session_factory() as db:
                credentials.adopt(db, self.station_id, change, from_posix(csms.scheduler.now()))
                db.commit()
        ok = answered and commands.accepted(result)
        outcome = pending.outcome.value if pending.outcome is not None else "cancelled"
        self.operator.security_calls[(action, result.get("status", "Accepted") if ok else outcome)] += 1
        if ok:
            self.next()


def _months(zone: ZoneInfo, start: float, end: float) -> list[tuple[int, int]]:
    """The local (year, month)s from ``start`` to ``end`` (POSIX seconds; a run spans at most a few)."""
    return sorted({(d.year, d.month) for d in (datetime.fromtimestamp(t, zone) for t in (start, end))})


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

    def session_keys(self) -> dict[str, tuple[str, str]]:
        """The CSMS's transaction id (an OCPI session's id) → (station, the transaction id the charger knows)."""
        with self.csms.session_factory() as db:
            return {str(tx.id): (tx.station_id, tx.charger_tx_id) for tx in transactions.listed(db)}

    def cdrs(self) -> list[CdrRecord]:
        """The OCPI CDRs the CSMS made, by the transaction id the charger knows."""
        with self.csms.session_factory() as db:
            return [
                CdrRecord(
                    station_id,
                    key,
                    cdr.currency,
                    Decimal(cdr.total_energy),
                    Decimal(cdr.total_cost_excl_vat),
                    Decimal(cdr.total_cost_incl_vat),
                    tuple(cdr.review_reasons),
                )
                for cdr, station_id, key in cdrs.listed(db)
            ]

    def card_holds(self) -> list[CardHold]:
        """Every ad-hoc card payment's hold, with the transaction its session token started."""
        with self.csms.session_factory() as db:
            out = []
            for row in payments.listed_holds(db):
                hold = row.hold
                out.append(
                    CardHold(
                        hold.id_token,
                        hold.status,
                        hold.authorisation,
                        hold.currency,
                        hold.amount_minor,
                        hold.captured_minor,
                        hold.over_minor,
                        row.station_id,
                        row.charger_tx_id,
                        row.ended,
                        row.stop_reason,
                    )
                )
            return out

    def unit_statements(self, start: float, end: float) -> list[UnitStatement]:
        """Every unit's statements over the local months from ``start`` to ``end``, summed per unit, with the
        balance of the unit's billing account (created in the run: what its ledger holds in all)."""
        with self.csms.session_factory() as db:
            prop = multifamily.find_property(db, PROPERTY_ID)
            if prop is None:
                return []
            months = _months(ZoneInfo(prop.tz), start, end)
            out = []
            for unit in multifamily.units(db, PROPERTY_ID):
                parts = [multifamily.statement(db, PROPERTY_ID, unit.name, y, m) for y, m in months]
                # the account's whole ledger: a resident's session debited on its own as well would show here
                held = billing.balance(db, unit.account_id) if unit.account_id else 0
                out.append(
                    UnitStatement(unit.name, sum(p.energy_wh for p in parts), sum(p.total_minor for p in parts), held)
                )
            return out

    def stations_accepted(self) -> int:
        with self.csms.session_factory() as db:
            return stations.count_accepted(db)

    def port_uptime(self, period: up.Period) -> list[dict[str, Any]]:
        """µ per port over ``period``, as ``GET /uptime`` gives it."""
        with self.csms.session_factory() as db:
            return uptime_service.port_uptime(db, period)

    def security(self, chargers: dict[str, Charger], operator: EmbeddedOperator) -> dict[str, Any]:
        """The report's ``security`` section: the CSMS's records beside the chargers' own state."""
        with self.csms.session_factory() as db:
            stored = []
            for row in stations.list_stations(db):
                certificate = certificates.current(db, row.id)
                stored.append(
                    CsmsStationSecurity(
                        row.id,
                        row.security_profile,
                        row.pending_security_profile,
                        None if certificate is None else certificate.serial,
                        None if certificate is None else certificate.not_after.isoformat(),
                    )
                )
            events = Counter(event.type for event in security_events.list_events(db, limit=1_000_000))
            issued = len(certificates.issued(db))
        truth = [
            ChargerSecurity(
                sid,
                charger.security.profile,
                build.serial_hex(charger.security.chain[0]) if charger.security.chain else None,
                self.csms.connected(sid),
            )
            for sid, charger in chargers.items()
        ]
        return security_section(
            stored, truth, events=events, certificates_issued=issued, operator_calls=operator.security_calls
        )
