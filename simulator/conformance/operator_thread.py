"""The operator from a synchronous case: its coroutines run on an event loop of their own in a daemon thread,
so a case keeps serving its station's socket while the CSMS works on the operator's request (chargetwin's API,
for one, answers a call only once the station has answered it)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from csms.ocpp.framing import Call, CallResult
from simulator.conformance.station import Answer, NotRun, StationUnderTest
from simulator.operators.base import Capability, Operator, OperatorError

T = TypeVar("T")

#: How long provisioning through the operator may take before the case gives up on it.
PROVISION_TIMEOUT_S = 30.0


class OperatorJob:
    """A request the operator is working on; the case goes on serving its station meanwhile."""

    def __init__(self, what: str, future: Future[Any]) -> None:
        self.what, self.future = what, future

    def outcome(self, station: StationUnderTest, timeout: float | None = None) -> Any:
        """Wait (serving the station) until the operator is done; its failure fails the case. Returns what the
        operator returned (a :class:`~simulator.operators.base.CallOutcome` for a request)."""
        station.run_until(
            lambda: True if self.future.done() else None, f"waiting for the operator to {self.what}", timeout
        )
        try:
            return self.future.result()
        except OperatorError as exc:
            station.fail(f"the operator could not {self.what}: {exc}")
            raise AssertionError("unreachable") from exc


class OperatorThread:
    """One operator adapter (or none) behind a synchronous door."""

    def __init__(self, operator: Operator | None, reason_if_none: str = "no operator configured") -> None:
        self.operator = operator
        self.reason_if_none = reason_if_none
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="conformance operator", daemon=True)
        self._thread.start()

    @property
    def name(self) -> str:
        return self.operator.name if self.operator is not None else "none"

    def cannot(self, capability: Capability, action: str | None = None) -> str | None:
        if self.operator is None:
            return self.reason_if_none
        return self.operator.cannot(capability, action)

    def _submit(self, coroutine: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def _operator(self, capability: Capability, action: str | None = None) -> Operator:
        reason = self.cannot(capability, action)
        if reason is not None or self.operator is None:
            raise NotRun(reason or self.reason_if_none)
        return self.operator

    # ---- what cases ask ---------------------------------------------------------------------------------
    def request(self, station: StationUnderTest, action: str, payload: dict[str, Any]) -> OperatorJob:
        """Ask the CSMS to send ``station`` the CALL ``action`` (the case then waits for it on the socket).

        Raises:
            NotRun: the operator cannot make the CSMS send it.
        """
        operator = self._operator("send_call", action)
        what = f"make the CSMS send {action} to {station.station_id}"
        future = self._submit(operator.send_call(station.station_id, action, payload, timeout_s=station.target.wait_s))
        job = OperatorJob(what, future)
        future.add_done_callback(lambda f: _note_failure(station, what, f))
        return job

    def command(
        self, station: StationUnderTest, action: str, payload: dict[str, Any], reply: Answer | None = None
    ) -> Call:
        """The operator makes the CSMS send ``action``; the station answers ``reply`` for this call (None: as it
        would anyway). Returns the CALL as it arrived, once the operator is done; when the CSMS tells the operator
        what the station answered, that must be what the station said.

        Raises:
            NotRun: the operator cannot make the CSMS send it.
        """
        before = station.answer_for(action)
        if reply is not None:
            station.answer(action, reply)
        try:
            job = self.request(station, action, payload)
            call = station.wait_call(action)
            outcome = job.outcome(station)
        finally:
            if reply is not None:
                station.answer(action, before)
        given, told = station.answer_to(call.unique_id), getattr(outcome, "response", None)
        if isinstance(given, CallResult) and told is not None and told != given.payload:
            station.fail(f"the station answered {action} with {given.payload}, the CSMS reports {told}")
        return call

    def provision_station(self, station_id: str, version: str, password: str | None) -> bool:
        """Make the station known when the operator can; False when it cannot (the given ids are used)."""
        if self.cannot("provision_station") is not None or self.operator is None:
            return False
        self._submit(self.operator.provision_station(station_id, version, password)).result(PROVISION_TIMEOUT_S)
        return True

    def provision_token(self, id_token: str, status: str = "Accepted", group: str | None = None) -> bool:
        if self.cannot("provision_token") is not None or self.operator is None:
            return False
        self._submit(self.operator.provision_token(id_token, status=status, group=group)).result(PROVISION_TIMEOUT_S)
        return True

    def install_contract_root(self, pem: str, kind: str = "MO") -> bool:
        """Make the CSMS trust a contract-certificate root when the operator can; False when it cannot."""
        if self.cannot("install_contract_root") is not None or self.operator is None:
            return False
        self._submit(self.operator.install_contract_root(pem, kind=kind)).result(PROVISION_TIMEOUT_S)
        return True

    def configure(self, station: StationUnderTest, setting: str, **values: Any) -> None:
        """Change how the CSMS treats the station (:data:`~simulator.operators.base.SETTINGS`), waiting for it.

        Raises:
            NotRun: the operator cannot.
        """
        operator = self._operator("configure", setting)
        future = self._submit(operator.configure(station.station_id, setting, **values))
        OperatorJob(f"configure {setting} {values}", future).outcome(station)

    def close(self) -> None:
        if self.operator is not None:
            with contextlib.suppress(Exception):  # closing at the end of a run must not hide its results
                self._submit(self.operator.close()).result(5.0)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5.0)


def _note_failure(station: StationUnderTest, what: str, future: Future[Any]) -> None:
    exc = future.exception()
    if exc is not None:
        station.failures.append(f"the operator could not {what}: {exc}")
