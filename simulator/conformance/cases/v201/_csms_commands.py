"""Steps the 2.0.1 cases of blocks I and K–P share: the CSMS sends a command the operator asked for and the
station answers it as the OCTT would; timestamps as OCPP writes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from csms.ocpp import framing
from csms.ocpp.framing import Call, CallError, CallResult
from simulator.conformance.operator_thread import OperatorThread
from simulator.conformance.station import Answer, StationUnderTest

#: A self-signed EC root (CN "chargetwin conformance root"): the CA certificate the cases install, and the
#: firmware signing certificate.
ROOT_PEM = """-----BEGIN CERTIFICATE-----
MIIBojCCAUegAwIBAgIUfX7xM8MvEVCiHs4TX1GsVdHu6zYwCgYIKoZIzj0EAwIw
JjEkMCIGA1UEAwwbY2hhcmdldHdpbiBjb25mb3JtYW5jZSByb290MB4XDTI2MTIw
MzE4MTUxMVoXDTM2MTEzMDE4MTUxMVowJjEkMCIGA1UEAwwbY2hhcmdldHdpbiBj
b25mb3JtYW5jZSByb290MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEtCjpNm3B
ykuVnYA2WGiVteQJ/rd2O3ToTTquvv8RIq0G3WrTkr5qN7TPJCfctPDQ6o8iQMR7
z3QZSLIiLI330KNTMFEwHQYDVR0OBBYEFBDxs7TCyuQFKfRNv7zwXXStdqwFMB8G
A1UdIwQYMBaAFBDxs7TCyuQFKfRNv7zwXXStdqwFMA8GA1UdEwEB/wQFMAMBAf8w
CgYIKoZIzj0EAwIDSQAwRgIhAKPp5OXadY/MSENg+pB8xr0wXdw+/9c64OBlrdJF
Mt7rAiEAwOZRJwlzUmAXuiIDpFX0TqMI7f2OAjeGHOS/P0UnWbk=
-----END CERTIFICATE-----
"""


def iso(seconds_from_now: float = 0.0) -> str:
    """An OCPP dateTime (UTC, ``Z``) ``seconds_from_now`` away."""
    moment = datetime.now(UTC) + timedelta(seconds=seconds_from_now)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def command(
    station: StationUnderTest,
    operator: OperatorThread,
    action: str,
    payload: dict[str, Any],
    reply: Answer | None = None,
) -> Call:
    """The operator makes the CSMS send ``action``; the station answers ``reply`` (None: the firmware answers).

    Returns the CSMS's CALL once the operator reports the CSMS took the station's answer — as the station gave
    it, when the CSMS tells the operator what the station answered."""
    station.answer(action, reply)
    job = operator.request(station, action, payload)
    call = station.wait_call(action)
    outcome = job.outcome(station)
    answered = station_answer(station, call.unique_id)
    told = getattr(outcome, "response", None)
    if isinstance(answered, CallResult) and told is not None and told != answered.payload:
        station.fail(f"the station answered {action} with {answered.payload}, the CSMS reports {told}")
    return call


def station_answer(station: StationUnderTest, unique_id: str) -> CallResult | CallError | None:
    """What the station answered the CSMS's CALL ``unique_id`` (None: not yet)."""
    for frame in station.log.frames:
        if frame.outgoing:
            message = framing.decode(frame.text)
            if isinstance(message, CallResult | CallError) and message.unique_id == unique_id:
                return message
    return None


def in_transaction(station: StationUnderTest, token: str, connector: int = 1) -> str:
    """Boot, plug in and authorize ``token``: the EV charges (EnergyTransferStarted); returns the transaction id."""
    station.ready()
    station.plug_in(connector, token)
    started = station.wait_result("TransactionEvent")
    status = started.get("idTokenInfo", {}).get("status", "Accepted")
    if status != "Accepted":
        station.fail(f"the CSMS answered the transaction's token {token!r} with {status!r}: the case needs Accepted")
    return str(station.transaction_id(connector))
