"""Handshake decisions: which station is connecting, is it known, does it connect the way its security
profile says (1: HTTP Basic over ws or wss; 2: wss + HTTP Basic; 3: wss + a client certificate that chains to
the CSMS's station CA and names the station), is its password right.

A station is never admitted below its profile: a profile-2 or -3 station on plain ws is refused, as is a
profile-3 station without its certificate, whatever password it offers. A verified client certificate that
names another station is refused on every profile.

The one admission rule for every shell: the asyncio gateway asks on a thread pool (a password check is a
scrypt run), the embedded CSMS of the twin inline. An unknown station is refused (404) unless
auto-registration is on; then it is created with the version it offered and answered Pending at boot.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from csms.ocpp.versions import OCPP16
from csms.services import credentials as credentials_service
from csms.services import stations
from csms.services.config import CsmsConfig
from csms.services.passwords import hash_password, verify_password
from csms.store.models import Station


@dataclass(frozen=True, slots=True)
class Channel:
    """What the transport established before the HTTP upgrade."""

    tls: bool = False
    #: The subject CN of the client certificate the TLS handshake verified against the station CA, if any.
    client_cn: str | None = None


PLAIN = Channel()


@dataclass(frozen=True, slots=True)
class Admission:
    station_id: str
    ocpp_version: str | None = None
    registration_status: str | None = None
    status: int = 101  # HTTP status: 101 admitted, 401 bad credentials, 404 unknown station
    reason: str = ""

    @property
    def admitted(self) -> bool:
        return self.status == 101


def parse_basic(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return user, password


class Admissions:
    """Checks station credentials; successful checks are remembered (a salted digest of the password, keyed
    by the stored scrypt hash) so that a reconnect wave of thousands of chargers does not cost thousands of
    scrypt runs. Keyed by the stored hash, not the station: stations provisioned with one fleet hash (same
    salt, same password) cost one scrypt in a cold boot storm instead of one each."""

    def __init__(self, session_factory: sessionmaker[Session], config: CsmsConfig) -> None:
        self.session_factory = session_factory
        self.config = config
        self._pepper = secrets.token_bytes(16)
        self._verified: dict[str, bytes] = {}  # stored hash -> digest of the password that matched it

    def _digest(self, password: str) -> bytes:
        return hashlib.sha256(self._pepper + password.encode()).digest()

    def admit(
        self,
        station_id: str,
        authorization: str | None,
        offered_version: str | None,
        now: float,
        channel: Channel = PLAIN,
    ) -> Admission:
        credentials = parse_basic(authorization)
        with self.session_factory() as db:
            row = db.get(Station, station_id)
            if row is None:
                if not self.config.auto_register:
                    return Admission(station_id, status=404, reason="unknown station")
                password = credentials[1] if credentials else None
                stations.auto_register(
                    db,
                    station_id,
                    offered_version or OCPP16,
                    hash_password(password) if password else None,
                    datetime.fromtimestamp(now, UTC),
                )
                db.commit()
                row = db.get(Station, station_id)
                assert row is not None
                return Admission(station_id, row.ocpp_version, row.registration_status)
            when = datetime.fromtimestamp(now, UTC)
            refusal = self._refusal(row, channel, credentials, when)
            pending = row.pending_security_profile  # an upgrade the station accepted: it may come back at it
            meets_pending = pending is not None and not self._refusal(row, channel, credentials, when, pending)
            if refusal and not meets_pending:
                return Admission(station_id, status=401, reason=refusal)
            if self._settle(row, credentials, meets_pending=meets_pending):
                db.commit()
            return Admission(station_id, row.ocpp_version, row.registration_status)

    def _settle(self, row: Station, credentials: tuple[str, str] | None, *, meets_pending: bool) -> bool:
        """After a rotation or a profile upgrade: see :func:`csms.services.credentials.settle`."""
        if row.previous_password_hash is None and not meets_pending:
            return False
        used_new = bool(credentials and row.password_hash and self._check(row.id, row.password_hash, credentials[1]))
        return credentials_service.settle(row, used_new_password=used_new, meets_pending_profile=meets_pending)

    def _refusal(
        self,
        row: Station,
        channel: Channel,
        credentials: tuple[str, str] | None,
        when: datetime,
        profile: int | None = None,
    ) -> str:
        """Why this connection may not be the station's at ``profile`` (default: its own) ("" when it may)."""
        profile = row.security_profile if profile is None else profile
        if channel.client_cn is not None and channel.client_cn != row.id:
            return "the client certificate names another station"
        if profile >= 2 and not channel.tls:
            return f"security profile {profile}: connect over TLS (wss://)"
        if profile == 3:
            if channel.client_cn is None:
                return "security profile 3: a client certificate signed by the station CA is required"
            return ""
        if row.password_hash:
            if credentials is None or credentials[0] != row.id:
                return "credentials required"
            if not self._check(row.id, row.password_hash, credentials[1]):
                previous = credentials_service.previous_password(row, when)
                if previous is None or not self._check(row.id, previous, credentials[1]):
                    return "wrong password"
        return ""

    def _check(self, station_id: str, stored: str, password: str) -> bool:
        cached = self._verified.get(stored)
        digest = self._digest(password)
        if cached is not None and hmac.compare_digest(cached, digest):
            return True
        if verify_password(password, stored):
            self._verified[stored] = digest
            return True
        return False
