"""Station passwords (security profiles 1 and 2) and API keys, stored only as hashes.

Passwords use argon2id (memory-hard, salted, slow on purpose) with OWASP's parameters (19 MiB, 2 passes, 1
lane: ~45 ms, like the scrypt it replaces, and small enough for four admissions at once on a small node).
Hashes written before argon2 (``scrypt$…``) still verify; :func:`needs_rehash` tells the caller to store a new
argon2 hash after such a check succeeded. API keys are 32 random bytes, so a plain SHA-256 of the key is
enough to store them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(password: str, stored: str) -> bool:
    if stored.startswith("scrypt$"):
        return _verify_scrypt(password, stored)
    try:
        return _HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """A hash of an older scheme or weaker parameters: replace it once the password is known to be right."""
    if stored.startswith("scrypt$"):
        return True
    try:
        return _HASHER.check_needs_rehash(stored)
    except InvalidHashError:
        return False


def _verify_scrypt(password: str, stored: str) -> bool:
    try:
        _, n, r, p, salt_hex, digest_hex = stored.split("$")
        digest = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt_hex), n=int(n), r=int(r), p=int(p), dklen=len(digest_hex) // 2
        )
    except ValueError:
        return False
    return hmac.compare_digest(digest.hex(), digest_hex)


def new_api_key() -> str:
    return "ctk_" + secrets.token_urlsafe(32)


def api_key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
