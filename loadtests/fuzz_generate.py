"""Hostile OCPP-J frames, drawn from a seeded ``random.Random``: the same seed gives the same frames.

Each draw is one frame (its bytes, whether it goes as a binary WebSocket frame, and the category it was made
for). Categories: bad JSON, wrong types, wrong message type ids, deep nesting, binary frames, answers to
calls never made, actions of the other OCPP version, schema-violating payloads of real actions, raw
mutations of valid frames (bit flips, truncation, duplicated fields, huge numbers, unicode oddities), valid
calls (so stations also do real work), and, drawn by the caller on a connection of their own, oversized
frames and text frames of invalid UTF-8. What the CSMS must answer is decided apart, by ``fuzz_oracle``.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

#: Category -> weight of the everyday mix (each frame of it is answered or ignored, never closes).
MIX: dict[str, int] = {
    "bad_json": 12,
    "wrong_types": 10,
    "wrong_type_id": 6,
    "deep": 4,
    "binary": 6,
    "unknown_answer": 8,
    "wrong_version": 6,
    "schema": 18,
    "mutation": 24,
    "valid": 1,  # valid calls cost the CSMS a database transaction each: a few, so the fuzz stays a fuzz
}
#: Categories that end the connection (sent last on it, then the fuzzer connects again).
CLOSING = ("oversized", "bad_utf8")
OTHER_VERSION = {"1.6": "2.0.1", "2.0.1": "1.6"}
ODDITIES = ["\u0000", "\u202e", "\ufeff", "\U0001f50c", "e\u0301", "\u2028", "\uffff", "\\ud800", "\\udc00x", "𝒜"]
HUGE_NUMBERS = ["1e400", "-1e400", "1.7976931348623157e308", "-1.7976931348623157e308", "9" * 60, "-0", "1e-400", "NaN"]


def _ts(offset_s: float = 0.0) -> str:
    return (datetime(2026, 1, 15, 22, 0, tzinfo=UTC) + timedelta(seconds=offset_s)).isoformat().replace("+00:00", "Z")


def valid_calls(version: str) -> list[tuple[str, dict[str, Any]]]:
    """Calls a booted station may send; none of them starts a transaction (the fuzz stations hold none)."""
    if version == "1.6":
        sample = {"value": "1200", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
        return [
            ("Heartbeat", {}),
            (
                "StatusNotification",
                {"connectorId": 1, "errorCode": "NoError", "status": "Available", "timestamp": _ts()},
            ),
            ("Authorize", {"idTag": "FUZZTAG"}),
            ("MeterValues", {"connectorId": 1, "meterValue": [{"timestamp": _ts(1), "sampledValue": [sample]}]}),
            ("DataTransfer", {"vendorId": "com.fuzz", "messageId": "m", "data": "d"}),
            ("FirmwareStatusNotification", {"status": "Idle"}),
        ]
    sample201: dict[str, Any] = {
        "value": 1.2,
        "measurand": "Energy.Active.Import.Register",
        "unitOfMeasure": {"unit": "kWh"},
    }
    return [
        ("Heartbeat", {}),
        ("StatusNotification", {"timestamp": _ts(), "connectorStatus": "Available", "evseId": 1, "connectorId": 1}),
        ("Authorize", {"idToken": {"idToken": "FUZZTAG", "type": "ISO14443"}}),
        ("MeterValues", {"evseId": 1, "meterValue": [{"timestamp": _ts(1), "sampledValue": [sample201]}]}),
        ("DataTransfer", {"vendorId": "com.fuzz", "messageId": "m", "data": {"k": [1, 2]}}),
        ("FirmwareStatusNotification", {"status": "Idle"}),
    ]


def boot_call(version: str) -> tuple[str, dict[str, Any]]:
    if version == "1.6":
        return "BootNotification", {"chargePointVendor": "Fuzz", "chargePointModel": "F1"}
    return "BootNotification", {"chargingStation": {"vendorName": "Fuzz", "model": "F1"}, "reason": "PowerUp"}


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


class FrameFactory:
    def __init__(self, version: str, seed: int, prefix: str) -> None:
        self.version = version
        self.rng = random.Random(seed)
        self.prefix = prefix
        self.count = 0
        self.calls = valid_calls(version)
        self.foreign = [action for action, _ in valid_calls(OTHER_VERSION[version])] + [
            "StartTransaction" if version == "2.0.1" else "TransactionEvent",
            "StopTransaction" if version == "2.0.1" else "NotifyReport",
            "DiagnosticsStatusNotification" if version == "2.0.1" else "LogStatusNotification",
        ]
        self._categories = list(MIX)
        self._weights = list(MIX.values())

    def next_id(self) -> str:
        self.count += 1
        return f"{self.prefix}{self.count:x}"

    def draw(self, category: str | None = None) -> tuple[bytes, bool, str]:
        """(frame, binary, category) of ``category`` or one of the mix."""
        category = category or self.rng.choices(self._categories, self._weights)[0]
        frame, binary = getattr(self, f"_{category}")()
        return frame, binary, category

    def valid(self) -> tuple[str, dict[str, Any]]:
        action, payload = self.rng.choice(self.calls)
        return action, json.loads(json.dumps(payload))

    def call(self, action: str, payload: Any) -> bytes:
        return _dumps([2, self.next_id(), action, payload])

    # ---- the categories --------------------------------------------------------------------------------------
    def _valid(self) -> tuple[bytes, bool]:
        return self.call(*self.valid()), False

    def _bad_json(self) -> tuple[bytes, bool]:
        rng = self.rng
        choice = rng.randrange(6)
        if choice == 0:
            return bytes(rng.randrange(32, 127) for _ in range(rng.randrange(1, 60))), False
        if choice == 1:  # a valid frame cut short
            frame = self.call(*self.valid())
            return frame[: rng.randrange(1, len(frame))], False
        if choice == 2:
            return rng.choice([b"", b" ", b"[", b"]", b"{}}", b"[2,", b"null,", b'[2 "a"]', b"'[2]'"]), False
        if choice == 3:  # what Python's json would accept and RFC 8259 does not
            constant = rng.choice(["NaN", "Infinity", "-Infinity"])
            return f'[2,"{self.next_id()}","DataTransfer",{{"vendorId":"v","x":{constant}}}]'.encode(), False
        if choice == 4:
            return b'[2,"' + self.next_id().encode() + b'","Heartbeat",{}],', False
        return f'[2,"{self.next_id()}","Heartbeat",{{"a":1,}}]'.encode(), False

    def _wrong_types(self) -> tuple[bytes, bool]:
        rng, uid = self.rng, self.next_id()
        action, payload = self.valid()
        shapes: list[Any] = [
            {"message": [2, uid, action, payload]},
            [2, rng.choice([None, 7, 1.5, True, [], {}, "", "x" * 37]), action, payload],
            [2, uid, rng.choice([None, 7, [], {}, ""]), payload],
            [2, uid, action, rng.choice([None, 7, "payload", [], [payload]])],
            [2, uid, action],
            [2, uid, action, payload, {}],
            [],
            rng.choice([None, 2, "frame", True, 1.5]),
            [3, uid],
            [3, uid, [], {}],
            [4, uid, "GenericError"],
        ]
        return _dumps(rng.choice(shapes)), False

    def _wrong_type_id(self) -> tuple[bytes, bool]:
        rng = self.rng
        action, payload = self.valid()
        type_id = rng.choice([0, 1, 5, 6, -2, 99, 2**40, 2.0, "2", True, None, [2]])
        return _dumps([type_id, self.next_id(), action, payload]), False

    def _deep(self) -> tuple[bytes, bool]:
        rng = self.rng
        # Not within 900-1100: orjson (the CSMS) reads up to 1,024 levels, Python's json (the oracle) about 1,000.
        depth = rng.choice([33, 34, 40, 100, 255, 300, 2000, rng.randrange(33, 900), rng.randrange(1100, 5000)])
        if rng.random() < 0.5:  # a bare pile of brackets
            return b"[" * depth + b"]" * depth, False
        inner = "[" * depth + "1" + "]" * depth
        return f'[2,"{self.next_id()}","DataTransfer",{{"vendorId":"v","data":{inner}}}]'.encode(), False

    def _binary(self) -> tuple[bytes, bool]:
        rng = self.rng
        if rng.random() < 0.2:
            return self.call(*self.valid()), True
        if rng.random() < 0.5:
            return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80))), True
        frame = self._mutation()[0]
        return frame, True

    def _unknown_answer(self) -> tuple[bytes, bool]:
        uid = self.next_id()
        if self.rng.random() < 0.5:
            return _dumps([3, uid, {"status": "Accepted"}]), False
        return _dumps([4, uid, "GenericError", "no such call", {}]), False

    def _wrong_version(self) -> tuple[bytes, bool]:
        action = self.rng.choice(self.foreign)
        return self.call(action, {"connectorId": 1}), False

    def _schema(self) -> tuple[bytes, bool]:
        rng = self.rng
        action, payload = self.valid()
        keys = list(payload)
        choice = rng.randrange(5)
        if choice == 0 or not keys:
            payload["zzUnexpected"] = rng.choice([1, "x", None, [], {}])
        elif choice == 1:
            del payload[rng.choice(keys)]
        elif choice == 2:
            key = rng.choice(keys)
            payload[key] = rng.choice([12345, "text", None, True, [], {}, -1.5])
        elif choice == 3:
            payload[rng.choice(keys)] = "x" * rng.choice([51, 256, 2000])
        else:
            payload[rng.choice(keys)] = "NoSuchValue"
        return self.call(action, payload), False

    def _mutation(self) -> tuple[bytes, bool]:
        rng = self.rng
        frame = bytearray(self.call(*self.valid()))
        choice = rng.randrange(6)
        if choice == 0:  # bit flips (the top bit rarely: invalid UTF-8 closes the connection, see CLOSING)
            for _ in range(rng.randrange(1, 4)):
                at = rng.randrange(len(frame))
                frame[at] ^= 1 << rng.randrange(8 if rng.random() < 0.05 else 7)
        elif choice == 1:  # truncation, or a slice out of the middle
            cut = rng.randrange(1, len(frame))
            frame = frame[:cut] if rng.random() < 0.5 else frame[: cut // 2] + frame[cut:]
        elif choice == 2:  # a field written twice (the last one wins in JSON)
            action, payload = self.valid()
            key = rng.choice(list(payload) or ["k"])
            duplicate = f'"{key}":{json.dumps(rng.choice([1, "x", None, [], {}]))},'
            frame = bytearray(self.call(action, payload).replace(b"{", b"{" + duplicate.encode(), 2))
        elif choice == 3:  # huge or odd numbers where numbers go (and where they don't)
            number = rng.choice(HUGE_NUMBERS)
            action, payload = self.valid()
            key = rng.choice(list(payload) or ["connectorId"])
            text = self.call(action, {**payload, key: "@N@"}).decode().replace('"@N@"', number)
            frame = bytearray(text.encode())
        elif choice == 4:  # unicode oddities in strings, ids and action names
            oddity = rng.choice(ODDITIES)
            text = frame.decode()
            at = rng.choice([i for i, ch in enumerate(text) if ch == '"'] or [0])
            frame = bytearray((text[: at + 1] + oddity + text[at + 1 :]).encode("utf-8", "surrogatepass"))
        else:  # a random byte inserted or deleted
            at = rng.randrange(len(frame))
            if rng.random() < 0.5:
                frame.insert(at, rng.randrange(256 if rng.random() < 0.05 else 128))
            else:
                del frame[at]
        return bytes(frame), False

    def _oversized(self) -> tuple[bytes, bool]:
        size = 256 * 1024 + self.rng.randrange(1, 4096)
        body = b"x" * (size - 60)
        return b'[2,"' + self.next_id().encode() + b'","DataTransfer",{"vendorId":"v","data":"' + body + b'"}]', False

    def _bad_utf8(self) -> tuple[bytes, bool]:
        bad = self.rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"])
        return b'[2,"' + self.next_id().encode() + b'","Heartbeat",{"x":"' + bad + b'"}]', False
