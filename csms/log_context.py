"""What a log line is about: the station, the OCPP action and message id, the API request.

Shells and the sans-IO core bind these around the work they do (the gateway per frame and per connection, the
station session per call it serves, the API per request); the log formatter of ``csms serve``
(:mod:`csms.runtime.logs`) copies the bound values into every record. Only :mod:`contextvars` here, no clock
and no logging set-up, so any layer may import it.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from types import TracebackType

#: The fields a log line can carry, in the order a formatter writes them.
FIELDS = ("station_id", "action", "message_id", "request_id")

_VARS: dict[str, ContextVar[str | None]] = {name: ContextVar(name, default=None) for name in FIELDS}
_STATION, _ACTION, _MESSAGE = _VARS["station_id"], _VARS["action"], _VARS["message_id"]


class bound:
    """``with bound(station_id="cp1", action="Heartbeat"):`` — the values hold for everything logged inside,
    in this thread or task, and are restored on the way out. ``None`` values leave a field as it was."""

    __slots__ = ("_tokens", "_values")

    def __init__(self, **values: str | None) -> None:
        self._values = values
        self._tokens: list[tuple[ContextVar[str | None], Token[str | None]]] = []

    def __enter__(self) -> bound:
        for name, value in self._values.items():
            if value is not None:
                var = _VARS[name]
                self._tokens.append((var, var.set(value)))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        for var, token in reversed(self._tokens):
            var.reset(token)
        self._tokens.clear()


class serving:
    """``bound(station_id=…, action=…, message_id=…)`` for one call a station session serves, without the general
    form's keyword dictionary and loop: it is entered for every OCPP call, on the path of each meter value."""

    __slots__ = ("_tokens", "_values")

    def __init__(self, station_id: str, action: str, message_id: str) -> None:
        self._values = (station_id, action, message_id)

    def __enter__(self) -> serving:
        station_id, action, message_id = self._values
        self._tokens = (_STATION.set(station_id), _ACTION.set(action), _MESSAGE.set(message_id))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        station, action, message = self._tokens
        _MESSAGE.reset(message)
        _ACTION.reset(action)
        _STATION.reset(station)


def current() -> dict[str, str]:
    """The fields bound here and now (only those that are set)."""
    values = {}
    for name, var in _VARS.items():
        value = var.get()
        if value is not None:
            values[name] = value
    return values
