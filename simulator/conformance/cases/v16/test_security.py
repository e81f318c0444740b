"""1.6 security extension (OCPP 1.6 Security Whitepaper, Central System side): HTTP Basic authentication and its
password, TLS (security profiles 2 and 3), the subprotocol, certificates (SignCertificate, CertificateSigned,
InstallCertificate, DeleteCertificate), security events, the security log and signed firmware."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import serialization

from csms.pki import build
from simulator.conformance.cases.v16._steps import booted, expect_fields
from simulator.conformance.catalogue import case_marker
from simulator.conformance.operator_thread import OperatorThread
from simulator.conformance.station import NotRun, StationUnderTest
from simulator.station.registration import StationIdentity

case = case_marker("1.6")

#: The serial number the station boots with (the OCTT's configured serialNumber).
SERIAL = "CT-STATION"
#: The subject O of the station's CSRs (the OCTT's configured CpoName).
CPO_NAME = "chargetwin"


def _csr(station: StationUnderTest) -> str:
    """A new P-256 key's certificate signing request, CN the station's identity, O the CPO name."""
    request = build.csr(build.new_key(), station.station_id, CPO_NAME)
    return request.public_bytes(serialization.Encoding.PEM).decode()


#: A self-signed root certificate to install (public test data).
ROOT_CERTIFICATE = """-----BEGIN CERTIFICATE-----
MIIBoTCCAUegAwIBAgIUI/2ScQ7AyyDKrpKQDiCfLjwO4c0wCgYIKoZIzj0EAwIw
JjEkMCIGA1UEAwwbY2hhcmdldHdpbiBjb25mb3JtYW5jZSByb290MB4XDTI2MTIw
MzE4MTMxOVoXDTM2MTEzMDE4MTMxOVowJjEkMCIGA1UEAwwbY2hhcmdldHdpbiBj
b25mb3JtYW5jZSByb290MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAESV8fOr4E
exXgvZSUT6MmZfD0BOewFUqkvRIwsBvsQs6TNZ03CIPAKlfof/utMO821BEf0CPi
nNG0RTQ403SjUqNTMFEwHQYDVR0OBBYEFDDDgHwB906MoxNU/tdvdrL7dWGlMB8G
A1UdIwQYMBaAFDDDgHwB906MoxNU/tdvdrL7dWGlMA8GA1UdEwEB/wQFMAMBAf8w
CgYIKoZIzj0EAwIDSAAwRQIge4Snw++xwq/DIR7Rbd8/zaTnrvZPWrAUgjD2gmzL
f2cCIQC4HhmPqIkabW0EfmYW8dAFyJziDVtWi9cVks76i85/hw==
-----END CERTIFICATE-----
"""
#: DER prefix of a P-256 SubjectPublicKeyInfo (91 bytes in all): how the CSR's key is found in a certificate.
P256_SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")
P256_SPKI_LENGTH = 91
FIRMWARE_URL = "https://firmware.example.com/chargetwin/conformance-1.0.1.bin"
LOG_URL = "ftp://logs.example.com/uploads/"
_PEM = re.compile(r"-----BEGIN ([A-Z ]+)-----\s*([A-Za-z0-9+/=\s]+?)\s*-----END \1-----")


def _pem_blocks(text: str, kind: str = "CERTIFICATE") -> list[bytes]:
    """The DER of every ``kind`` block of a PEM text (a block that is not base64 is not counted)."""
    blocks = []
    for label, body in _PEM.findall(text):
        if label == kind:
            try:
                blocks.append(base64.b64decode("".join(body.split()), validate=True))
            except binascii.Error:
                continue
    return blocks


def _public_key(der: bytes) -> bytes | None:
    at = der.find(P256_SPKI_PREFIX)
    return None if at < 0 else der[at : at + P256_SPKI_LENGTH]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _tls_target(station: StationUnderTest, *, client_cert: bool = False) -> None:
    if station.target.tls_url is None:  # a missing feature of the CSMS, as in 2.0.1: a failure, not "not run"
        station.fail("the Central System offers no TLS endpoint (--csms-tls-url): security profiles 2 and 3 need one")
    if client_cert and not station.target.has_client_certificate:
        raise NotRun(
            "security profile 3 needs the station's certificate (--client-cert, --client-key, or the station CA: "
            "--client-ca-cert, --client-ca-key)"
        )


def _serial_station(make_station: Callable[..., StationUnderTest]) -> StationUnderTest:
    identity = StationIdentity(vendor="chargetwin", model="conformance", serial_number=SERIAL)
    return make_station(identity=identity)


def _security_event(station: StationUnderTest, kind: str) -> None:
    answer = station.call("SecurityEventNotification", {"type": kind, "timestamp": _now()})
    assert answer == {}, f"SecurityEventNotification answered {answer}: the answer has no fields"


# ==== secure connection setup ==================================================================================
@case("TC_085_CSMS", "Basic Authentication - Valid username/password combination", "security")
def test_TC_085_CSMS(station: StationUnderTest) -> None:
    refused = station.try_connect(password="")
    if refused is None:
        station.fail("the Central System upgraded a connection without an Authorization header (security profile 1)")
    station.connect()
    booted(station)


@case("TC_073_CSMS", "Update Charge Point Password for HTTP Basic Authentication", "security")
def test_TC_073_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    booted(station)
    password = "conformance-" + station.station_id[-8:].rjust(8, "0")  # 20 printable bytes
    value = password.encode().hex()
    # OCTT step 2: the Charge Point answers Accepted (and then reconnects with the new password).
    change = {"key": "AuthorizationKey", "value": value}
    call = operator.command(station, "ChangeConfiguration", change, {"status": "Accepted"})
    expect_fields(station, call, key="AuthorizationKey")
    sent = str(call.payload.get("value", ""))
    assert len(sent) <= 40 and re.fullmatch(r"[0-9A-Fa-f]+", sent), (
        f"AuthorizationKey {sent!r} must be at most 40 hexadecimal digits"
    )
    assert 16 <= len(sent) // 2 <= 20, f"the new password is {len(sent) // 2} bytes: it must be 16 to 20"
    new_password = bytes.fromhex(sent).decode("utf-8", "replace")
    station.auto_reconnect = False
    station.disconnect()
    refused = station.try_connect(password=new_password)
    if refused is not None:
        station.fail(f"the Central System refused the password it set with ChangeConfiguration: {refused}")
    station.call("Heartbeat", {})


@case("TC_086_CSMS", "TLS - server-side certificate - Valid certificate", "security")
def test_TC_086_CSMS(station: StationUnderTest) -> None:
    _tls_target(station)
    refused = station.try_connect(tls=station.tls_context())
    if refused is not None:
        station.fail(f"the TLS connection (security profile 2) was refused: {refused}")
    booted(station)


@case("TC_087_CSMS", "TLS - Client-side certificate - valid certificate", "security")
def test_TC_087_CSMS(station: StationUnderTest) -> None:
    _tls_target(station, client_cert=True)
    refused = station.try_connect(password="", tls=station.tls_context(client_cert=True))
    if refused is not None:
        station.fail(f"the TLS connection with the station's certificate (security profile 3) was refused: {refused}")
    booted(station)


@case("TC_088_CSMS", "WebSocket Subprotocol negotiation", "security")
def test_TC_088_CSMS(station: StationUnderTest) -> None:
    refused = station.try_connect(subprotocols=["ocpp0.1"])
    # OCPP-J 1.6 §3.1.2 also allows completing the handshake without a subprotocol and closing at once
    if refused is None and station.ws is not None:  # (None: closed already)
        if station.ws.subprotocol is not None:
            station.fail(f"the Central System agreed to {station.ws.subprotocol!r} when only ocpp0.1 was offered")
        station.wait_closed(timeout=2)
    refused = station.try_connect(subprotocols=["ocpp0.1", "ocpp1.6"])
    if refused is not None:
        station.fail(f"the Central System refused a connection offering ocpp0.1 and ocpp1.6: {refused}")
    assert station.ws is not None
    agreed = station.ws.subprotocol
    assert agreed == "ocpp1.6", f"Sec-WebSocket-Protocol answered {agreed!r}, it must be ocpp1.6"
    booted(station)


@case("TC_083_CSMS", "Upgrade Charge Point Security Profile - Accepted", "security")
def test_TC_083_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    _tls_target(station)
    booted(station)
    upgrade = {"key": "SecurityProfile", "value": "2"}
    call = operator.command(station, "ChangeConfiguration", upgrade, {"status": "Accepted"})
    expect_fields(station, call, key="SecurityProfile", value="2")
    station.auto_reconnect = False  # the station comes back on TLS, not on its old endpoint
    reset = operator.command(station, "Reset", {"type": "Hard"})
    expect_fields(station, reset, type="Hard")
    station.run_until(lambda: True if station.ws is None else None, "waiting for the station to restart")
    refused = station.try_connect(tls=station.tls_context())
    if refused is not None:
        station.fail(f"the Central System refused the upgraded station on security profile 2: {refused}")
    booted(station)
    station.disconnect()
    if station.try_connect() is None:
        station.fail("the Central System still accepts the upgraded station on security profile 1")


# ==== certificates =============================================================================================
def _sign_certificate(station: StationUnderTest, operator: OperatorThread, accept: bool) -> tuple[list[bytes], str]:
    """ExtendedTriggerMessage SignChargePointCertificate, SignCertificate Accepted, then the Central System's own
    CertificateSigned (answered Accepted or Rejected). Returns the chain's certificates (DER) and the CSR."""
    trigger = {"requestedMessage": "SignChargePointCertificate"}
    call = operator.command(station, "ExtendedTriggerMessage", trigger, {"status": "Accepted"})
    expect_fields(station, call, requestedMessage="SignChargePointCertificate")
    assert "connectorId" not in call.payload, f"ExtendedTriggerMessage names a connector: {call.payload}"
    station.answer("CertificateSigned", {"status": "Accepted" if accept else "Rejected"})
    csr = _csr(station)
    answer = station.call("SignCertificate", {"csr": csr})
    assert answer.get("status") == "Accepted", f"SignCertificate answered {answer}, the case expects Accepted"
    signed = station.wait_call("CertificateSigned")
    chain = str(signed.payload.get("certificateChain", ""))
    certificates = _pem_blocks(chain)
    assert certificates, f"CertificateSigned.certificateChain is not PEM-encoded certificates: {chain[:80]!r}"
    return certificates, csr


@case("TC_074_CSMS", "Update Charge Point Certificate by request of Central System", "security")
def test_TC_074_CSMS(make_station: Callable[..., StationUnderTest], operator: OperatorThread) -> None:
    station = _serial_station(make_station)
    booted(station)
    chain, csr = _sign_certificate(station, operator, accept=True)
    leaf = chain[0]
    requested = _public_key(_pem_blocks(csr, "CERTIFICATE REQUEST")[0])
    assert requested is not None and _public_key(leaf) == requested, (
        "the signed certificate does not carry the public key of the CSR"
    )
    assert station.station_id.encode() in leaf, f"the signed certificate does not name the station {station.station_id}"
    station.call("Heartbeat", {})


@case("TC_077_CSMS", "Invalid ChargePointCertificate Security Event", "security")
def test_TC_077_CSMS(make_station: Callable[..., StationUnderTest], operator: OperatorThread) -> None:
    station = _serial_station(make_station)
    booted(station)
    _sign_certificate(station, operator, accept=False)
    _security_event(station, "InvalidChargePointCertificate")


def _install(station: StationUnderTest, operator: OperatorThread, kind: str, answer: str = "Accepted") -> None:
    payload = {"certificateType": kind, "certificate": ROOT_CERTIFICATE}
    call = operator.command(station, "InstallCertificate", payload, {"status": answer})
    expect_fields(station, call, certificateType=kind)
    assert _pem_blocks(str(call.payload.get("certificate", ""))), "InstallCertificate.certificate is not PEM"


@case("TC_075_1_CSMS", "Install a certificate on the Charge Point - ManufacturerRootCertificate", "security")
def test_TC_075_1_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    booted(station)
    _install(station, operator, "ManufacturerRootCertificate")


@case("TC_075_2_CSMS", "Install a certificate on the Charge Point - CentralSystemRootCertificate", "security")
def test_TC_075_2_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    booted(station)
    _install(station, operator, "CentralSystemRootCertificate")


def _hash_data(algorithm: str) -> dict[str, Any]:
    """The installed root's certificateHashData as the station reports it."""
    der = _pem_blocks(ROOT_CERTIFICATE)[0]
    digest = getattr(hashlib, algorithm.lower())
    return {
        "hashAlgorithm": algorithm,
        "issuerNameHash": digest(der[:64]).hexdigest()[:128],
        "issuerKeyHash": digest(der[-64:]).hexdigest()[:128],
        "serialNumber": "23fd92710ec0cb20ca ae92900e209f2e3c0ee1cd".replace(" ", ""),
    }


@case("TC_076_CSMS", "Delete a specific certificate from the Charge Point", "security")
def test_TC_076_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    booted(station)
    for algorithm in ("SHA256", "SHA384", "SHA512"):
        _install(station, operator, "CentralSystemRootCertificate")
        installed = _hash_data(algorithm)
        ids = {"status": "Accepted", "certificateHashData": [installed]}
        query = {"certificateType": "CentralSystemRootCertificate"}
        operator.command(station, "GetInstalledCertificateIds", query, ids)
        call = operator.command(
            station, "DeleteCertificate", {"certificateHashData": installed}, {"status": "Accepted"}
        )
        assert call.payload.get("certificateHashData") == installed, (
            f"DeleteCertificate names {call.payload.get('certificateHashData')}, the station reported {installed}"
        )


@case("TC_078_CSMS", "Invalid CentralSystemCertificate Security Event", "security")
def test_TC_078_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    booted(station)
    _install(station, operator, "CentralSystemRootCertificate", answer="Rejected")
    _security_event(station, "InvalidCentralSystemCertificate")


# ==== security log, signed firmware ============================================================================
@case("TC_079_CSMS", "Get Security Log", "security")
def test_TC_079_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    booted(station)
    payload = {"logType": "SecurityLog", "requestId": 7, "log": {"remoteLocation": LOG_URL}}
    call = operator.command(station, "GetLog", payload, {"status": "Accepted", "filename": "security.log"})
    expect_fields(station, call, logType="SecurityLog")
    assert (call.payload.get("log") or {}).get("remoteLocation"), f"GetLog without log.remoteLocation: {call.payload}"
    request_id = call.payload["requestId"]
    for state in ("Uploading", "Uploaded"):
        answer = station.call("LogStatusNotification", {"status": state, "requestId": request_id})
        assert answer == {}, f"LogStatusNotification answered {answer}: the answer has no fields"


def _signed_update(station: StationUnderTest, operator: OperatorThread, signature: str) -> int:
    firmware = {
        "location": FIRMWARE_URL,
        "retrieveDateTime": _now(),
        "signingCertificate": ROOT_CERTIFICATE,
        "signature": signature,
    }
    call = operator.command(
        station, "SignedUpdateFirmware", {"requestId": 8, "firmware": firmware}, {"status": "Accepted"}
    )
    sent = call.payload.get("firmware") or {}
    assert sent.get("location") == FIRMWARE_URL, f"firmware.location is {sent.get('location')!r}"
    assert sent.get("signature"), "SignedUpdateFirmware without firmware.signature"
    assert _pem_blocks(str(sent.get("signingCertificate", ""))), "firmware.signingCertificate is not PEM"
    return int(call.payload["requestId"])


def _firmware_status(station: StationUnderTest, state: str, request_id: int) -> None:
    answer = station.call("SignedFirmwareStatusNotification", {"status": state, "requestId": request_id})
    assert answer == {}, f"SignedFirmwareStatusNotification answered {answer}: the answer has no fields"


@case("TC_080_CSMS", "Secure Firmware Update", "security")
def test_TC_080_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    booted(station)
    request_id = _signed_update(station, operator, base64.b64encode(hashlib.sha256(b"firmware").digest()).decode())
    for state in ("Downloading", "Downloaded", "SignatureVerified", "Installing"):
        _firmware_status(station, state, request_id)
    boot = {"chargePointVendor": "chargetwin", "chargePointModel": "conformance", "firmwareVersion": "1.0.1"}
    answer = station.call("BootNotification", boot)
    assert answer.get("status") == "Accepted", f"BootNotification after the update answered {answer}"
    _firmware_status(station, "Installed", request_id)


@case("TC_081_CSMS", "Secure Firmware Update - Invalid Signature", "security")
def test_TC_081_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    booted(station)
    request_id = _signed_update(station, operator, base64.b64encode(b"not a signature").decode())
    for state in ("Downloading", "Downloaded", "InvalidSignature"):
        _firmware_status(station, state, request_id)
