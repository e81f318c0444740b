"""The CSMS a Python user writes with the ``ocpp`` package in an afternoon, for 1.6 and 2.0.1, kept in memory.

It is the suite's reference point, not a product: it boots stations (Accepted, heartbeat every
:data:`HEARTBEAT_S`), answers heartbeats, statuses, meter values and transactions, accepts the id tokens it was
given and nothing else, and refuses every other message of a station that has not booted (SecurityError, as
2.0.1 B02.FR.09 asks and 1.6 allows). Its :class:`Mutation` hooks let :mod:`.mutants` break one rule at a
time, on the frames it sends (the ``ocpp`` package builds them) or on its own behaviour.

    ./run python -m simulator.conformance.reference.serve --port 9000 --operator-port 9001 --id-token TAG1
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call_result as result201
from websockets.asyncio.server import Server, ServerConnection
from websockets.typing import Subprotocol

HEARTBEAT_S = 60
#: The ``ocpp`` package logs a traceback for every action without a handler; answering NotImplemented is enough.
QUIET = logging.getLogger("chargetwin.minimal_csms")
QUIET.setLevel(logging.CRITICAL)
SUBPROTOCOLS = [Subprotocol("ocpp2.0.1"), Subprotocol("ocpp1.6")]


@dataclass
class Mutation:
    """One way to be wrong. ``outgoing`` rewrites a frame the CSMS sends (None drops it); ``delay_s`` holds
    answers to ``delay_action`` back; ``serve_before_boot`` answers a station that never booted."""

    name: str
    description: str
    outgoing: Callable[[list[Any], str | None], list[Any] | None] | None = None
    delay_action: str | None = None
    delay_s: float = 0.0
    serve_before_boot: bool = False


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class Memory:
    """What the CSMS knows: the tokens it accepts, and the transactions it stored."""

    id_tokens: dict[str, str] = field(default_factory=dict)  # token -> status (Accepted, Blocked, …)
    transactions: dict[str, dict[str, Any]] = field(default_factory=dict)
    accepted: set[str] = field(default_factory=set)  # stations booted and accepted (a reconnect needs no new boot)
    boot_answers: dict[str, str] = field(default_factory=dict)  # station -> Pending / Rejected, set by the operator
    connected: dict[str, Any] = field(default_factory=dict)  # station -> its ChargePoint while connected

    def boot_status(self, station_id: str) -> str:
        return self.boot_answers.get(station_id, "Accepted")

    next_id: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def status_of(self, token: str) -> str:
        return self.id_tokens.get(token, "Invalid")


class _Wire:
    """The connection as the ``ocpp`` package sees it: frames in and out pass the mutation and the boot gate."""

    def __init__(
        self, connection: ServerConnection, mutation: Mutation | None, memory: Memory, station_id: str
    ) -> None:
        self.connection, self.mutation, self.memory, self.station_id = connection, mutation, memory, station_id
        self.actions: dict[str, str] = {}  # message id of the station's CALL -> action

    async def recv(self) -> str:
        while True:
            text = await self.connection.recv()
            text = text if isinstance(text, str) else text.decode()
            frame = _loads(text)
            if not (isinstance(frame, list) and len(frame) >= 3 and frame[0] == 2):
                return text
            self.actions[str(frame[1])] = str(frame[2])
            allowed = frame[2] == "BootNotification" or (self.mutation and self.mutation.serve_before_boot)
            if self.station_id in self.memory.accepted or allowed:
                return text
            refusal = [4, frame[1], "SecurityError", "the station has not been accepted (BootNotification first)", {}]
            await self.connection.send(orjson.dumps(refusal).decode())

    async def send(self, text: str) -> None:
        frame = orjson.loads(text)
        action = self.actions.pop(str(frame[1]), None) if frame[0] in (3, 4) else None
        if action == "BootNotification" and frame[0] == 3:
            if frame[2].get("status") == "Accepted":
                self.memory.accepted.add(self.station_id)
            else:  # a new boot answered Pending or Rejected ends the earlier acceptance
                self.memory.accepted.discard(self.station_id)
        mutation = self.mutation
        if mutation is not None and mutation.delay_s and action == mutation.delay_action:
            await asyncio.sleep(mutation.delay_s)
        if mutation is not None and mutation.outgoing is not None:
            changed = mutation.outgoing(frame, action)
            if changed is None:
                return
            text = orjson.dumps(changed).decode()
        await self.connection.send(text)


def _loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


class Station16(ChargePoint16):
    def __init__(self, station_id: str, wire: _Wire, memory: Memory) -> None:
        super().__init__(station_id, wire, logger=QUIET)
        self.memory = memory

    @on("BootNotification")
    def boot(self, **_: Any) -> Any:
        status = self.memory.boot_status(self.id)
        return result16.BootNotification(current_time=_now(), interval=HEARTBEAT_S, status=status)

    @on("Heartbeat")
    def heartbeat(self) -> Any:
        return result16.Heartbeat(current_time=_now())

    @on("StatusNotification")
    def status(self, **_: Any) -> Any:
        return result16.StatusNotification()

    @on("Authorize")
    def authorize(self, id_tag: str) -> Any:
        return result16.Authorize(id_tag_info={"status": self.memory.status_of(id_tag)})

    @on("StartTransaction")
    def start_transaction(self, connector_id: int, id_tag: str, meter_start: int, timestamp: str, **_: Any) -> Any:
        tx_id = next(self.memory.next_id)
        self.memory.transactions[str(tx_id)] = {"station": self.id, "start_wh": meter_start, "stop_wh": None}
        return result16.StartTransaction(transaction_id=tx_id, id_tag_info={"status": self.memory.status_of(id_tag)})

    @on("StopTransaction")
    def stop_transaction(self, meter_stop: int, timestamp: str, transaction_id: int, **_: Any) -> Any:
        tx = self.memory.transactions.get(str(transaction_id))
        if tx is not None:
            tx["stop_wh"] = meter_stop
        return result16.StopTransaction()

    @on("MeterValues")
    def meter_values(self, **_: Any) -> Any:
        return result16.MeterValues()

    @on("DataTransfer")
    def data_transfer(self, **_: Any) -> Any:
        return result16.DataTransfer(status="UnknownVendorId")

    @on("FirmwareStatusNotification")
    def firmware_status(self, **_: Any) -> Any:
        return result16.FirmwareStatusNotification()

    @on("DiagnosticsStatusNotification")
    def diagnostics_status(self, **_: Any) -> Any:
        return result16.DiagnosticsStatusNotification()


class Station201(ChargePoint201):
    def __init__(self, station_id: str, wire: _Wire, memory: Memory) -> None:
        super().__init__(station_id, wire, logger=QUIET)
        self.memory = memory

    @on("BootNotification")
    def boot(self, **_: Any) -> Any:
        status = self.memory.boot_status(self.id)
        return result201.BootNotification(current_time=_now(), interval=HEARTBEAT_S, status=status)

    @on("Heartbeat")
    def heartbeat(self) -> Any:
        return result201.Heartbeat(current_time=_now())

    @on("StatusNotification")
    def status(self, **_: Any) -> Any:
        return result201.StatusNotification()

    @on("Authorize")
    def authorize(self, id_token: dict[str, Any], **_: Any) -> Any:
        return result201.Authorize(id_token_info={"status": self.memory.status_of(id_token["id_token"])})

    @on("TransactionEvent")
    def transaction_event(self, event_type: str, transaction_info: dict[str, Any], **kwargs: Any) -> Any:
        tx = self.memory.transactions.setdefault(transaction_info["transaction_id"], {"station": self.id})
        tx["last_event"] = event_type
        token = kwargs.get("id_token")
        if token is None:
            return result201.TransactionEvent()
        return result201.TransactionEvent(id_token_info={"status": self.memory.status_of(token["id_token"])})

    @on("MeterValues")
    def meter_values(self, **_: Any) -> Any:
        return result201.MeterValues()

    @on("NotifyReport")
    def notify_report(self, **_: Any) -> Any:
        return result201.NotifyReport()

    @on("NotifyEvent")
    def notify_event(self, **_: Any) -> Any:
        return result201.NotifyEvent()

    @on("FirmwareStatusNotification")
    def firmware_status(self, **_: Any) -> Any:
        return result201.FirmwareStatusNotification()

    @on("LogStatusNotification")
    def log_status(self, **_: Any) -> Any:
        return result201.LogStatusNotification()

    @on("SecurityEventNotification")
    def security_event(self, **_: Any) -> Any:
        return result201.SecurityEventNotification()

    @on("DataTransfer")
    def data_transfer(self, **_: Any) -> Any:
        return result201.DataTransfer(status="UnknownVendorId")


async def serve(
    host: str, port: int, *, id_tokens: Iterable[str] = (), mutation: Mutation | None = None
) -> tuple[Server, Memory]:
    """Listen at ``ws://host:port/<anything>/<station id>`` for 1.6 and 2.0.1 stations."""
    memory = Memory(dict.fromkeys(id_tokens, "Accepted"))

    async def on_connect(connection: ServerConnection) -> None:
        assert connection.request is not None
        station_id = connection.request.path.rstrip("/").rsplit("/", 1)[-1]
        wire = _Wire(connection, mutation, memory, station_id)
        kind: type[Station16] | type[Station201] = Station201 if connection.subprotocol == "ocpp2.0.1" else Station16
        station = kind(station_id, wire, memory)
        memory.connected[station_id] = station
        try:
            with contextlib.suppress(websockets.ConnectionClosed):
                await station.start()
        finally:
            if memory.connected.get(station_id) is station:
                del memory.connected[station_id]

    server = await websockets.serve(on_connect, host, port, subprotocols=SUBPROTOCOLS)
    return server, memory
