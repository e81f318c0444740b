"""2.0.1 block M, ISO 15118 Certificate Management: installing, retrieving and deleting the station's CA
certificates, and the station asking the CSMS for EV contract certificates and OCSP status (CSMS side).

CSMS and manufacturer roots belong to the Advanced Security profile, the V2G and MO roots and the EV certificate
requests to ISO 15118 Support.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from simulator.conformance.cases.v201._csms_commands import ROOT_PEM
from simulator.conformance.cases.v201.certificates import OcspResponder, Pki
from simulator.conformance.catalogue import case_marker
from simulator.conformance.operator_thread import OperatorThread
from simulator.conformance.station import StationUnderTest

case = case_marker("2.0.1")

SERIAL = "7D7EF133C32F1150A21ECE135F51AC55D1EEEB36"
HASHES = {"SHA256": hashlib.sha256, "SHA384": hashlib.sha384, "SHA512": hashlib.sha512}


def hash_data(algorithm: str = "SHA256", serial: str = SERIAL) -> dict[str, str]:
    """The station's hashes of an installed certificate (issuer name and key hashed with ``algorithm``)."""
    digest = HASHES[algorithm]
    return {
        "hashAlgorithm": algorithm,
        "issuerNameHash": digest(b"CN=chargetwin conformance root").hexdigest(),
        "issuerKeyHash": digest(serial.encode()).hexdigest(),
        "serialNumber": serial.lower(),
    }


# ==== M05 Install CA certificate ================================================================================
def install(station: StationUnderTest, operator: OperatorThread, kind: str, reply: str = "Accepted") -> None:
    request = operator.command(
        station, "InstallCertificate", {"certificateType": kind, "certificate": ROOT_PEM}, {"status": reply}
    ).payload
    assert request["certificateType"] == kind, f"certificateType {request['certificateType']!r}, the case set {kind!r}"
    pem = request["certificate"].strip()
    assert pem.startswith("-----BEGIN CERTIFICATE-----") and pem.endswith("-----END CERTIFICATE-----"), (
        "the certificate is not PEM encoded (M05)"
    )


@case("TC_M_01_CSMS", "Install CA certificate - CSMSRootCertificate", "advanced-security")
def test_TC_M_01_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    install(station, operator, "CSMSRootCertificate")


@case("TC_M_02_CSMS", "Install CA certificate - ManufacturerRootCertificate", "advanced-security")
def test_TC_M_02_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    install(station, operator, "ManufacturerRootCertificate")


@case("TC_M_03_CSMS", "Install CA certificate - V2GRootCertificate", "iso15118")
def test_TC_M_03_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    install(station, operator, "V2GRootCertificate")


@case("TC_M_04_CSMS", "Install CA certificate - MORootCertificate", "iso15118")
def test_TC_M_04_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    install(station, operator, "MORootCertificate")


@case("TC_M_05_CSMS", "Install CA certificate - Failed", "advanced-security")
def test_TC_M_05_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    install(station, operator, "CSMSRootCertificate", "Failed")
    station.expect_no_call(1, "InstallCertificate")


# ==== M03 Retrieve installed certificates =======================================================================
def installed_ids(
    station: StationUnderTest,
    operator: OperatorThread,
    kinds: list[str] | None,
    algorithm: str = "SHA256",
    found: bool = True,
) -> list[dict[str, Any]]:
    """The CSMS asks which certificates of ``kinds`` (None: all) are installed; returns the chain answered."""
    chain = []
    for kind in kinds or ["CSMSRootCertificate", "ManufacturerRootCertificate", "V2GRootCertificate"]:
        entry: dict[str, Any] = {"certificateType": kind, "certificateHashData": hash_data(algorithm)}
        if kind == "V2GCertificateChain":
            entry["childCertificateHashData"] = [hash_data(algorithm, "0A1B2C3D")]
        chain.append(entry)
    answer: dict[str, Any] = (
        {"status": "Accepted", "certificateHashDataChain": chain} if found else {"status": "NotFound"}
    )
    payload = {} if kinds is None else {"certificateType": kinds}
    request = operator.command(station, "GetInstalledCertificateIds", payload, answer).payload
    assert request.get("certificateType") == kinds, (
        f"certificateType {request.get('certificateType')}, the case configured {kinds or 'none (every type)'}"
    )
    return chain


@case("TC_M_12_CSMS", "Retrieve certificates from Charging Station - CSMSRootCertificate", "advanced-security")
def test_TC_M_12_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    for algorithm in HASHES:
        installed_ids(station, operator, ["CSMSRootCertificate"], algorithm)


@case("TC_M_13_CSMS", "Retrieve certificates from Charging Station - ManufacturerRootCertificate", "advanced-security")
def test_TC_M_13_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    installed_ids(station, operator, ["ManufacturerRootCertificate"])


@case("TC_M_14_CSMS", "Retrieve certificates from Charging Station - V2GRootCertificate", "iso15118")
def test_TC_M_14_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    installed_ids(station, operator, ["V2GRootCertificate"])


@case("TC_M_15_CSMS", "Retrieve certificates from Charging Station - V2GCertificateChain", "iso15118")
def test_TC_M_15_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    installed_ids(station, operator, ["V2GCertificateChain"])


@case("TC_M_16_CSMS", "Retrieve certificates from Charging Station - MORootCertificate", "iso15118")
def test_TC_M_16_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    installed_ids(station, operator, ["MORootCertificate"])


@case(
    "TC_M_17_CSMS",
    "Retrieve certificates from Charging Station - CSMSRootCertificate and ManufacturerRootCertificate",
    "advanced-security",
)
def test_TC_M_17_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    installed_ids(station, operator, ["CSMSRootCertificate", "ManufacturerRootCertificate"])


@case("TC_M_18_CSMS", "Retrieve certificates from Charging Station - All certificateTypes", "advanced-security")
def test_TC_M_18_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    installed_ids(station, operator, None)


@case(
    "TC_M_19_CSMS", "Retrieve certificates from Charging Station - No matching certificate found", "advanced-security"
)
def test_TC_M_19_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    installed_ids(station, operator, ["ManufacturerRootCertificate"], found=False)


# ==== M04 Delete a certificate ==================================================================================
def delete(station: StationUnderTest, operator: OperatorThread, algorithm: str, reply: str) -> None:
    """Install a CSMS root, list it, delete it by the hash data the station listed (M04.FR.07)."""
    install(station, operator, "CSMSRootCertificate")
    listed = installed_ids(station, operator, ["CSMSRootCertificate"], algorithm)[0]["certificateHashData"]
    request = operator.command(station, "DeleteCertificate", {"certificateHashData": listed}, {"status": reply}).payload
    assert request["certificateHashData"] == listed, (
        f"DeleteCertificate names {request['certificateHashData']}, not the hash data the station listed "
        f"{listed} (M04.FR.07)"
    )


@case("TC_M_20_CSMS", "Delete a certificate from a Charging Station - Success", "advanced-security")
def test_TC_M_20_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    for algorithm in HASHES:
        delete(station, operator, algorithm, "Accepted")


@case("TC_M_21_CSMS", "Delete a certificate from a Charging Station - Failed", "advanced-security")
def test_TC_M_21_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    delete(station, operator, "SHA256", "Failed")


# ==== M06 OCSP status, M01/M02 EV contract certificates =========================================================
@case("TC_M_24_CSMS", "Get Charging Station Certificate status - Success", "iso15118")
def test_TC_M_24_CSMS(station: StationUnderTest) -> None:
    station.ready()
    with Pki.create("chargetwin conformance V2G root") as pki, OcspResponder(pki, revoked=False) as responder:
        sub_ca, _ = pki.issue("chargetwin conformance V2G sub-CA")
        (request,) = pki.hash_data(sub_ca, responder.url)
        answer = station.call("GetCertificateStatus", {"ocspRequestData": request})
        asked = responder.requests
    assert asked, "the CSMS did not ask the responder named in ocspRequestData (M06.FR.01)"
    assert answer["status"] == "Accepted", f"GetCertificateStatus answered {answer['status']!r} (M06.FR.01)"
    ocsp = answer.get("ocspResult", "")
    assert ocsp, "an Accepted GetCertificateStatus carries the OCSP response in ocspResult (M06.FR.02)"
    der = base64.b64decode(ocsp, validate=True)
    assert der[:1] == b"\x30", "ocspResult is not a DER OCSPResponse"


#: An EXI-encoded CertificateInstallationReq / CertificateUpdateReq stands in as opaque base64 (the CSMS forwards it).
EXI_REQUEST = base64.b64encode(b"\x80\x98\x02\x10chargetwin conformance EXI request").decode()


def ev_certificate(station: StationUnderTest, action: str) -> None:
    payload = {"iso15118SchemaVersion": "urn:iso:15118:2:2013:MsgDef", "action": action, "exiRequest": EXI_REQUEST}
    answer = station.call("Get15118EVCertificate", payload)
    assert answer["status"] == "Accepted", f"Get15118EVCertificate ({action}) answered {answer['status']!r}"
    assert answer.get("exiResponse"), (
        "an Accepted Get15118EVCertificate carries the EXI response the secondary actor made (M01.FR.01)"
    )
    base64.b64decode(answer["exiResponse"], validate=True)


@case("TC_M_26_CSMS", "Certificate installation EV - Success", "iso15118")
def test_TC_M_26_CSMS(station: StationUnderTest) -> None:
    station.ready()
    ev_certificate(station, "Install")


@case("TC_M_28_CSMS", "Certificate Update EV - Success", "iso15118")
def test_TC_M_28_CSMS(station: StationUnderTest) -> None:
    station.ready()
    ev_certificate(station, "Update")
