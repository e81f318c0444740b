"""Which tables a bundle carries, and which it leaves out on purpose (with the reason).

The list is checked against the SQLAlchemy metadata at every export: a table that is in neither dict stops the
export (and fails tests/migration/test_bundle_tables.py), so a new table can never be left out silently.
"""

from __future__ import annotations

from sqlalchemy import MetaData, Table

#: Tables exported, with what they hold (the documentation of the bundle's files, docs/design/migration.md).
EXPORTED: dict[str, str] = {
    "stations": "stations: registration policy, security profile, password hashes (never clear text), identity",
    "connectors": "EVSEs and connectors with their last status",
    "status_history": "every status report: the uptime history",
    "connection_events": "WebSocket connects and disconnects: the uptime history",
    "uptime_exclusions": "declared exclusion windows for uptime",
    "station_variables": "device model / configuration keys as last read",
    "station_events": "security, firmware, log and device events the stations reported",
    "security_events": "security events, reported and detected",
    "id_tokens": "id tokens and their groups",
    "local_lists": "per-station local authorization list state",
    "local_list_entries": "the tokens on each station's local list",
    "reservations": "reservations and what became of them",
    "transactions": "the whole session history",
    "transaction_events": "2.0.1 TransactionEvent sequence numbers (duplicates stay recognised)",
    "meter_samples": "every meter reading",
    "sites": "load-management sites",
    "site_nodes": "each site's electrical tree",
    "site_evses": "EVSEs assigned to site nodes, with wiring and limits",
    "site_meter_readings": "grid-connection meter readings",
    "site_curtailments": "demand-response limits the OpenADR VEN accepted (event steps with start, end and kW)",
    "building_forecasts": "each site's building load learnt by time of day (load management plans with it)",
    "ev_charging_negotiations": "ISO 15118 charging needs and schedules per EVSE",
    "display_messages": "display messages set or reported",
    "variable_monitors": "2.0.1 variable monitors",
    "issued_certificates": "certificates the CSMS's CA issued (public PEM only)",
    "installed_certificates": "certificates stations reported installed",
    "contract_roots": "trusted contract-certificate roots",
    "api_keys": "API keys (SHA-256 hashes only)",
    "alert_rules": "alert rule settings",
    "alerts": "alert history",
    "webhooks": "webhook subscriptions (their signing secret is the one clear-text secret in a bundle)",
    "file_transfers": "diagnostics uploads and firmware update requests (URL tokens as hashes)",
    "firmware_files": "firmware images offered to stations",
    "billing_accounts": "billing accounts: drivers, fleets, properties (postpaid or prepaid)",
    "account_tokens": "which account pays for each token's sessions",
    "ledger_entries": "the append-only ledger: charges, fees, payments, top-ups, reversals",
    "invoices": "issued invoices with their lines (numbers keep counting on the new CSMS)",
    "invoice_items": "which ledger entries each invoice billed",
    "payment_fees": "processing fees per payment method and currency",
    "payment_holds": "ad-hoc card payments at chargers: amounts pre-authorised, captured and released",
    "fleet_drivers": "fleet drivers and their cost centres",
    "fleet_vehicles": "fleet vehicles: battery, power limits, token or contract id, driver, cost centre, depot",
    "fleet_departures": "each vehicle's departure plan (weekly and one-off overrides)",
    "fleet_telematics": "states of charge reported by vehicles' telematics",
    "mf_properties": "multifamily properties: garage site, billing mode, utility rate, margin, flat fee, allowance",
    "mf_units": "units of each property and the account that pays for each",
    "mf_invitations": "onboarding invitations (code hashes only) and whom they brought in",
    "mf_passes": "access passes: who may charge in which garage, when, how much",
    "tariffs": "OCPI 2.2.1 tariffs as last set (the OCPI JSON)",
    "tariff_versions": "every version of every tariff: the price history",
    "tariff_assignments": "which tariff applies at which site, station or EVSE, for which driver group",
    "ocpi_parties": "OCPI roaming partners: roles, endpoints, the token we call each with (their tokens as hashes)",
    "ocpi_locations": "OCPI location details (address, coordinates, time zone) of sites and stations",
    "ocpi_evses": "each EVSE OCPI published per location, kept with when it was removed (pulls list it REMOVED)",
    "ocpi_tokens": "the tokens eMSPs pushed over OCPI",
    "ocpi_commands": "OCPI commands eMSPs sent and their results",
    "cdrs": "OCPI 2.2.1 CDRs: each finished session priced by its tariff (the OCPI JSON)",
    "organisations": "tenants: each station, site, token, tariff, account, key and user belongs to one",
    "users": "console users: e-mail, organisation, role, argon2 password hashes and TOTP secrets",
    "audit_log": "the append-only audit trail: who changed what, before and after, and every refused write",
}

#: Tables left out, and why.
EXCLUDED: dict[str, str] = {
    "ocpp_messages": "a bounded debugging log of raw frames, pruned as it goes; not operator data",
    "pending_registrations": "unknown stations knocking; they knock again on the new CSMS and are approved there",
    "webhook_deliveries": "the old CSMS's outbox: imported pending deliveries would be sent a second time",
    "webhook_attempts": "delivery attempts of that outbox (they belong to the excluded deliveries)",
    "ocpi_pushes": "the old CSMS's OCPI outbox: imported pending pushes would be sent a second time",
    "console_sessions": "signed-in browsers of the old CSMS: users sign in again on the new one",
    "signin_failures": "recent failed sign-ins (lock-out counters); they expire within minutes",
}


class UnclassifiedTable(Exception):
    def __init__(self, names: list[str]) -> None:
        super().__init__(
            f"table(s) {', '.join(names)} neither exported nor excluded: add them to csms/migration/bundle_tables.py"
        )
        self.names = names


def exported_tables(metadata: MetaData) -> list[Table]:
    """The exported tables, parents before children (the order an import inserts them in)."""
    unknown = sorted(set(metadata.tables) - set(EXPORTED) - set(EXCLUDED))
    if unknown:
        raise UnclassifiedTable(unknown)
    return [table for table in metadata.sorted_tables if table.name in EXPORTED]
