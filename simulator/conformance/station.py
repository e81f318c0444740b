"""The station under test: the twin's charger firmware on a real WebSocket, driven step by step by a case.

A case is plain synchronous code. Every wait (:meth:`StationUnderTest.wait_call`, :meth:`~StationUnderTest.
wait_result`, :meth:`~StationUnderTest.call`, …) runs the connection until what it waits for has happened or its
timeout has passed: frames from the CSMS go to the firmware (which answers them as the station would, unless the
case set its own answer with :meth:`~StationUnderTest.answer`), the firmware's frames go out, its timers fire.
Every frame is logged and checked (:class:`~.checks.FrameChecker`); a violation, a CALLERROR where an answer was
due, or a timeout fails the case with the exact frames (:class:`CaseFailed`).

This module is a shell: it reads the wall clock (the firmware's ``now``) and owns a socket.
"""

from __future__ import annotations

import random
import ssl
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from csms.ocpp import framing
from csms.ocpp.errors import FrameError
from csms.ocpp.framing import Call, CallError, CallResult
from csms.ocpp.versions import VERSION_SUBPROTOCOL, Version, parse_version
from csms.pki import build
from simulator.conformance.checks import FrameChecker, Violation
from simulator.conformance.frames import FrameLog
from simulator.links.offer import basic_auth
from simulator.station.charger import Charger
from simulator.station.registration import StationIdentity

#: Power a plugged vehicle draws while the station energizes it [W] (what the meter reports).
CHARGING_W = 7_400.0
#: Without a socket the loop still serves the firmware's timers at this pace.
IDLE_POLL_S = 0.02
#: A wait re-checks its condition at least this often (it may be the operator's thread, not a frame, that ends it).
WAIT_POLL_S = 0.05

#: How the case answers a CSMS call: a payload, a CallError (its unique id is replaced by the call's), or a
#: function of the call returning either.
Answer = dict[str, Any] | CallError | Callable[[Call], dict[str, Any] | CallError]


class CaseFailed(AssertionError):
    """The CSMS did something the case forbids (or nothing where it must act); the message quotes the frames."""


class NotRun(Exception):
    """The case cannot run here (the operator cannot trigger what it needs, a setting is missing)."""


@dataclass(frozen=True, slots=True)
class Target:
    """The CSMS under test and how patient to be with it."""

    url: str  # ws://host:port/path, the station id is appended
    version: Version
    reply_timeout_s: float = 10.0  # how long the station waits for an answer to its CALL
    wait_s: float = 15.0  # how long a case waits for something the CSMS must do on its own or by the operator
    open_timeout_s: float = 10.0  # TCP, TLS and the HTTP upgrade together
    tls_url: str | None = None  # the CSMS's wss:// endpoint (security profiles 2 and 3), when it has one
    ca_file: str | None = None  # trust anchor for the CSMS's server certificate
    client_cert: str | None = None  # the station's certificate and key (security profile 3)
    client_key: str | None = None
    #: The station CA (certificate and key, PEM files): each station gets a certificate naming its own id,
    #: as a manufacturer would install it (profile 3); used instead of ``client_cert``.
    client_ca_cert: str | None = None
    client_ca_key: str | None = None

    @property
    def has_client_certificate(self) -> bool:
        return self.client_cert is not None or self.client_ca_cert is not None

    @classmethod
    def parse(cls, url: str, version: str, **kwargs: Any) -> Target:
        if not url.startswith(("ws://", "wss://")):
            raise ValueError(f"--csms must be a ws:// or wss:// URL, not {url!r}")
        return cls(url.rstrip("/"), parse_version(version), **kwargs)


@dataclass(slots=True)
class SteadyMeter:
    """The station's meter: every energizing connector draws :data:`CHARGING_W`; energy integrates wall time."""

    charger: Charger | None = None
    energy: dict[int, float] = field(default_factory=dict)
    last: float = 0.0
    soc_percent: float | None = 40.0

    def advance(self, now: float) -> None:
        if self.charger is not None and self.last:
            hours = max(0.0, now - self.last) / 3600.0
            for cid in self.charger.connectors:
                if self.charger.is_energizing(cid):
                    self.energy[cid] = self.energy.get(cid, 0.0) + CHARGING_W * hours
        self.last = now

    def energy_wh(self, connector_id: int) -> float:
        return round(self.energy.get(connector_id, 0.0), 1)

    def power_w(self, connector_id: int) -> float:
        return CHARGING_W if self.charger is not None and self.charger.is_energizing(connector_id) else 0.0

    def current_a(self, connector_id: int) -> tuple[float, ...]:
        amps = round(self.power_w(connector_id) / (3 * 230.0), 2)
        return (amps, amps, amps)

    def voltage_v(self, connector_id: int) -> float:
        return 230.0

    def soc(self, connector_id: int) -> float | None:
        return self.soc_percent


class StationUnderTest:
    """One station of a case: its firmware, its socket, its frame log and the checks on every CSMS frame."""

    def __init__(
        self,
        target: Target,
        station_id: str,
        *,
        password: str | None = None,
        connectors: int = 1,
        config: dict[str, str] | None = None,
        identity: StationIdentity | None = None,
        seed: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.target, self.station_id, self.password = target, station_id, password
        self.version = target.version
        self.clock = clock
        self.t0 = clock()
        self.meter = SteadyMeter()
        self.charger = Charger(
            station_id,
            target.version,
            meter=self.meter,
            rng=random.Random(seed),
            connectors=connectors,
            config=config,
            identity=identity or StationIdentity(vendor="chargetwin", model="conformance", serial_number=station_id),
            call_timeout_s=target.reply_timeout_s,
            reset_delay_s=0.2,
            reboot_s=1.0,
            boot_retry_s=5.0,
        )
        self.meter.charger = self.charger
        self.checker = FrameChecker(target.version, target.reply_timeout_s)
        self.log = FrameLog()
        self.ws: ClientConnection | None = None
        self.auto_reconnect = False  # the case connects first; from then on the station reconnects as it would
        self.close_code: int | None = None  # how the CSMS last closed the connection
        self._answers: dict[str, Answer] = {}
        self._calls: list[Call] = []  # the CSMS's CALLs, in order
        self._calls_taken = 0
        self._taken_call_ids: set[str] = set()
        self._ours: list[tuple[str, str]] = []  # (message id, action) of every CALL we sent, in order
        self._answers_in: dict[str, CallResult | CallError] = {}
        self._taken_answers: set[str] = set()
        self.failures: list[str] = []  # operator jobs and other trouble worth quoting in a verdict

    # ==== the link ===========================================================================================
    @property
    def url(self) -> str:
        return f"{self.target.url}/{self.station_id}"

    @property
    def connected(self) -> bool:
        return self.ws is not None

    def now(self) -> float:
        return self.clock()

    def elapsed(self) -> float:
        return self.clock() - self.t0

    def connect(self, *, password: str | None = None, subprotocols: list[str] | None = None) -> None:
        """Open the WebSocket (fails the case if the CSMS refuses the handshake)."""
        status = self.try_connect(password=password, subprotocols=subprotocols)
        if status is not None:
            self.fail(f"the CSMS refused the WebSocket handshake of {self.url}: {status}")

    def try_connect(
        self,
        *,
        password: str | None = None,
        subprotocols: list[str] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> str | None:
        """Open the WebSocket; returns None when open, else the refusal ("HTTP 401", "no listener: …").

        With ``tls`` (see :meth:`tls_context`) the station connects to the target's ``tls_url``."""
        secret = self.password if password is None else password
        headers = {"Authorization": basic_auth(self.station_id, secret)} if secret else {}
        offered = subprotocols or [VERSION_SUBPROTOCOL[self.version]]
        url = self.url
        if tls is not None:
            if self.target.tls_url is None:
                return self._refused("the CSMS offers no TLS endpoint (give --csms-tls-url)")
            url = f"{self.target.tls_url.rstrip('/')}/{self.station_id}"
        try:
            ws = connect(
                url,
                ssl=tls,
                subprotocols=[Subprotocol(p) for p in offered],
                additional_headers=headers,
                open_timeout=self.target.open_timeout_s,
                compression=None,
                max_size=2**22,
                legacy=True,  # a case drives one connection by hand, outside a with-block
            )
        except InvalidStatus as exc:
            return self._refused(f"HTTP {exc.response.status_code}")
        except (InvalidHandshake, ConnectionClosed, OSError, TimeoutError) as exc:  # closed: TLS 1.3 refusing a cert
            return self._refused(f"{type(exc).__name__}: {exc}")
        self.ws = ws
        self.auto_reconnect = True
        self.close_code = None
        self.log.note(self.elapsed(), f"connected ({ws.subprotocol})")
        if ws.subprotocol is not None and ws.subprotocol != VERSION_SUBPROTOCOL[self.version]:
            self.log.note(self.elapsed(), f"subprotocol {ws.subprotocol} agreed")
        self.charger.connected(self.now())
        self._flush()
        return None

    def tls_context(self, *, client_cert: bool = False) -> ssl.SSLContext:
        """A TLS 1.2+ client context trusting the target's CA file (security profile 2), with the station's
        certificate when ``client_cert`` (profile 3)."""
        context = ssl.create_default_context(cafile=self.target.ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if client_cert and self.target.client_ca_cert and self.target.client_ca_key:
            with tempfile.TemporaryDirectory(prefix="ct-station-") as where:
                cert_file, key_file = station_certificate(
                    Path(where), self.station_id, self.target.client_ca_cert, self.target.client_ca_key
                )
                context.load_cert_chain(cert_file, key_file)
        elif client_cert and self.target.client_cert:
            context.load_cert_chain(self.target.client_cert, self.target.client_key)
        return context

    def _refused(self, reason: str) -> str:
        self.log.note(self.elapsed(), f"handshake refused: {reason}")
        self.charger.connection_failed(self.now())
        return reason

    def disconnect(self) -> None:
        """The station closes the connection (as after a reboot or a network loss)."""
        ws, self.ws = self.ws, None
        if ws is not None:
            ws.close(1000)
            self.log.note(self.elapsed(), "closed by the station")
            self.checker.link_closed()
            self._forget_unanswered()
            self.charger.disconnected(self.now())

    def close(self) -> None:
        """End of the case: close without reconnecting."""
        self.auto_reconnect = False
        self.disconnect()

    # ==== what the case waits for ============================================================================
    def run_until(self, found: Callable[[], Any], what: str, timeout: float | None = None) -> Any:
        """Serve the connection until ``found()`` returns something other than None, or fail after ``timeout``."""
        limit = self.target.wait_s if timeout is None else timeout
        deadline = self.now() + limit
        while True:
            self.check()
            result = found()
            if result is not None:
                return result
            if self.failures:  # the operator gave up (refused request, unreachable API): nothing more will come
                self.fail(f"{what}: stopped, the operator failed")
            if self.now() >= deadline:
                self.fail(f"{what}: nothing within {limit:g} s")
            self._step(min(deadline, self.now() + WAIT_POLL_S))

    def idle(self, seconds: float) -> None:
        """Let ``seconds`` pass, serving the connection."""
        deadline = self.now() + seconds
        while self.now() < deadline:
            self._step(deadline)
        self.check()

    def wait_call(self, action: str, timeout: float | None = None) -> Call:
        """The CSMS's next CALL of ``action`` not yet taken (it may have arrived already); it is answered by the
        firmware or by :meth:`answer`."""
        return self.run_until(lambda: self._take_call(action), f"waiting for the CSMS to send {action}", timeout)

    def expect_no_call(self, seconds: float, *actions: str) -> None:
        """Fail if the CSMS sends a CALL (of one of ``actions``, or any) within ``seconds``."""
        seen = len(self._calls)
        self.idle(seconds)
        for call in self._calls[seen:]:
            if not actions or call.action in actions:
                self.fail(f"the CSMS sent {call.action} where the case expects none")

    def wait_result(self, action: str, timeout: float | None = None) -> dict[str, Any]:
        """The CSMS's answer to the station's next CALL of ``action`` (sent by the firmware or by :meth:`send`);
        a CALLERROR fails the case."""
        answer = self.wait_answer(action, timeout)
        if isinstance(answer, CallError):
            self.fail(f"the CSMS answered {action} with CALLERROR {answer.code}: {answer.description}")
        assert isinstance(answer, CallResult)
        return answer.payload

    def wait_answer(self, action: str, timeout: float | None = None) -> CallResult | CallError:
        """Like :meth:`wait_result`, but a CALLERROR is returned to the case, not failed."""
        limit = self.target.reply_timeout_s if timeout is None else timeout
        return self.run_until(lambda: self._take_answer(action), f"waiting for the CSMS to answer {action}", limit)

    def wait_sent(self, action: str, timeout: float | None = None) -> dict[str, Any]:
        """The payload of the station's next CALL of ``action`` (the firmware's) once it went out."""
        seen = {uid for uid, _ in self._ours}

        def sent() -> dict[str, Any] | None:
            for frame in reversed(self.log.frames):
                if frame.outgoing:
                    message = framing.decode(frame.text)
                    if isinstance(message, Call) and message.action == action and message.unique_id not in seen:
                        return message.payload
            return None

        return self.run_until(sent, f"waiting for the station to send {action}", timeout)

    def wait_closed(self, timeout: float | None = None) -> int:
        """Wait until the CSMS closes the connection; returns the close code."""
        self.auto_reconnect = False
        return self.run_until(
            lambda: self.close_code if self.ws is None else None, "waiting for the CSMS to close", timeout
        )

    # ==== the station's own calls ============================================================================
    def send(self, action: str, payload: dict[str, Any]) -> str:
        """Send a CALL the case composed (through the firmware's RPC endpoint: ids, one outstanding call)."""
        if not self.connected:
            self.fail(f"cannot send {action}: the station is not connected")
        self.charger.send(action, payload, self.now())
        self._flush()
        return self._ours[-1][0] if self._ours and self._ours[-1][1] == action else ""

    def call(self, action: str, payload: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Send a CALL and return the CSMS's CALLRESULT payload (a CALLERROR or no answer fails the case)."""
        self._skip_unanswered(action)
        self.send(action, payload)
        return self.wait_result(action, timeout)

    def call_answer(self, action: str, payload: dict[str, Any], timeout: float | None = None) -> CallResult | CallError:
        """Send a CALL and return the CSMS's answer, result or error."""
        self._skip_unanswered(action)
        self.send(action, payload)
        return self.wait_answer(action, timeout)

    def send_frame(self, text: str) -> None:
        """Send any text as a frame (malformed ones included): what the CSMS does with it is the case's check."""
        if self.ws is None:
            self.fail("cannot send a frame: the station is not connected")
            return
        self.ws.send(text)
        self.log.add(self.elapsed(), True, text)
        message = _decoded(text)
        if message is not None:
            self.checker.station_sent(text, self.elapsed())
        if isinstance(message, Call):
            self._ours.append((message.unique_id, message.action))

    def wait_frame(self, unique_id: str, timeout: float | None = None) -> CallResult | CallError:
        """The CSMS's answer to the frame with ``unique_id`` sent by :meth:`send_frame`."""
        limit = self.target.reply_timeout_s if timeout is None else timeout

        def answered() -> CallResult | CallError | None:
            answer = self._answers_in.get(unique_id)
            if answer is not None:
                self._taken_answers.add(unique_id)
            return answer

        return self.run_until(answered, f"waiting for the CSMS to answer message {unique_id!r}", limit)

    def answer(self, action: str, reply: Answer | None) -> None:
        """From now on answer the CSMS's ``action`` with ``reply`` (a payload, a :class:`CallError`, or a
        function of the CALL returning either) instead of the firmware; None gives it back to the firmware."""
        if reply is None:
            self._answers.pop(action, None)
        else:
            self._answers[action] = reply

    def answer_for(self, action: str) -> Answer | None:
        """The case's own answer to ``action`` in force (None: the firmware answers)."""
        return self._answers.get(action)

    def answer_to(self, unique_id: str) -> CallResult | CallError | None:
        """What the station answered the CSMS's CALL ``unique_id`` (None: nothing yet)."""
        for frame in self.log.frames:
            if frame.outgoing:
                message = _decoded(frame.text)
                if isinstance(message, CallResult | CallError) and message.unique_id == unique_id:
                    return message
        return None

    # ==== boot, and the physical world =======================================================================
    def boot(self, expect: str | None = "Accepted", timeout: float | None = None) -> dict[str, Any]:
        """Connect (if needed) and return the answer to the firmware's BootNotification, checking its status."""
        if not self.connected:
            self.connect()
        answer = self.wait_result("BootNotification", timeout)
        if expect is not None and answer.get("status") != expect:
            self.fail(f"BootNotification answered {answer.get('status')!r}, the case expects {expect!r}")
        return answer

    def ready(self) -> dict[str, Any]:
        """Boot accepted and every connector's first StatusNotification answered: the usual start of a case."""
        answer = self.boot()
        for _ in self.charger.connectors:
            self.wait_result("StatusNotification")
        return answer

    def act(self, event: Callable[[float], Any]) -> Any:
        """Apply a physical event to the firmware (``lambda now: station.charger.plug_in(1, None, now)``)."""
        self.meter.advance(self.now())
        result = event(self.now())
        self._flush()
        return result

    def plug_in(self, connector: int = 1, token: str | None = None, token_type: str = "ISO14443") -> None:
        self.act(lambda now: self.charger.plug_in(connector, token, now, token_type))

    def present_token(self, token: str, connector: int = 1, token_type: str = "ISO14443") -> None:
        self.act(lambda now: self.charger.present_token(connector, token, now, token_type))

    def unplug(self, connector: int = 1) -> None:
        self.act(lambda now: self.charger.unplug(connector, now))

    def fault(self, connector: int = 1, error_code: str = "GroundFailure") -> None:
        self.act(lambda now: self.charger.fault(connector, error_code, now))

    def transaction_id(self, connector: int = 1) -> int | str:
        """The id of the running transaction on ``connector`` (waits for the CSMS's id in 1.6)."""

        def known() -> int | str | None:
            tx = self.charger.transactions.get(connector)
            return None if tx is None else tx.transaction_id

        return self.run_until(known, f"waiting for a transaction id on connector {connector}")

    # ==== verdicts ===========================================================================================
    def check(self) -> None:
        """Fail the case if the CSMS broke a rule of :mod:`.checks` so far."""
        if self.checker.violations:
            first = self.checker.violations[0]
            self.fail(f"the CSMS broke a rule: {first.rule}")

    def fail(self, reason: str) -> None:
        extra = "".join(f"\n  {line}" for line in self.failures)
        raise CaseFailed(f"{reason}{extra}\nlast frames of {self.station_id} ({self.url}):\n{self.log.tail()}")

    # ==== the loop ===========================================================================================
    def _step(self, deadline: float) -> None:
        now = self.now()
        due = self.charger.next_deadline()
        until = deadline if due is None else min(deadline, due)
        if self.ws is not None:
            try:
                text = self.ws.recv(timeout=max(0.0, until - now))
            except TimeoutError:
                pass
            except ConnectionClosed as exc:
                self._lost(exc)
            else:
                if isinstance(text, bytes):  # OCPP-J frames are text frames (OCPP-J §4.1.2)
                    text = text.decode("utf-8", "replace")
                    self.checker.violations.append(Violation(self.elapsed(), text, "a binary WebSocket frame"))
                self._receive(text)
        else:
            time.sleep(max(0.0, min(until - now, IDLE_POLL_S)))
            if self.auto_reconnect and self.charger.wants_connection(self.now()):
                self.try_connect()
        now = self.now()
        self.meter.advance(now)
        due = self.charger.next_deadline()
        if due is not None and now >= due:
            self.charger.handle_timer(now)
        self._flush()

    def _receive(self, text: str) -> None:
        at = self.elapsed()
        self.log.add(at, False, text)
        message, _ = self.checker.csms_sent(text, at)
        if isinstance(message, Call):
            self._calls.append(message)
            own = self._answers.get(message.action)
            if own is not None:
                payload = own(message) if callable(own) else own
                reply: CallResult | CallError = (
                    CallError(message.unique_id, payload.code, payload.description, payload.details)
                    if isinstance(payload, CallError)
                    else CallResult(message.unique_id, payload)
                )
                self._send_text(framing.encode(reply))
                return
        elif isinstance(message, CallResult | CallError):
            self._answers_in[message.unique_id] = message
        self.charger.receive_frame(text, self.now())

    def _lost(self, exc: ConnectionClosed) -> None:
        self.ws = None
        self.close_code = exc.rcvd.code if exc.rcvd is not None else 1006
        self.log.note(self.elapsed(), f"closed by the CSMS ({self.close_code})")
        self.checker.link_closed()
        self._forget_unanswered()
        self.charger.disconnected(self.now())

    def _flush(self) -> None:
        for text in self.charger.frames_to_send():
            self._send_text(text)
        if self.charger.close_requested():
            self.disconnect()

    def _send_text(self, text: str) -> None:
        if self.ws is None:
            return
        try:
            self.ws.send(text)
        except ConnectionClosed as exc:
            self._lost(exc)
            return
        at = self.elapsed()
        self.log.add(at, True, text)
        self.checker.station_sent(text, at)
        message = framing.decode(text)
        if isinstance(message, Call):
            self._ours.append((message.unique_id, message.action))

    def _take_call(self, action: str) -> Call | None:
        for call in self._calls:
            if call.action == action and call.unique_id not in self._taken_call_ids:
                self._taken_call_ids.add(call.unique_id)
                return call
        return None

    def _take_answer(self, action: str) -> CallResult | CallError | None:
        for uid, sent_action in self._ours:
            if sent_action != action or uid in self._taken_answers:
                continue
            answer = self._answers_in.get(uid)
            if answer is None:
                return None  # the oldest untaken one is still waiting: answers are taken in order
            self._taken_answers.add(uid)
            return answer
        return None

    def _forget_unanswered(self) -> None:
        """CALLs the closed link left unanswered will never be answered: waits skip them."""
        for uid, _ in self._ours:
            if uid not in self._answers_in:
                self._taken_answers.add(uid)

    def _skip_unanswered(self, action: str) -> None:
        """Answers the case never took for earlier CALLs of ``action`` are not the answer to the next one."""
        for uid, sent_action in self._ours:
            if sent_action == action and uid in self._answers_in:
                self._taken_answers.add(uid)


def _decoded(text: str) -> framing.Message | None:
    try:
        return framing.decode(text)
    except FrameError:
        return None


def station_certificate(directory: Path, station_id: str, ca_cert_file: str, ca_key_file: str) -> tuple[Path, Path]:
    """A new key and a certificate naming ``station_id`` (subject CN; O as the CA's), signed by the station CA
    given as PEM files: written in ``directory``, returned as (certificate file, key file)."""
    ca_cert = x509.load_pem_x509_certificate(Path(ca_cert_file).read_bytes())
    ca_key = build.load_key(Path(ca_key_file).read_bytes())
    key = build.new_key()
    subject = build.name(station_id, build.organisation(ca_cert.subject))
    cert = build.issue((ca_cert, ca_key), subject, key.public_key(), datetime.now(UTC), 2)
    cert_file, key_file = directory / "station.pem", directory / "station.key"
    cert_file.write_text(build.cert_pem(cert))
    key_file.write_text(build.key_pem(key))
    return cert_file, key_file
