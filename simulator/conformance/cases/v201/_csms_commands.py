"""Steps the 2.0.1 cases of blocks I and K–P share: the CSMS sends a command the operator asked for and the
station answers it as the OCTT would; timestamps as OCPP writes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from simulator.conformance.station import StationUnderTest

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


def in_transaction(station: StationUnderTest, token: str, connector: int = 1) -> str:
    """Boot, plug in and authorize ``token``: the EV charges (EnergyTransferStarted); returns the transaction id."""
    station.ready()
    station.plug_in(connector, token)
    started = station.wait_result("TransactionEvent")
    status = started.get("idTokenInfo", {}).get("status", "Accepted")
    if status != "Accepted":
        station.fail(f"the CSMS answered the transaction's token {token!r} with {status!r}: the case needs Accepted")
    return str(station.transaction_id(connector))
