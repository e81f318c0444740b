"""The charger's display: the messages a CSMS sets (2.0.1 block O: SetDisplayMessage, GetDisplayMessages with
NotifyDisplayMessages, ClearDisplayMessage; 1.6 the same through DataTransfer ``org.chargetwin``
``SetDisplayMessage`` / ``ClearDisplayMessage``, whose data is the 2.0.1 payload as JSON) and what it shows at
an instant: the newest AlwaysFront message, else the newest InFront one, else the NormalCycle ones in turn,
each only inside its time window, in its station state and during its transaction (a message for a
transaction goes when the transaction ends)."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from csms.ocpp.versions import OCPP16

VENDOR_ID = "org.chargetwin"
#: The formats this display renders (DisplayMessageCtrlr.SupportedFormats); HTML and URI are refused.
FORMATS = ("ASCII", "UTF8")
PRIORITIES = ("AlwaysFront", "InFront", "NormalCycle")
#: How many messages it keeps (DisplayMessageCtrlr.Available).
CAPACITY = 10
#: How long each NormalCycle message shows before the next.
CYCLE_S = 10.0

Handler = Any


class DisplayHost(Protocol):
    @property
    def version(self) -> str: ...
    def send(self, action: str, payload: dict[str, Any], now: float) -> bool: ...
    def after_reply(self, action: Any) -> None: ...
    def running_transaction_ids(self) -> set[str]: ...
    def display_state(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Message:
    """One message as the CSMS set it (``info``: its MessageInfoType)."""

    id: int
    priority: str
    info: dict[str, Any]
    set_at: float

    @property
    def state(self) -> str | None:
        return self.info.get("state")

    @property
    def content(self) -> dict[str, Any]:
        content: dict[str, Any] = self.info["message"]
        return content

    @property
    def transaction_id(self) -> str | None:
        return self.info.get("transactionId")

    def window(self) -> tuple[float | None, float | None]:
        start, end = self.info.get("startDateTime"), self.info.get("endDateTime")
        return (_posix(start) if start else None, _posix(end) if end else None)


def _posix(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Display:
    __slots__ = ("host", "messages")

    def __init__(self, host: DisplayHost) -> None:
        self.host = host
        self.messages: dict[int, Message] = {}

    def handlers(self) -> dict[str, Handler]:
        if self.host.version == OCPP16:
            return {}
        return {
            "SetDisplayMessage": self.set_message,
            "GetDisplayMessages": self.get_messages,
            "ClearDisplayMessage": self.clear_message,
        }

    # ---- the calls --------------------------------------------------------------------------------------
    def set_message(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        info = p["message"]
        content = info["message"]
        if content.get("format") not in FORMATS:
            return {"status": "NotSupportedMessageFormat"}
        if info.get("transactionId") and info["transactionId"] not in self.host.running_transaction_ids():
            return {"status": "UnknownTransaction"}
        self._forget_ended(now)
        if info["id"] not in self.messages and len(self.messages) >= CAPACITY:
            return {"status": "Rejected"}
        self.messages[info["id"]] = Message(info["id"], info["priority"], info, now)
        return {"status": "Accepted"}

    def get_messages(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        self._forget_ended(now)
        ids = set(p.get("id") or [])
        found = [
            m.info
            for m in sorted(self.messages.values(), key=lambda m: m.id)
            if (not ids or m.id in ids)
            and (p.get("priority") is None or m.priority == p["priority"])
            and (p.get("state") is None or m.state == p["state"])
        ]
        if not found:
            return {"status": "Unknown"}
        report = {"requestId": p["requestId"], "messageInfo": found, "tbc": False}
        self.host.after_reply(functools.partial(self._notify, report))
        return {"status": "Accepted"}

    def _notify(self, report: dict[str, Any], now: float) -> None:
        self.host.send("NotifyDisplayMessages", report, now)

    def clear_message(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        return {"status": "Accepted" if self.messages.pop(p["id"], None) is not None else "Unknown"}

    def data_transfer(self, p: dict[str, Any], now: float) -> dict[str, Any] | None:
        """1.6: ``org.chargetwin`` Set/ClearDisplayMessage (data: the 2.0.1 payload as JSON); None: not ours."""
        if p.get("vendorId") != VENDOR_ID or p.get("messageId") not in ("SetDisplayMessage", "ClearDisplayMessage"):
            return None
        try:
            data = json.loads(p.get("data") or "")
            answer = (
                self.set_message(data, now) if p["messageId"] == "SetDisplayMessage" else self.clear_message(data, now)
            )
        except (ValueError, KeyError, TypeError):
            return {"status": "Rejected", "data": json.dumps({"status": "Rejected"})}
        return {"status": "Accepted", "data": json.dumps(answer)}

    # ---- the screen -------------------------------------------------------------------------------------
    def shown(self, now: float) -> dict[str, Any] | None:
        """The message on the screen at ``now`` (its MessageContentType), or None."""
        self._forget_ended(now)
        state = self.host.display_state()
        live = [m for m in self.messages.values() if self._due(m, now, state)]
        for priority in ("AlwaysFront", "InFront"):
            front = [m for m in live if m.priority == priority]
            if front:
                return max(front, key=lambda m: (m.set_at, m.id)).content
        cycle = sorted((m for m in live if m.priority == "NormalCycle"), key=lambda m: m.id)
        if not cycle:
            return None
        return cycle[int(now // CYCLE_S) % len(cycle)].content

    def _due(self, message: Message, now: float, state: str) -> bool:
        start, _ = message.window()
        if start is not None and now < start:
            return False
        return message.state is None or message.state == state

    def _forget_ended(self, now: float) -> None:
        """A message past its end, or set for a transaction that has ended, is removed (O01.FR.x)."""
        running = self.host.running_transaction_ids()
        for message in list(self.messages.values()):
            _, end = message.window()
            ended = end is not None and now >= end
            if ended or (message.transaction_id is not None and message.transaction_id not in running):
                del self.messages[message.id]
