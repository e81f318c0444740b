"""Changing how a connected station authenticates: password rotation and security-profile upgrade.

Whichever door the call goes through (the typed endpoints, or an operator's raw ChangeConfiguration /
SetVariables / SetNetworkProfile), the CSMS checks it first (:func:`vet`: the password rules of the spec, no
profile downgrade) and adopts it only once the station said it took it (:func:`adopt`):

- a new password becomes the stored one; the password it replaces stays valid until the station first
  connects with the new one, or for :data:`ROTATION_GRACE` at most (the station disconnects and reconnects
  with the new password; one that failed to store it is not locked out meanwhile);
- a higher profile is *pending* until the station comes back meeting it (:func:`settle`, at admission); only
  then is it the stored profile, and from then on the lower one is refused at the handshake.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.orm import Session

from csms.ocpp.outgoing import CredentialChange
from csms.services import security_events, stations
from csms.services.errors import Invalid
from csms.services.passwords import hash_password
from csms.store.models import Station

#: How long a rotated-out password still admits the station that has not reconnected with the new one.
ROTATION_GRACE = timedelta(hours=24)


def vet(db: Session, station_id: str, change: CredentialChange, now: datetime) -> str | None:
    """Why the CSMS must not send ``change`` (None: it may). A downgrade is refused and recorded as a
    ``profile_downgrade_refused`` security event: the caller answers with the reason once this committed.

    Raises:
        NotFound: no such station.  Invalid: the password breaks the spec's rule, a bad profile number.
    """
    row = stations.get(db, station_id)
    if change.problem:
        raise Invalid(change.problem)
    if change.password is not None:
        stations.check_password(change.password, row.ocpp_version)
    profile = change.profile
    if profile is None:
        return None
    if profile not in stations.SECURITY_PROFILES:
        raise Invalid(f"security profile must be 1, 2 or 3, got {profile!r}")
    if profile < row.security_profile:
        reason = f"station {station_id!r} is on security profile {row.security_profile}: no downgrade to {profile}"
        security_events.record(
            db,
            type="profile_downgrade_refused",
            at=now,
            station_id=station_id,
            detail={"current": row.security_profile, "requested": profile},
        )
        return reason
    if profile == 2 and row.password_hash is None:
        raise Invalid("security profile 2 is TLS + HTTP Basic: set the station's password first")
    return None


def adopt(db: Session, station_id: str, change: CredentialChange, now: datetime) -> None:
    """The station took ``change``: a new password is stored (the old one kept for the grace period), a higher
    profile becomes pending."""
    row = stations.get(db, station_id)
    if change.password is not None:
        row.previous_password_hash = row.password_hash
        row.previous_password_expires_at = now + ROTATION_GRACE if row.password_hash else None
        row.password_hash = hash_password(change.password)
    if change.profile is not None:
        row.pending_security_profile = change.profile if change.profile > row.security_profile else None
    db.flush()


class RotatedOut(Protocol):
    """What :func:`previous_password` reads of a station (its row, or an admission's Core read of it)."""

    @property
    def previous_password_hash(self) -> str | None: ...

    @property
    def previous_password_expires_at(self) -> datetime | None: ...


def previous_password(row: RotatedOut, now: datetime) -> str | None:
    """The hash of the password a rotation replaced, while it still admits the station."""
    expires = row.previous_password_expires_at
    if row.previous_password_hash and expires is not None and now < expires:
        return row.previous_password_hash
    return None


def settle(row: Station, *, used_new_password: bool, meets_pending_profile: bool) -> bool:
    """The station was admitted: forget a rotated-out password once it used the new one, and make a pending
    profile the stored one once it connected meeting it. True when ``row`` changed (commit it)."""
    changed = False
    if used_new_password and row.previous_password_hash is not None:
        row.previous_password_hash, row.previous_password_expires_at = None, None
        changed = True
    if meets_pending_profile and row.pending_security_profile is not None:
        row.security_profile, row.pending_security_profile = row.pending_security_profile, None
        changed = True
    return changed
