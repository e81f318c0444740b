"""2.0.1 block A, Security: HTTP Basic authentication (security profile 1), TLS with the CSMS's server certificate
(profile 2) and the station's client certificate (profile 3), the station's password set with SetVariables, the
station's certificate renewed through SignCertificate/CertificateSigned, and the upgrade to a higher security
profile (CSMS side).

The TLS cases connect to the target's ``--csms-tls-url`` (trusting ``--ca-file``; profile 3 presents
``--client-cert``/``--client-key``). A CSMS without a TLS endpoint fails them: it does not support the profile.
"""

from __future__ import annotations

import re
import secrets
import ssl
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from websockets.exceptions import InvalidHandshake, InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from csms.ocpp.framing import Call
from csms.ocpp.versions import VERSION_SUBPROTOCOL
from simulator.conformance.cases.v201.certificates import Pki
from simulator.conformance.catalogue import case_marker
from simulator.conformance.operator_thread import OperatorThread
from simulator.conformance.station import NotRun, StationUnderTest
from simulator.links.offer import basic_auth

case = case_marker("2.0.1")

#: A00.FR.202/203: a BasicAuthPassword is 16 to 40 characters of identifierString.
PASSWORD = re.compile(r"^[A-Za-z0-9*\-_=:+|@.]{16,40}$")
IDENTIFIER_CHARACTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789*-_=:+|@."


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _new_password() -> str:
    return "".join(secrets.choice(IDENTIFIER_CHARACTERS) for _ in range(24))


def _handshake(station: StationUnderTest, headers: dict[str, str]) -> str | None:
    """An HTTP upgrade to the station's URL with exactly ``headers``: None when the CSMS upgraded it (the
    connection is closed again at once), else the refusal ("HTTP 401", …)."""
    try:
        ws = connect(
            station.url,
            subprotocols=[Subprotocol(VERSION_SUBPROTOCOL[station.version])],
            additional_headers=headers,
            open_timeout=station.target.open_timeout_s,
            compression=None,
        )
    except InvalidStatus as exc:
        return f"HTTP {exc.response.status_code}"
    except (InvalidHandshake, OSError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"
    ws.close()
    return None


def _refused_by_http(station: StationUnderTest, refusal: str | None, what: str) -> None:
    if refusal is None:
        station.fail(f"the CSMS upgraded the connection {what}; it must refuse it")
    assert refusal is not None
    assert refusal.startswith("HTTP 4"), f"{what}: the upgrade failed with {refusal!r}, not an HTTP 4xx refusal"


def _require_tls(station: StationUnderTest) -> None:
    if station.target.tls_url is None:
        station.fail("the CSMS offers no TLS endpoint (--csms-tls-url): security profiles 2 and 3 need one")


def _require_client_certificate(station: StationUnderTest) -> None:
    if not station.target.has_client_certificate:
        raise NotRun(
            "security profile 3 needs the station's certificate: give --client-cert and --client-key, or the "
            "station CA (--client-ca-cert, --client-ca-key)"
        )


def _connect_tls(station: StationUnderTest, context: ssl.SSLContext, *, basic_auth_too: bool) -> None:
    refused = station.try_connect(password=None if basic_auth_too else "", tls=context)
    if refused is not None:
        station.fail(f"the CSMS refused the TLS connection: {refused}")


def _profile_3(station: StationUnderTest) -> None:
    """Connected with security profile 3 (TLS, the station's client certificate, no Basic auth) and booted."""
    _require_tls(station)
    _require_client_certificate(station)
    _connect_tls(station, station.tls_context(client_cert=True), basic_auth_too=False)
    station.ready()


# ==== security profile 1: HTTP Basic authentication =============================================================
@case("TC_A_01_CSMS", "Basic Authentication - Valid username/password combination")
def test_TC_A_01_CSMS(station: StationUnderTest) -> None:
    if not station.password:
        raise NotRun("the station has no password (give --password or an operator that provisions stations)")
    refused = station.try_connect()
    if refused is not None:
        station.fail(f"the CSMS refused the station's own id and password: {refused}")
    station.ready()


@case("TC_A_02_CSMS", "Basic Authentication - Username does not equal Charging Station ID")
def test_TC_A_02_CSMS(station: StationUnderTest) -> None:
    if not station.password:
        raise NotRun("the station has no password (give --password or an operator that provisions stations)")
    other = {"Authorization": basic_auth(f"{station.station_id}X", station.password)}
    _refused_by_http(station, _handshake(station, other), "whose username is not the station's id")
    station.ready()  # and the station's own credentials still work


@case("TC_A_03_CSMS", "Basic Authentication - Invalid password")
def test_TC_A_03_CSMS(station: StationUnderTest) -> None:
    _refused_by_http(station, _handshake(station, {}), "without an Authorization header")
    wrong = {"Authorization": basic_auth(station.station_id, _new_password())}
    _refused_by_http(station, _handshake(station, wrong), "with a wrong password")


def _password_update(station: StationUnderTest, operator: OperatorThread, answer: str) -> str:
    """The CSMS sets SecurityCtrlr.BasicAuthPassword, the station answers ``answer``; returns the new password."""
    station.ready()
    station.answer(
        "SetVariables",
        lambda call: {
            "setVariableResult": [
                {"attributeStatus": answer, "component": item["component"], "variable": item["variable"]}
                for item in call.payload["setVariableData"]
            ]
        },
    )
    new = _new_password()
    item = {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"}, "attributeValue": new}
    job = operator.request(station, "SetVariables", {"setVariableData": [item]})
    call = station.wait_call("SetVariables")
    _check_password_call(call)
    job.outcome(station)
    return str(call.payload["setVariableData"][0]["attributeValue"])


def _check_password_call(call: Call) -> None:
    (item,) = call.payload["setVariableData"]
    assert item["component"]["name"] == "SecurityCtrlr", f"component {item['component']}, not SecurityCtrlr"
    assert item["variable"]["name"] == "BasicAuthPassword", f"variable {item['variable']}, not BasicAuthPassword"
    assert PASSWORD.match(item["attributeValue"]), (
        f"password {item['attributeValue']!r}: 16 to 40 characters of identifierString (A00.FR.202/203)"
    )


def _reconnect(station: StationUnderTest, password: str) -> str | None:
    station.auto_reconnect = False
    station.disconnect()
    return station.try_connect(password=password)


@case("TC_A_09_CSMS", "Update Charging Station Password for HTTP Basic Authentication - Accepted")
def test_TC_A_09_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    new = _password_update(station, operator, "Accepted")
    refused = _reconnect(station, new)
    if refused is not None:
        station.fail(f"the station accepted the new password, and the CSMS refused it at reconnection: {refused}")
    station.password = new
    station.call("Heartbeat", {})


@case("TC_A_10_CSMS", "Update Charging Station Password for HTTP Basic Authentication - Rejected")
def test_TC_A_10_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    old = station.password or ""
    _password_update(station, operator, "Rejected")
    refused = _reconnect(station, old)
    if refused is not None:
        station.fail(f"the station rejected the new password, and the CSMS refused the old one: {refused}")
    station.call("Heartbeat", {})


# ==== security profiles 2 and 3: TLS ===========================================================================
@case("TC_A_04_CSMS", "TLS - server-side certificate - Valid certificate")
def test_TC_A_04_CSMS(station: StationUnderTest) -> None:
    _require_tls(station)
    _connect_tls(station, station.tls_context(), basic_auth_too=True)
    station.ready()


def _old_tls_context(station: StationUnderTest) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=station.target.ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


@case("TC_A_06_CSMS", "TLS - server-side certificate - TLS version too low")
def test_TC_A_06_CSMS(station: StationUnderTest) -> None:
    _require_tls(station)
    _connect_tls(station, station.tls_context(), basic_auth_too=True)  # TLS 1.2 works, so the endpoint is there
    station.close()
    refused = station.try_connect(tls=_old_tls_context(station))
    if refused is None:
        station.fail("the CSMS accepted a TLS 1.1 connection; it must require TLS 1.2 or above (A00.FR.317)")
    assert refused is not None
    if "NO_PROTOCOLS_AVAILABLE" in refused or "no protocols available" in refused:
        raise NotRun(f"this machine's TLS library cannot offer TLS 1.1: {refused}")


@case("TC_A_07_CSMS", "TLS - Client-side certificate - valid certificate", "advanced-security")
def test_TC_A_07_CSMS(station: StationUnderTest) -> None:
    _profile_3(station)


@case("TC_A_08_CSMS", "TLS - Client-side certificate - Invalid certificate", "advanced-security")
def test_TC_A_08_CSMS(station: StationUnderTest) -> None:
    _require_tls(station)
    with Pki.create() as pki:
        cert, key = pki.self_signed(station.station_id)
        context = station.tls_context()
        context.load_cert_chain(cert, key)
        refused = station.try_connect(password="", tls=context)
    if refused is None:
        station.fail("the CSMS accepted a client certificate no CA of its own signed (A00.FR.407)")


# ==== the station's certificate ================================================================================
def _renew(
    station: StationUnderTest, operator: OperatorThread, trigger: str, use: str | None, pki: Pki
) -> tuple[Call, Path]:
    """OCTT's reusable state RenewChargingStationCertificate up to the CSMS's CertificateSigned (not yet answered
    by the firmware: the case answers it). Returns the CertificateSigned CALL and the new key."""
    station.answer("TriggerMessage", {"status": "Accepted"})
    job = operator.request(station, "TriggerMessage", {"requestedMessage": trigger})
    call = station.wait_call("TriggerMessage")
    assert call.payload["requestedMessage"] == trigger, f"TriggerMessage asks {call.payload['requestedMessage']!r}"
    job.outcome(station)
    csr, key = pki.csr(station.station_id)
    request: dict[str, Any] = {"csr": csr}
    if use is not None:
        request["certificateType"] = use
    answer = station.call("SignCertificate", request)
    assert answer["status"] == "Accepted", f"SignCertificate answered {answer['status']!r}, not Accepted (A02.FR.11)"
    signed = station.wait_call("CertificateSigned")
    chain = signed.payload["certificateChain"]
    assert "-----BEGIN CERTIFICATE-----" in chain, "certificateChain is not PEM"
    if use is not None and "certificateType" in signed.payload:
        got = signed.payload["certificateType"]
        assert got == use, f"CertificateSigned certificateType {got!r}, the request was {use} (A02.FR.14)"
    return signed, key


@case(
    "TC_A_11_CSMS",
    "Update Charging Station Certificate by request of CSMS - Success - Charging Station Certificate",
    "advanced-security",
)
def test_TC_A_11_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    _profile_3(station)
    station.answer("CertificateSigned", {"status": "Accepted"})
    with Pki.create() as pki:
        signed, key = _renew(station, operator, "SignChargingStationCertificate", "ChargingStationCertificate", pki)
        station.idle(0.2)
        chain = pki.path("renewed.pem")
        chain.write_text(signed.payload["certificateChain"])
        context = station.tls_context()
        context.load_cert_chain(chain, key)
        station.close()
        refused = station.try_connect(password="", tls=context)
    if refused is not None:
        station.fail(f"the CSMS refused the station's renewed certificate: {refused}")


@case("TC_A_12_CSMS", "Update Charging Station Certificate by request of CSMS - Success - V2G Certificate", "iso15118")
def test_TC_A_12_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    _profile_3(station)
    station.answer("CertificateSigned", {"status": "Accepted"})
    with Pki.create() as pki:
        _renew(station, operator, "SignV2GCertificate", "V2GCertificate", pki)
    station.idle(0.2)


@case(
    "TC_A_13_CSMS",
    "Update Charging Station Certificate by request of CSMS - Success - Combined Certificate",
    "iso15118",
)
def test_TC_A_13_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    _profile_3(station)
    station.answer("CertificateSigned", {"status": "Accepted"})
    with Pki.create() as pki:
        _renew(station, operator, "SignCombinedCertificate", None, pki)
    station.idle(0.2)


@case(
    "TC_A_14_CSMS", "Update Charging Station Certificate by request of CSMS - Invalid certificate", "advanced-security"
)
def test_TC_A_14_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    _profile_3(station)
    station.answer("CertificateSigned", {"status": "Rejected"})
    with Pki.create() as pki:
        _renew(station, operator, "SignChargingStationCertificate", "ChargingStationCertificate", pki)
    station.call(
        "SecurityEventNotification",
        {"type": "InvalidChargingStationCertificate", "timestamp": _now(), "techInfo": "rejected by the case"},
    )


# ==== upgrading the security profile ===========================================================================
UPGRADE_SLOT = 2


@case("TC_A_19_CSMS", "Upgrade Charging Station Security Profile - Accepted", "advanced-security")
def test_TC_A_19_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    _require_tls(station)
    assert station.target.tls_url is not None
    station.ready()  # security profile 1
    for action in ("SetNetworkProfile", "Reset"):
        station.answer(action, {"status": "Accepted"})
    station.answer(
        "SetVariables",
        lambda call: {
            "setVariableResult": [
                {"attributeStatus": "Accepted", "component": i["component"], "variable": i["variable"]}
                for i in call.payload["setVariableData"]
            ]
        },
    )
    profile = {
        "configurationSlot": UPGRADE_SLOT,
        "connectionData": {
            "ocppVersion": "OCPP20",
            "ocppTransport": "JSON",
            "ocppCsmsUrl": station.target.tls_url,
            "messageTimeout": 30,
            "securityProfile": 2,
            "ocppInterface": "Wired0",
        },
    }
    _upgrade_calls(station, operator, profile)
    station.auto_reconnect = False  # the reset: the station comes back with TLS
    station.disconnect()
    refused = station.try_connect(tls=station.tls_context())
    if refused is not None:
        station.fail(f"the CSMS refused the station on its new security profile 2: {refused}")
    station.charger.boot_reason = "RemoteReset"
    station.act(station.charger.trigger_boot)  # OCTT's reusable state Booted
    answer = station.wait_result("BootNotification")
    assert answer["status"] == "Accepted", f"BootNotification on security profile 2 answered {answer['status']!r}"
    station.wait_result("StatusNotification")
    station.close()
    refused = station.try_connect()
    if refused is None:
        station.fail("the CSMS still accepts the station on security profile 1 after it moved to profile 2 (A05)")
    refused = station.try_connect(tls=station.tls_context())
    if refused is not None:
        station.fail(f"the CSMS refused the station on security profile 2 again: {refused}")


def _upgrade_calls(station: StationUnderTest, operator: OperatorThread, profile: dict[str, Any]) -> None:
    job = operator.request(station, "SetNetworkProfile", profile)
    call = station.wait_call("SetNetworkProfile")
    data = call.payload["connectionData"]
    assert data["securityProfile"] == 2, f"securityProfile {data['securityProfile']}, one above the current 1"
    assert (data["ocppTransport"], data["ocppVersion"]) == ("JSON", "OCPP20"), f"connectionData {data}"
    job.outcome(station)
    priority = {
        "component": {"name": "OCPPCommCtrlr"},
        "variable": {"name": "NetworkConfigurationPriority"},
        "attributeValue": f"{UPGRADE_SLOT},1",
    }
    job = operator.request(station, "SetVariables", {"setVariableData": [priority]})
    (item,) = station.wait_call("SetVariables").payload["setVariableData"]
    assert item["variable"]["name"] == "NetworkConfigurationPriority", f"SetVariables sets {item['variable']}"
    slot = str(call.payload["configurationSlot"])
    assert slot in item["attributeValue"].split(","), (
        f"NetworkConfigurationPriority {item['attributeValue']!r} lacks the new slot {slot}"
    )
    job.outcome(station)
    job = operator.request(station, "Reset", {"type": "OnIdle"})
    station.wait_call("Reset")
    job.outcome(station)
