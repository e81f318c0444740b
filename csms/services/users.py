"""Console users: one-time set-password links, sign-in with lock-out and an optional TOTP second factor, and the
server-side sessions behind the console's cookie.

Secrets are stored only as hashes: passwords with argon2id (:mod:`csms.services.passwords`), the one-time link
and the session cookie's value as SHA-256 (both are 32 random bytes, like API keys). A session ends at its
expiry, on sign-out, and for all of a user's browsers when the password changes.

Lock-out counts failures per e-mail address, whether a user has it or not, so being locked out tells nothing
about who exists: :data:`MAX_FAILURES` within :data:`FAILURE_WINDOW` lock the address for :data:`LOCK_TIME`.
"""

from __future__ import annotations

import functools
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from csms.services import organisations
from csms.services.errors import Conflict, Forbidden, Invalid, NotFound
from csms.services.passwords import api_key_hash, hash_password, needs_rehash, verify_password
from csms.services.roles import PLATFORM_ADMIN, ROLES
from csms.store.models import ConsoleSession, SignInFailure, User

MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)
LOCK_TIME = timedelta(minutes=15)
SESSION_LIFETIME = timedelta(hours=8)
LINK_LIFETIME = timedelta(hours=24)
MIN_PASSWORD = 12
MAX_PASSWORD = 256
TOTP_STEP_S = 30

_EMAIL = re.compile(r"[^@\s<>\"']{1,64}@[A-Za-z0-9.-]{1,189}\.[A-Za-z]{2,63}")


@functools.cache
def _dummy_hash() -> str:
    """Verified when the address has no user, so that a wrong address costs as long as a wrong password."""
    return hash_password(secrets.token_urlsafe(16))


def normal_email(email: str) -> str:
    email = email.strip().lower()
    if len(email) > 254 or not _EMAIL.fullmatch(email):
        raise Invalid("email: not an e-mail address")
    return email


def add(db: Session, email: str, role: str, organisation: str | None, now: datetime) -> tuple[User, str]:
    """A user without a password and the one-time link token with which they set it.

    Raises:
        Invalid: a malformed e-mail or an unknown role. Conflict: the e-mail exists. NotFound: no such organisation.
    """
    email = normal_email(email)
    if role not in ROLES:
        raise Invalid(f"role: must be one of {', '.join(ROLES)}")
    org = organisations.by_slug(db, organisation)
    if db.scalar(select(User.id).where(User.email == email)) is not None:
        raise Conflict(f"user {email} exists")
    user = User(email=email, organisation_id=org.id, role=role, disabled=False, created_at=now)
    db.add(user)
    db.flush()
    return user, _new_link(user, now)


def list_users(db: Session) -> list[User]:
    return list(db.scalars(select(User).order_by(User.id)))


def by_email(db: Session, email: str) -> User:
    user = db.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise NotFound(f"user {email} not found")
    return user


def reset(db: Session, email: str, now: datetime) -> str:
    """A new one-time link for ``email`` (any earlier link stops working). Raises NotFound."""
    return _new_link(by_email(db, email), now)


def _new_link(user: User, now: datetime) -> str:
    token = secrets.token_urlsafe(32)
    user.link_hash = api_key_hash(token)
    user.link_expires_at = now + LINK_LIFETIME
    return token


def user_for_link(db: Session, token: str, now: datetime) -> User:
    """The user a one-time link belongs to. Raises NotFound for an unknown, used or expired link."""
    user = db.scalar(select(User).where(User.link_hash == api_key_hash(token)))
    if user is None or user.link_expires_at is None or user.link_expires_at <= now or user.disabled:
        raise NotFound("this link is unknown, used or expired: ask for a new one (csms users reset EMAIL)")
    return user


def check_password_rules(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise Invalid(f"password: must be {MIN_PASSWORD}-{MAX_PASSWORD} characters")


def set_password_with_link(db: Session, token: str, password: str, now: datetime) -> User:
    """Use a one-time link: the password is set, the link spent and every session of the user ended."""
    user = user_for_link(db, token, now)
    check_password_rules(password)
    _set_password(db, user, password, now)
    user.link_hash = None
    user.link_expires_at = None
    return user


def change_password(db: Session, user: User, current: str, new: str, now: datetime) -> None:
    """Raises Invalid when ``current`` is wrong or ``new`` breaks the rules; ends every session of the user."""
    if user.password_hash is None or not verify_password(current, user.password_hash):
        raise Invalid("current_password: wrong password")
    check_password_rules(new)
    _set_password(db, user, new, now)


def _set_password(db: Session, user: User, password: str, now: datetime) -> None:
    user.password_hash = hash_password(password)
    user.password_changed_at = now
    end_sessions(db, user.id, now)


def end_sessions(db: Session, user_id: int, now: datetime) -> None:
    db.execute(
        update(ConsoleSession)
        .where(ConsoleSession.user_id == user_id, ConsoleSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def set_disabled(db: Session, email: str, disabled: bool, now: datetime) -> User:
    """Disable a user (every session ends, sign-in and links refused) or enable them again."""
    user = by_email(db, email)
    user.disabled = disabled
    if disabled:
        end_sessions(db, user.id, now)
    return user


# ---- TOTP ---------------------------------------------------------------------------------------------------
def enable_totp(db: Session, email: str) -> str:
    """Turn the second factor on with a new secret; returns the ``otpauth://`` URI for an authenticator app."""
    user = by_email(db, email)
    user.totp_secret = pyotp.random_base32()
    user.totp_last_step = None
    return pyotp.TOTP(user.totp_secret).provisioning_uri(name=user.email, issuer_name="chargetwin")


def disable_totp(db: Session, email: str) -> None:
    user = by_email(db, email)
    user.totp_secret = None
    user.totp_last_step = None


def _totp_ok(user: User, code: str | None, now: datetime) -> bool:
    """A code of the current 30-s step or one either side (clock drift), never one used before (no replay)."""
    if user.totp_secret is None:
        return True
    if not code or not code.isdigit():
        return False
    totp = pyotp.TOTP(user.totp_secret)
    current = int(now.timestamp()) // TOTP_STEP_S
    for step in (current - 1, current, current + 1):
        if hmac.compare_digest(totp.at(step * TOTP_STEP_S), code):
            if user.totp_last_step is not None and step <= user.totp_last_step:
                return False
            user.totp_last_step = step
            return True
    return False


# ---- sign-in and sessions -----------------------------------------------------------------------------------
@dataclass
class SignIn:
    """What a sign-in attempt gave: a session (``token``: the cookie's value, ``csrf``) or a refusal."""

    user: User | None = None
    token: str | None = None
    csrf: str | None = None
    refusal: str | None = None
    locked: bool = False


REFUSED = "wrong e-mail, password or code"


def sign_in(
    db: Session, email: str, password: str, code: str | None, now: datetime, client: str | None = None
) -> SignIn:
    """Check the credentials and open a session. A failure is recorded (the caller commits either way)."""
    address = email.strip().lower()[:254]
    failure = db.get(SignInFailure, address)
    if failure is not None and failure.locked_until is not None and failure.locked_until > now:
        return SignIn(refusal=_locked_message(failure), locked=True)
    user = db.scalar(select(User).where(User.email == address))
    stored = user.password_hash if user is not None and not user.disabled else None
    right = verify_password(password, stored or _dummy_hash()) and stored is not None
    if not right or user is None or not _totp_ok(user, code, now):
        return _failed(db, address, failure, now)
    if failure is not None:
        db.delete(failure)
    if stored is not None and needs_rehash(stored):
        user.password_hash = hash_password(password)
    token, csrf = open_session(db, user, now, client)
    return SignIn(user=user, token=token, csrf=csrf)


def _failed(db: Session, address: str, failure: SignInFailure | None, now: datetime) -> SignIn:
    if failure is None:
        failure = SignInFailure(email=address, failures=0, window_start=now)
        db.add(failure)
    if failure.window_start + FAILURE_WINDOW <= now:
        failure.failures, failure.window_start, failure.locked_until = 0, now, None
    failure.failures += 1
    if failure.failures >= MAX_FAILURES:
        failure.locked_until = now + LOCK_TIME
        return SignIn(refusal=_locked_message(failure), locked=True)
    return SignIn(refusal=REFUSED)


def _locked_message(failure: SignInFailure) -> str:
    until = failure.locked_until.strftime("%H:%M UTC") if failure.locked_until else "later"
    return f"too many failed sign-ins for this address: try again after {until}"


def open_session(db: Session, user: User, now: datetime, client: str | None) -> tuple[str, str]:
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    db.add(
        ConsoleSession(
            id_hash=api_key_hash(token),
            user_id=user.id,
            csrf_token=csrf,
            created_at=now,
            expires_at=now + SESSION_LIFETIME,
            client=(client or "")[:64] or None,
        )
    )
    db.flush()
    return token, csrf


def session_for(db: Session, token: str, now: datetime) -> tuple[ConsoleSession, User] | None:
    """The live session behind a cookie value and its user (None: unknown, expired, ended, or user disabled)."""
    row = db.get(ConsoleSession, api_key_hash(token))
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    user = db.get(User, row.user_id)
    if user is None or user.disabled:
        return None
    return row, user


def sign_out(db: Session, token: str, now: datetime) -> None:
    row = db.get(ConsoleSession, api_key_hash(token))
    if row is not None and row.revoked_at is None:
        row.revoked_at = now


def scope_of(organisation_id: int, role: str) -> int | None:
    """The organisation a user or key is limited to (None: a platform admin, limited to none)."""
    return None if role == PLATFORM_ADMIN else organisation_id


# ---- managing users (the API's /users and the console's users page) ----------------------------------------
@dataclass(frozen=True)
class Manager:
    """Who manages users: a role in an organisation (a platform admin: every organisation), and ``email`` when it
    is a user (an API key has none)."""

    role: str
    organisation_id: int
    email: str | None = None

    @property
    def scope(self) -> int | None:
        return scope_of(self.organisation_id, self.role)


def visible_users(db: Session, manager: Manager) -> list[User]:
    """The users of the manager's organisation (every user, for a platform admin)."""
    query = select(User).order_by(User.id)
    if manager.scope is not None:
        query = query.where(User.organisation_id == manager.scope)
    return list(db.scalars(query))


def managed(db: Session, manager: Manager, user_id: int) -> User:
    """A user the manager may see. Raises NotFound (also for another organisation's user)."""
    user = db.get(User, user_id)
    if user is None or not organisations.visible(manager.scope, user.organisation_id):
        raise NotFound(f"user {user_id} not found")
    return user


def _grantable(manager: Manager, role: str) -> None:
    if role not in ROLES:
        raise Invalid(f"role: must be one of {', '.join(ROLES)}")
    if role == PLATFORM_ADMIN and manager.role != PLATFORM_ADMIN:
        raise Forbidden("role: only a platform admin makes a platform admin")


def _touchable(db: Session, manager: Manager, user: User, *, losing_owner: bool) -> None:
    if user.role == PLATFORM_ADMIN and manager.role != PLATFORM_ADMIN:
        raise Forbidden("only a platform admin changes a platform admin")
    if manager.email is not None and user.email == manager.email:
        raise Conflict("you cannot change your own role or disable yourself")
    if losing_owner and user.role == "owner" and not user.disabled:
        owners = db.scalars(
            select(User.id).where(User.organisation_id == user.organisation_id, User.role == "owner", ~User.disabled)
        )
        if list(owners) == [user.id]:
            raise Conflict("an organisation keeps at least one owner")


def add_by(
    db: Session, manager: Manager, email: str, role: str, organisation: str | None, now: datetime
) -> tuple[User, str]:
    """A user of the manager's organisation (a platform admin names any, by slug) and their one-time link.
    Raises Invalid, Forbidden (a platform admin made by anyone else), Conflict, NotFound (organisation)."""
    _grantable(manager, role)
    if manager.scope is not None:
        own = organisations.slugs(db).get(manager.scope)
        if organisation not in (None, own):
            raise NotFound(f"organisation {organisation} not found")
        organisation = own
    return add(db, email, role, organisation, now)


def change_role_by(db: Session, manager: Manager, user_id: int, role: str) -> User:
    user = managed(db, manager, user_id)
    _grantable(manager, role)
    if role != user.role:
        _touchable(db, manager, user, losing_owner=True)
        user.role = role
    return user


def set_disabled_by(db: Session, manager: Manager, user_id: int, disabled: bool, now: datetime) -> User:
    user = managed(db, manager, user_id)
    if disabled != user.disabled:
        _touchable(db, manager, user, losing_owner=disabled)
        set_disabled(db, user.email, disabled, now)
    return user


def reset_by(db: Session, manager: Manager, user_id: int, now: datetime) -> tuple[User, str]:
    """A new one-time link (the earlier one stops working; the password stays until the link is used)."""
    user = managed(db, manager, user_id)
    if user.role == PLATFORM_ADMIN and manager.role != PLATFORM_ADMIN:
        raise Forbidden("only a platform admin changes a platform admin")
    return user, _new_link(user, now)
