"""Handshake failures counted per key (the admission keeps one throttle per station id and one per source
address), so that password guessing is refused cheaply (no password hash, no database write) once a key
has failed a few times.

Each key counts its failures in a window that starts at its first
failure; at ``limit`` failures the key is blocked until the window ends. Memory is bounded: at most
``max_keys`` keys are followed, the oldest window is forgotten first (an attacker who cycles through more
keys than that gets at most ``limit`` hash runs per forgotten key, as a fresh key would). Time comes in as
``now`` (seconds); the lock is there because the gateway admits on a few threads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(slots=True)
class _Window:
    start: float
    failures: int = 0


class HandshakeThrottle:
    def __init__(self, *, limit: int = 5, window_s: float = 60.0, max_keys: int = 20_000) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_keys = max_keys
        self._windows: OrderedDict[str, _Window] = OrderedDict()
        self._lock = threading.Lock()

    def blocked(self, key: str, now: float) -> bool:
        """Has ``key`` failed ``limit`` times in its current window?"""
        with self._lock:
            return self._live(key, now) >= self.limit

    def failed(self, key: str, now: float) -> bool:
        """Count one failure against ``key``; True when this one reached the limit."""
        with self._lock:
            window = self._windows.get(key)
            if window is None or now - window.start >= self.window_s:
                self._windows.pop(key, None)
                window = self._windows[key] = _Window(now)
                while len(self._windows) > self.max_keys:
                    self._windows.popitem(last=False)
            window.failures += 1
            return window.failures == self.limit

    def _live(self, key: str, now: float) -> int:
        window = self._windows.get(key)
        if window is None:
            return 0
        if now - window.start >= self.window_s:
            del self._windows[key]
            return 0
        return window.failures

    def __len__(self) -> int:
        return len(self._windows)
