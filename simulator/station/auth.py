"""Local authorization: the authorization cache and the local authorization list.

The cache remembers what the CSMS last said about a token (Authorize answers and the idTagInfo /
idTokenInfo of transaction answers); the local list is what the CSMS sent with SendLocalList. The list
takes precedence over the cache (1.6 §3.4, 2.0.1 C14). Expiry instants are POSIX seconds; a cached
Accepted token past its expiry reads as Expired.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

ACCEPTED = "Accepted"


@dataclass(frozen=True, slots=True)
class IdTokenInfo:
    """What is known about a token: its status (the wire word) and when that stops being true."""

    status: str
    expiry: float | None = None
    group_id: str | None = None

    def at(self, now: float) -> IdTokenInfo:
        if self.status == ACCEPTED and self.expiry is not None and self.expiry <= now:
            return IdTokenInfo("Expired", self.expiry, self.group_id)
        return self

    @property
    def accepted(self) -> bool:
        return self.status == ACCEPTED


class UpdateStatus(Enum):
    ACCEPTED = "Accepted"
    FAILED = "Failed"
    VERSION_MISMATCH = "VersionMismatch"


class AuthorizationCache:
    def __init__(self) -> None:
        self._entries: dict[str, IdTokenInfo] = {}

    def update(self, token: str, info: IdTokenInfo) -> None:
        self._entries[token] = info

    def lookup(self, token: str, now: float) -> IdTokenInfo | None:
        info = self._entries.get(token)
        return None if info is None else info.at(now)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class LocalList:
    def __init__(self, max_length: int = 100) -> None:
        self.version = 0
        self.max_length = max_length
        self._entries: dict[str, IdTokenInfo] = {}

    def update(self, version: int, full: bool, entries: dict[str, IdTokenInfo | None]) -> UpdateStatus:
        """Apply a SendLocalList: ``full`` replaces the list; an entry of None removes its token."""
        if not full and version <= self.version and self.version != 0:
            return UpdateStatus.VERSION_MISMATCH
        merged = {} if full else dict(self._entries)
        for token, info in entries.items():
            if info is None:
                merged.pop(token, None)
            else:
                merged[token] = info
        if len(merged) > self.max_length:
            return UpdateStatus.FAILED
        self._entries, self.version = merged, version
        return UpdateStatus.ACCEPTED

    def lookup(self, token: str, now: float) -> IdTokenInfo | None:
        info = self._entries.get(token)
        return None if info is None else info.at(now)

    def __len__(self) -> int:
        return len(self._entries)


class LocalAuthorization:
    """The list, then the cache, each only when enabled."""

    def __init__(self) -> None:
        self.cache = AuthorizationCache()
        self.local_list = LocalList()

    def lookup(self, token: str, now: float, *, use_list: bool, use_cache: bool) -> IdTokenInfo | None:
        found = self.local_list.lookup(token, now) if use_list else None
        if found is None and use_cache:
            found = self.cache.lookup(token, now)
        return found
