"""What crossed the host's OCPP-J connections, counted: plain integers, no clock, no metrics library.

The host's sessions bump these on the scheduler's thread (a dict update per frame: the hot path stays
cheap); a shell reads them when asked (``csms serve`` exports them at ``/metrics``:
:mod:`csms.runtime.metrics`). Outgoing answers are counted when released after their commit, so a batch
that failed to commit counts as the InternalError CALLERRORs its calls were answered with.
"""

from __future__ import annotations

import orjson

IN, OUT = "in", "out"
CALL, CALLRESULT, CALLERROR = "CALL", "CALLRESULT", "CALLERROR"
#: OCPP-J 2.1's two more message types.
CALLRESULTERROR, SEND = "CALLRESULTERROR", "SEND"
#: The message type of an incoming frame that could not be read as OCPP-J at all.
MALFORMED = "malformed"
#: The action label when the frame did not name a readable one.
UNKNOWN_ACTION = "unknown"


class Traffic:
    __slots__ = ("errors", "frames")

    def __init__(self) -> None:
        #: (direction, action, message type) → frames.
        self.frames: dict[tuple[str, str, str], int] = {}
        #: (direction, error code) → CALLERROR frames.
        self.errors: dict[tuple[str, str], int] = {}

    def frame(self, direction: str, action: str | None, kind: str) -> None:
        key = (direction, action or UNKNOWN_ACTION, kind)
        self.frames[key] = self.frames.get(key, 0) + 1

    def error(self, direction: str, action: str | None, code: str) -> None:
        self.frame(direction, action, CALLERROR)
        key = (direction, code)
        self.errors[key] = self.errors.get(key, 0) + 1

    def answer_out(self, action: str, frame: str) -> None:
        """An answer we release: a CALLRESULT, or a CALLERROR whose code is read back from the frame (rare)."""
        if frame.startswith("[3"):
            self.frame(OUT, action, CALLRESULT)
        else:
            self.error(OUT, action, str(orjson.loads(frame)[2]))
