"""Local authorization: the authorization cache and the local authorization list.

The cache remembers what the CSMS last said about a token (Authorize answers and the idTagInfo /
idTokenInfo of transaction answers); the local list is what the CSMS sent with SendLocalList. The list
takes precedence over the cache (1.6 §3.4, 2.0.1 C14). Expiry instants are POSIX seconds; a cached
Accepted token past its expiry reads as Expired.
"""

from __future__ import annotations

from collections import OrderedDict
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


@dataclass(frozen=True, slots=True)
class ListLimits:
    """What one SendLocalList may carry and the list may hold (the charger's configuration; None: no limit)."""

    max_entries: int
    per_message: int | None = None
    bytes_per_message: int | None = None


class AuthorizationCache:
    """What the CSMS last said about each token, for at most ``lifetime_s`` (2.0.1 AuthCacheCtrlr.LifeTime) and
    for at most ``capacity`` tokens: the least recently used is dropped first (AuthCacheCtrlr.Policy LRU)."""

    __slots__ = ("_entries", "capacity")

    POLICY = "LRU"

    def __init__(self, capacity: int = 1000) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, tuple[IdTokenInfo, float]] = OrderedDict()

    def update(self, token: str, info: IdTokenInfo, now: float = 0.0) -> None:
        self._entries[token] = (info, now)
        self._entries.move_to_end(token)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def lookup(self, token: str, now: float, lifetime_s: float | None = None) -> IdTokenInfo | None:
        found = self._entries.get(token)
        if found is None:
            return None
        info, stored_at = found
        if lifetime_s is not None and now - stored_at >= lifetime_s:
            del self._entries[token]  # outlived the cache's lifetime: as if never cached
            return None
        self._entries.move_to_end(token)
        return info.at(now)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class LocalList:
    """The list the CSMS sent, with its version (0: none yet)."""

    __slots__ = ("_entries", "version")

    def __init__(self) -> None:
        self.version = 0
        self._entries: dict[str, IdTokenInfo] = {}

    def update(
        self,
        version: int,
        full: bool,
        entries: dict[str, IdTokenInfo | None],
        limits: ListLimits,
        *,
        message_bytes: int = 0,
    ) -> UpdateStatus:
        """Apply a SendLocalList: ``full`` replaces the list; an entry of None removes its token. A message
        larger than the charger takes, a list that would not fit, or a Full list with a removal is Failed; a
        differential update not above the version held is a VersionMismatch. Nothing changes unless Accepted."""
        too_big = (limits.per_message is not None and len(entries) > limits.per_message) or (
            limits.bytes_per_message is not None and message_bytes > limits.bytes_per_message
        )
        if too_big or version < 0 or (full and any(info is None for info in entries.values())):
            return UpdateStatus.FAILED
        if not full and version <= self.version:
            return UpdateStatus.VERSION_MISMATCH
        merged = {} if full else dict(self._entries)
        for token, info in entries.items():
            if info is None:
                merged.pop(token, None)
            else:
                merged[token] = info
        if len(merged) > limits.max_entries:
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

    __slots__ = ("cache", "local_list")

    def __init__(self) -> None:
        self.cache = AuthorizationCache()
        self.local_list = LocalList()

    def lookup(
        self, token: str, now: float, *, use_list: bool, use_cache: bool, cache_lifetime_s: float | None = None
    ) -> IdTokenInfo | None:
        found = self.local_list.lookup(token, now) if use_list else None
        if found is None and use_cache:
            found = self.cache.lookup(token, now, cache_lifetime_s)
        return found
