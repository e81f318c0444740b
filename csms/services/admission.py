"""Handshake decisions: which station is connecting, is it known, does it connect the way its security
profile says (1: HTTP Basic over ws or wss; 2: wss + HTTP Basic; 3: wss + a client certificate that chains to
the CSMS's station CA and names the station), is its password right.

A station is never admitted below its profile: a profile-2 or -3 station on plain ws is refused, as is a
profile-3 station without its certificate, whatever password it offers. A verified client certificate that
names another station, or that was revoked, is refused on every profile; one that names the station
authenticates it on every profile (over TLS; no password is then asked: the certificate is the stronger
credential).

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
from csms.services import certificates, security_events, stations
from csms.services.config import CsmsConfig
from csms.services.passwords import hash_password, verify_password
from csms.store.models import Station


@dataclass(frozen=True, slots=True)
class Channel:
    """What the transport established before the HTTP upgrade."""

    tls: bool = False
    #: The subject CN of the client certificate the TLS handshake verified against the station CA, if any.
    client_cn: str | None = None
    #: That certificate's serial number (lower-case hex), checked against the revoked ones.
    client_serial: str | None = None
    #: The peer's address, for the security events of a refusal.
    source: str | None = None


PLAIN = Channel()


@dataclass(frozen=True, slots=True)
class Admission:
    station_id: str
    ocpp_version: str | None = None
    registration_status: str | None = None
    status: int = 101  # HTTP status: 101 admitted, 401 bad credentials, 404 unknown station
    reason: str = ""
    #: The serial of the client certificate the station connected with (revoking it closes the connection).
    client_serial: str | None = None

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
            refused_certificate = _certificate_refusal(db, row, channel, now)
            if refused_certificate:
                return Admission(station_id, status=401, reason=refused_certificate)
            refusal = self._refusal(row, channel, credentials)
            if refusal:
                return Admission(station_id, status=401, reason=refusal)
            return Admission(station_id, row.ocpp_version, row.registration_status, client_serial=channel.client_serial)

    def _refusal(self, row: Station, channel: Channel, credentials: tuple[str, str] | None) -> str:
        """Why this connection may not be the station's ("" when it may)."""
        profile = row.security_profile
        if profile >= 2 and not channel.tls:
            return f"security profile {profile}: connect over TLS (wss://)"
        if channel.client_cn is not None:
            return ""  # a verified certificate naming the station (checked before): stronger than any password
        if profile == 3:
            return "security profile 3: a client certificate signed by the station CA is required"
        if row.password_hash:
            if credentials is None or credentials[0] != row.id:
                return "credentials required"
            if not self._check(row.id, row.password_hash, credentials[1]):
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


def _certificate_refusal(db: Session, row: Station, channel: Channel, now: float) -> str:
    """Why the verified client certificate may not be the station's ("" when it may, or none was sent): it
    was revoked (``revoked_certificate`` event) or names another station (``bad_certificate``)."""
    if channel.client_serial is None and channel.client_cn is None:
        return ""
    detail = {"serial": channel.client_serial, "client_cn": channel.client_cn}
    if channel.client_serial is not None and certificates.is_revoked(db, channel.client_serial):
        kind, reason = "revoked_certificate", "the client certificate was revoked"
    elif channel.client_cn != row.id:
        kind, reason = "bad_certificate", "the client certificate names another station"
    else:
        return ""
    when = datetime.fromtimestamp(now, UTC)
    security_events.record(db, type=kind, at=when, station_id=row.id, source=channel.source, detail=detail)
    db.commit()
    return reason
