"""Handshake decisions: which station is connecting, is it known, does it connect the way its security
profile says (1: HTTP Basic over ws or wss; 2: wss + HTTP Basic; 3: wss + a client certificate that chains to
the CSMS's station CA and names the station), is its password right.

A station is never admitted below its profile: a profile-2 or -3 station on plain ws is refused, as is a
profile-3 station without its certificate, whatever password it offers. A verified client certificate that
names another station is refused on every profile.

Every refusal looks the same to the peer (401, one body), whether the id is unknown, the password wrong or
the profile not met, so ids cannot be enumerated; the real reason is a security event
(:mod:`csms.services.security_events`). Failures are counted per station id and per source address
(:class:`~csms.services.throttle.HandshakeThrottle`): past the limit a password that was not verified
before is refused without hashing it, so guessing costs the CSMS almost nothing and does not slow the
honest stations' handshakes: a blocked source address is refused before its handshake is even queued
(:meth:`Admissions.source_blocked`); for a blocked station id, a password verified before (the cache
below) still gets in, so a guessing storm against a station's id from elsewhere does not lock the station
itself out.

With auto-registration on, an unknown station is noted as a pending registration (bounded) and refused
like any unknown id until an operator approves it with its credentials; what it offered is never kept.

The one admission rule for every shell: the asyncio gateway asks on a thread pool (a password check is an
argon2 run), the embedded CSMS of the twin inline.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import Engine, bindparam, select
from sqlalchemy.orm import Session, sessionmaker

from csms.ocpp.versions import OCPP16
from csms.services import certificates, security_events, stations
from csms.services import credentials as credentials_service
from csms.services.config import CsmsConfig
from csms.services.passwords import hash_password, needs_rehash, verify_password
from csms.services.throttle import HandshakeThrottle
from csms.store.bulk import Bulk
from csms.store.database import read_only_factory
from csms.store.models import Station

#: The one answer to every refused handshake.
REFUSED_REASON = "not authorized"


@dataclass(frozen=True, slots=True)
class Channel:
    """What the transport established before the HTTP upgrade."""

    tls: bool = False
    #: The subject CN of the client certificate the TLS handshake verified against the station CA, if any.
    client_cn: str | None = None
    #: That certificate's serial number (lower-case hex), checked against the revoked ones.
    client_serial: str | None = None
    #: The peer's address (for the per-source throttle and the security events).
    source: str | None = None


PLAIN = Channel()


def channel_of_peer(peercert: dict[str, Any] | None, source: str | None) -> Channel:
    """A TLS channel from what the handshake verified of the client certificate (``SSLObject.getpeercert()``;
    empty or None: the client sent none): its subject CN and serial."""
    peer = peercert or {}
    names = [value for rdn in peer.get("subject", ()) for key, value in rdn if key == "commonName"]
    serial = peer.get("serialNumber")
    return Channel(
        tls=True,
        client_cn=names[-1] if names else None,
        client_serial=format(int(serial, 16), "x") if serial else None,
        source=source,
    )


def record_bad_certificate(db: Session, reason: str, source: str | None, at: datetime) -> None:
    """A client certificate the TLS handshake refused (expired, self-signed, another CA): a security event."""
    security_events.record(db, type="bad_certificate", at=at, source=source, detail={"reason": reason[:200]})


@dataclass(frozen=True, slots=True)
class Admission:
    station_id: str
    ocpp_version: str | None = None
    registration_status: str | None = None
    status: int = 101  # HTTP status: 101 admitted, 401 refused (whatever the reason)
    reason: str = ""
    #: The serial of the client certificate the station connected with (revoking it closes the connection).
    client_serial: str | None = None
    #: The security profile it is admitted at.
    security_profile: int | None = None
    #: Why it was refused, as its security event's type (for the operator's metrics; never told the peer).
    refusal: str = ""

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


@dataclass(frozen=True, slots=True)
class _Refusal:
    """Why (for the security event, never for the peer)."""

    type: str
    reason: str
    #: Counted against the throttle (a failed guess; not a refusal the throttle itself made).
    counts: bool = True
    #: More for the security event (the certificate's serial and name).
    detail: dict[str, Any] | None = None


class _Credentials(NamedTuple):
    """What an admission decides on, read with one Core SELECT (:data:`_READ_CREDENTIALS`). Used only for a
    station with nothing to settle (:func:`_nothing_to_settle`: no rotated-out password), so the expiry of a
    rotated-out password is not read: without one there is nothing for it to expire."""

    id: str
    ocpp_version: str
    registration_status: str | None
    security_profile: int
    password_hash: str | None
    previous_password_hash: str | None
    pending_security_profile: int | None
    previous_password_expires_at: datetime | None = None


#: The common handshake's read, straight to the driver (``Bulk.fetch_one``): an ORM session and ``Session.get``
#: of the whole row cost some 200 µs per handshake, a reconnect wave of thousands of stations.
_READ_CREDENTIALS = Bulk(
    select(*(Station.__table__.c[name] for name in _Credentials._fields[:-1])).where(
        Station.__table__.c.id == bindparam("station_id")
    )
)


class Admissions:
    """Checks station credentials; successful checks are remembered (a salted digest of the password, keyed
    by the stored hash) so that a reconnect wave of thousands of chargers does not cost thousands of
    argon2 runs. Keyed by the stored hash, not the station: stations provisioned with one fleet hash (same
    salt, same password) cost one hash in a cold boot storm instead of one each, and a changed password
    (a new hash) is never matched by the old one's entry."""

    def __init__(self, session_factory: sessionmaker[Session], config: CsmsConfig) -> None:
        self.session_factory = session_factory
        #: The common case (a known station that meets its profile) only reads: on SQLite such a session does
        #: not queue behind the group commit's write lock, so handshakes stay fast while chargers are busy.
        self.read_factory = read_only_factory(session_factory)
        self._read_engine: Engine = self.read_factory.kw["bind"]
        self.config = config
        self._pepper = secrets.token_bytes(16)
        self._verified: dict[str, bytes] = {}  # stored hash -> digest of the password that matched it
        window = config.handshake_failure_window_s
        self.by_station = HandshakeThrottle(limit=config.handshake_failure_limit, window_s=window)
        self.by_source = HandshakeThrottle(limit=config.handshake_source_failure_limit, window_s=window)

    def source_blocked(self, source: str | None, now: float) -> bool:
        """Has this address failed too often? Cheap (memory only): the shell asks before it queues the
        handshake for :meth:`admit`, so a guessing storm from one address does not queue ahead of honest
        stations. Such a refusal is neither counted nor stored."""
        return source is not None and self.by_source.blocked(source, now)

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
        blocked = self.by_station.blocked(station_id, now) or (
            channel.source is not None and self.by_source.blocked(channel.source, now)
        )
        credentials = parse_basic(authorization)
        refusal: _Refusal | None
        if channel.client_serial is None:  # no certificate to look up among the revoked: one Core read decides
            with self._read_engine.connect() as connection:  # closed before any write: the twin has one connection
                found = _READ_CREDENTIALS.fetch_one(connection, {"station_id": station_id})
            row: Station | _Credentials | None = None if found is None else _Credentials(*found)
            simple = row is not None and _nothing_to_settle(row)
            if row is not None and simple:
                refusal = self._refusal(None, row, channel, credentials, blocked, datetime.fromtimestamp(now, UTC))
                if refusal is None:
                    return _admission(row, channel)
        else:
            with self.read_factory() as db:  # closed before any write session: the twin's store is one connection
                row = db.get(Station, station_id)
                simple = row is not None and _nothing_to_settle(row)
                if row is not None and simple:
                    refusal = self._refusal(db, row, channel, credentials, blocked, datetime.fromtimestamp(now, UTC))
                    if refusal is None:
                        return _admission(row, channel)
        if not simple:
            return self._admit_writing(station_id, credentials, offered_version, now, channel, blocked)
        assert refusal is not None
        with self.session_factory() as db:  # refused: only the refusal is written
            return self._refusal_stored(db, station_id, channel, refusal, now)

    def _admit_writing(
        self,
        station_id: str,
        credentials: tuple[str, str] | None,
        offered_version: str | None,
        now: float,
        channel: Channel,
        blocked: bool,
    ) -> Admission:
        """An admission that may change the station (a pending registration, a rotation or profile upgrade to
        complete, a password to re-hash): read and decided in one write transaction."""
        refusal: _Refusal | None
        with self.session_factory() as db:
            row = db.get(Station, station_id)
            meets_pending = False
            if row is None:
                refusal = self._unknown(db, station_id, offered_version, channel, now, blocked)
            else:
                when = datetime.fromtimestamp(now, UTC)
                refusal = self._refusal(db, row, channel, credentials, blocked, when)
                pending = row.pending_security_profile  # an upgrade the station accepted: it may come back at it
                if pending is not None:
                    meets_pending = self._refusal(db, row, channel, credentials, blocked, when, pending) is None
                    refusal = None if meets_pending else refusal
            if refusal is None:
                assert row is not None
                settled = self._settle(row, credentials, meets_pending=meets_pending)
                if settled or db.dirty:  # a re-hashed password, a rotation or upgrade completed
                    db.commit()
                return _admission(row, channel)
            return self._refusal_stored(db, station_id, channel, refusal, now)

    def _refusal_stored(
        self, db: Session, station_id: str, channel: Channel, refusal: _Refusal, now: float
    ) -> Admission:
        """The refusal's security events committed (when it has any): the answer to the peer."""
        if self._refused(db, station_id, channel, refusal, now):
            db.commit()
        return Admission(station_id, status=401, reason=REFUSED_REASON, refusal=refusal.type)

    def _unknown(
        self,
        db: Session,
        station_id: str,
        offered_version: str | None,
        channel: Channel,
        now: float,
        blocked: bool,
    ) -> _Refusal:
        if blocked:
            return _Refusal("throttled", "unknown station, refused while throttled", counts=False)
        if self.config.auto_register:
            noted = stations.note_pending(
                db,
                station_id,
                ocpp_version=offered_version or OCPP16,
                source=channel.source,
                now=datetime.fromtimestamp(now, UTC),
                max_pending=self.config.max_pending_registrations,
                max_per_source=self.config.max_pending_per_source,
            )
            if noted:
                return _Refusal("unknown_station", "pending registration: waiting for an operator's approval")
            return _Refusal("unknown_station", "unknown station; pending registrations are at their cap")
        return _Refusal("unknown_station", "unknown station")

    def _settle(self, row: Station, credentials: tuple[str, str] | None, *, meets_pending: bool) -> bool:
        """After a rotation or a profile upgrade: see :func:`csms.services.credentials.settle`."""
        if row.previous_password_hash is None and not meets_pending:
            return False
        used_new = bool(credentials and row.password_hash and self._known(row.password_hash, credentials[1]))
        return credentials_service.settle(row, used_new_password=used_new, meets_pending_profile=meets_pending)

    def _refusal(
        self,
        db: Session | None,
        row: Station | _Credentials,
        channel: Channel,
        credentials: tuple[str, str] | None,
        blocked: bool,
        when: datetime,
        profile: int | None = None,
    ) -> _Refusal | None:
        """Why this connection may not be the station's at ``profile`` (default: its own; None when it may)."""
        profile = row.security_profile if profile is None else profile
        if channel.client_serial is not None and certificates.is_revoked(_session(db), channel.client_serial):
            return _Refusal("revoked_certificate", "the client certificate was revoked", detail=_cert(channel))
        if channel.client_cn is not None and channel.client_cn != row.id:
            return _Refusal("bad_certificate", "the client certificate names another station", detail=_cert(channel))
        if profile >= 2 and not channel.tls:
            return _Refusal("handshake_refused", f"security profile {profile}: connect over TLS (wss://)")
        if channel.client_cn is not None:
            return None  # a verified certificate naming the station: stronger than any password
        if profile == 3:
            return _Refusal(
                "handshake_refused", "security profile 3: a client certificate signed by the station CA is required"
            )
        if row.password_hash:
            if credentials is None or credentials[0] != row.id:
                return _Refusal("bad_password", "credentials required")
            return self._password(row, credentials[1], blocked, when)
        return None

    def _password(self, row: Station | _Credentials, password: str, blocked: bool, when: datetime) -> _Refusal | None:
        """The station's password, or (after a rotation, until it used the new one) the one it replaced."""
        stored = row.password_hash
        assert stored is not None
        previous = credentials_service.previous_password(row, when)
        if self._cached(stored, password) or (previous is not None and self._cached(previous, password)):
            return None
        if blocked:
            return _Refusal("throttled", "password not checked: too many failed handshakes", counts=False)
        if verify_password(password, stored):
            if needs_rehash(stored):
                assert isinstance(row, Station)  # a hash to renew is something to settle: read as a Station
                row.password_hash = stored = hash_password(password)
            self._verified[stored] = self._digest(password)
            return None
        if previous is not None and verify_password(password, previous):
            self._verified[previous] = self._digest(password)
            return None
        return _Refusal("bad_password", "wrong password")

    def _cached(self, stored: str, password: str) -> bool:
        cached = self._verified.get(stored)
        return cached is not None and hmac.compare_digest(cached, self._digest(password))

    def _known(self, stored: str, password: str) -> bool:
        """Whether ``password`` matches ``stored`` (the cache first: a reconnect wave costs no hashing)."""
        if self._cached(stored, password):
            return True
        if verify_password(password, stored):
            self._verified[stored] = self._digest(password)
            return True
        return False

    def _refused(self, db: Session, station_id: str, channel: Channel, refusal: _Refusal, now: float) -> bool:
        """The security event of a failure, and one ``throttled`` event when it reached a limit (True: something
        to commit). A refusal the throttle made is not stored; it counts against the source address only (an
        address that keeps trying a blocked id is soon refused before its handshake is queued)."""
        at = datetime.fromtimestamp(now, UTC)
        tripped = []
        if refusal.counts:
            _record(
                db, refusal.type, at, station_id, channel.source, {"reason": refusal.reason, **(refusal.detail or {})}
            )
            if self.by_station.failed(station_id, now):
                tripped.append(f"station id {station_id}")
        if channel.source is not None and self.by_source.failed(channel.source, now):
            tripped.append(f"source address {channel.source}")
        for what in tripped:
            detail = {"reason": f"{what}: handshakes refused without a password check for a while"}
            _record(db, "throttled", at, station_id, channel.source, detail)
        return refusal.counts or bool(tripped)


def _nothing_to_settle(row: Station | _Credentials) -> bool:
    """No rotation or profile upgrade under way and no password hash to renew: admitting the station
    changes nothing (so a read-only session decides it)."""
    return (
        row.pending_security_profile is None
        and row.previous_password_hash is None
        and not (row.password_hash and needs_rehash(row.password_hash))
    )


def _admission(row: Station | _Credentials, channel: Channel) -> Admission:
    return Admission(
        row.id,
        row.ocpp_version,
        row.registration_status,
        client_serial=channel.client_serial,
        security_profile=row.security_profile,
    )


def _session(db: Session | None) -> Session:
    assert db is not None, "a client certificate is looked up in a session"
    return db


def _cert(channel: Channel) -> dict[str, Any]:
    return {"serial": channel.client_serial, "client_cn": channel.client_cn}


def _record(db: Session, kind: str, at: datetime, station_id: str, source: str | None, detail: dict[str, Any]) -> None:
    security_events.record(db, type=kind, at=at, station_id=station_id, source=source, detail=detail)
