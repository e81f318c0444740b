"""Roles and what each may do: the one role → permission table (which route needs which permission is
``csms/api/permissions.py``; docs/security.md shows both as a matrix, generated from them and checked by a test).

Every user and API key has exactly one role in exactly one organisation. A platform admin is not bound to an
organisation: it sees and touches every organisation's objects and is the only role with ``platform``
(the CSMS's own PKI, contract roots, whole-database bundles, webhooks and alert rules, which span tenants).
"""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    READ = "read"  # every GET of the caller's organisation's objects
    COMMANDS = "commands"  # remote start/stop, reset, unlock, availability, trigger, reservations, messages
    ALERTS = "alerts"  # acknowledge and resolve alerts, declare uptime exclusions
    DIAGNOSTICS = "diagnostics"  # diagnostics and log uploads, device-model reports, monitors, events
    FIRMWARE = "firmware"  # firmware files and updates
    CONFIGURATION = "configuration"  # station variables, local lists, station certificates, raw OCPP calls
    STATIONS = "stations"  # provision, approve, credentials, security profile, repoint
    SITES = "sites"  # sites, their trees and meters
    TOKENS = "tokens"  # id tokens, fleet drivers and vehicles, properties and invitations
    TARIFFS = "tariffs"  # tariffs and where they apply
    BILLING = "billing"  # accounts, credits, reversals, invoices
    EXPORTS = "exports"  # usage and session reports, invoice documents
    AUDIT = "audit"  # the audit trail
    USERS = "users"  # the console's users of the organisation: list, add (a one-time link), disable
    PLATFORM = "platform"  # what spans organisations (see the module's docstring)


PLATFORM_ADMIN = "platform-admin"

_ALL = frozenset(Permission)
_ORG_ADMIN = _ALL - {Permission.PLATFORM}

#: role → permissions. Owner and admin differ only outside the API (an owner's organisation cannot lose its
#: last owner; neither can make a platform admin).
ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    PLATFORM_ADMIN: _ALL,
    "owner": _ORG_ADMIN,
    "admin": _ORG_ADMIN,
    "operator": frozenset({Permission.READ, Permission.COMMANDS, Permission.ALERTS, Permission.TOKENS}),
    "technician": frozenset({Permission.READ, Permission.DIAGNOSTICS, Permission.FIRMWARE, Permission.CONFIGURATION}),
    "finance": frozenset({Permission.READ, Permission.TARIFFS, Permission.BILLING, Permission.EXPORTS}),
    "viewer": frozenset({Permission.READ}),
}

ROLES: tuple[str, ...] = tuple(ROLE_PERMISSIONS)


def allows(role: str, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS.get(role, frozenset())
