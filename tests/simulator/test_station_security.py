"""The twin charger's security firmware, both versions, paired with the real CSMS core: it makes a key and a
CSR when asked, installs the chain signed for that key (and refuses one that is not, with a security event),
keeps the roots a CSMS installs, lists and deletes them by their hash data, changes password and profile the
way the specs order (never lower), and applies 2.0.1 network profiles at the reboot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from csms.ocpp.certificate_hash import certificate_hash_data
from csms.ocpp.versions import OCPP16, OCPP201
from tests.simulator.helpers import STATION, T0, StationPair

ROOT_TYPE = {OCPP16: "CentralSystemRootCertificate", OCPP201: "CSMSRootCertificate"}


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class StationCa:
    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        start = datetime.fromtimestamp(T0, UTC) - timedelta(days=1)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name("Station CA"))
            .issuer_name(_name("Station CA"))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def sign(self, csr_pem: str, *, days: int = 365) -> str:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
        start = datetime.fromtimestamp(T0, UTC) - timedelta(minutes=1)
        leaf = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(self.cert.subject)
            .public_key(csr.public_key())  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + timedelta(days=days))
            .sign(self.key, hashes.SHA256())
        )
        pem = serialization.Encoding.PEM
        return (leaf.public_bytes(pem) + self.cert.public_bytes(pem)).decode()


@pytest.fixture(params=[OCPP16, OCPP201])
def pair(request, tmp_path) -> StationPair:
    p = StationPair(tmp_path, request.param)
    p.start()
    return p


def ask_for_csr(pair: StationPair) -> str:
    if pair.version == OCPP16:
        answer = pair.csms_call("ExtendedTriggerMessage", {"requestedMessage": "SignChargePointCertificate"})
    else:
        answer = pair.csms_call("TriggerMessage", {"requestedMessage": "SignChargingStationCertificate"})
    assert answer.payload == {"status": "Accepted"}
    (sign,) = pair.calls("SignCertificate")
    return sign.payload["csr"]


def signed(pair: StationPair, chain: str) -> dict:
    payload = {"certificateChain": chain}
    if pair.version == OCPP201:
        payload["certificateType"] = "ChargingStationCertificate"
    return pair.csms_call("CertificateSigned", payload).payload


def security_events(pair: StationPair) -> list[str]:
    return [s.payload["type"] for s in pair.calls("SecurityEventNotification")]


def test_a_csr_names_the_station_and_its_signed_chain_is_installed(pair):
    ca = StationCa()
    csr_pem = ask_for_csr(pair)
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == STATION
    assert pair.charger.security.client_certificate_pem() is None

    assert signed(pair, ca.sign(csr_pem)) == {"status": "Accepted"}
    chain_pem, key_pem = pair.charger.security.client_certificate_pem()
    leaf = x509.load_pem_x509_certificates(chain_pem)[0]
    key = serialization.load_pem_private_key(key_pem, None)
    assert leaf.public_key() == key.public_key() == csr.public_key()
    assert security_events(pair) == []


def test_a_chain_for_another_key_is_refused_with_a_security_event(pair):
    ca = StationCa()
    ask_for_csr(pair)
    stranger = ec.generate_private_key(ec.SECP256R1())
    foreign_csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_name(STATION))
        .sign(stranger, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )
    assert signed(pair, ca.sign(foreign_csr)) == {"status": "Rejected"}
    expected = "InvalidChargePointCertificate" if pair.version == OCPP16 else "InvalidChargingStationCertificate"
    assert security_events(pair) == [expected]
    assert pair.charger.security.client_certificate_pem() is None


def test_roots_are_installed_listed_by_hash_data_and_deleted(pair):
    ca = StationCa()
    root_type = ROOT_TYPE[pair.version]
    assert pair.csms_call("InstallCertificate", {"certificateType": root_type, "certificate": ca.pem()}).payload == {
        "status": "Accepted"
    }
    assert pair.csms_call("InstallCertificate", {"certificateType": root_type, "certificate": "junk"}).payload == {
        "status": "Rejected"
    }
    query = {"certificateType": root_type} if pair.version == OCPP16 else {"certificateType": [root_type]}
    listed = pair.csms_call("GetInstalledCertificateIds", query).payload
    expected = certificate_hash_data(ca.cert, ca.cert)
    if pair.version == OCPP16:
        assert listed == {"status": "Accepted", "certificateHashData": [expected]}
    else:
        chain = [{"certificateType": "CSMSRootCertificate", "certificateHashData": expected}]
        assert listed == {"status": "Accepted", "certificateHashDataChain": chain}

    assert pair.csms_call("DeleteCertificate", {"certificateHashData": expected}).payload == {"status": "Accepted"}
    assert pair.csms_call("DeleteCertificate", {"certificateHashData": expected}).payload == {"status": "NotFound"}
    assert pair.csms_call("GetInstalledCertificateIds", query).payload == {"status": "NotFound"}


def write(pair: StationPair, name: str, value: str) -> str:
    if pair.version == OCPP16:
        return pair.csms_call("ChangeConfiguration", {"key": name, "value": value}).payload["status"]
    component, variable = name.split(".")
    item = {"component": {"name": component}, "variable": {"name": variable}, "attributeValue": value}
    answer = pair.csms_call("SetVariables", {"setVariableData": [item]}).payload
    return answer["setVariableResult"][0]["attributeStatus"]


def test_a_new_password_is_checked_then_used_at_an_immediate_reconnect(pair):
    name = "AuthorizationKey" if pair.version == OCPP16 else "SecurityCtrlr.BasicAuthPassword"
    assert write(pair, name, "short") == "Rejected"
    assert pair.charger.security.password is None

    new = "good-password-0016"
    wire = new.encode().hex() if pair.version == OCPP16 else new  # the 1.6 extension writes the bytes in hex
    if pair.version == OCPP16:
        assert write(pair, name, new) == "Rejected"  # not hexadecimal
        assert write(pair, name, ("x" * 21).encode().hex()) == "Rejected"  # 21 bytes: over the 1.6 limit
    attempts = len(pair.connect_attempts)
    assert write(pair, name, wire) == "Accepted"
    pair.run(5)
    assert pair.charger.security.password == new
    assert len(pair.connect_attempts) == attempts + 1  # reconnected with the new credentials
    assert security_events(pair) == ["ReconfigurationOfSecurityParameters"]


def test_the_16_security_profile_only_rises_and_needs_what_it_connects_with(tmp_path):
    pair = StationPair(tmp_path, OCPP16)
    pair.start()
    assert write(pair, "SecurityProfile", "2") == "Rejected"  # no CSMS root to verify the TLS server with
    ca = StationCa()
    pair.csms_call("InstallCertificate", {"certificateType": "CentralSystemRootCertificate", "certificate": ca.pem()})
    assert write(pair, "SecurityProfile", "3") == "Rejected"  # no client certificate yet
    assert write(pair, "SecurityProfile", "2") == "Accepted"
    pair.run(5)
    assert pair.charger.security.profile == 2
    assert write(pair, "SecurityProfile", "1") == "Rejected"
    assert signed(pair, ca.sign(ask_for_csr(pair))) == {"status": "Accepted"}
    assert write(pair, "SecurityProfile", "3") == "Accepted"
    pair.run(5)
    assert pair.charger.security.profile == 3
    read = pair.csms_call("GetConfiguration", {"key": ["SecurityProfile"]}).payload
    assert read["configurationKey"][0]["value"] == "3"


def test_a_201_network_profile_takes_effect_at_the_reboot(tmp_path):
    pair = StationPair(tmp_path, OCPP201)
    pair.start()
    connection = {
        "ocppVersion": "OCPP20",
        "ocppTransport": "JSON",
        "ocppCsmsUrl": "wss://csms.example:9443/ocpp",
        "messageTimeout": 30,
        "securityProfile": 2,
        "ocppInterface": "Wired0",
    }
    lower = {**connection, "securityProfile": 0}
    assert pair.csms_call("SetNetworkProfile", {"configurationSlot": 2, "connectionData": lower}).payload == {
        "status": "Rejected"
    }
    # TLS needs a CSMS root to verify the server with, and profile 3 a certificate: without, it could not connect
    assert pair.csms_call("SetNetworkProfile", {"configurationSlot": 1, "connectionData": connection}).payload == {
        "status": "Rejected"
    }
    pair.charger.security.install_root("CSMSRootCertificate", StationCa().pem())
    mutual = {**connection, "securityProfile": 3}
    assert pair.csms_call("SetNetworkProfile", {"configurationSlot": 3, "connectionData": mutual}).payload == {
        "status": "Rejected"
    }
    assert pair.csms_call("SetNetworkProfile", {"configurationSlot": 1, "connectionData": connection}).payload == {
        "status": "Accepted"
    }
    assert write(pair, "OCPPCommCtrlr.NetworkConfigurationPriority", "7") == "Rejected"
    assert write(pair, "OCPPCommCtrlr.NetworkConfigurationPriority", "1") == "RebootRequired"
    assert pair.charger.security.profile == 1  # nothing changes before the reboot

    assert pair.csms_call("Reset", {"type": "Immediate"}).payload == {"status": "Accepted"}
    pair.run(60)
    assert (pair.charger.security.profile, pair.charger.security.csms_url) == (2, "wss://csms.example:9443/ocpp")
    assert security_events(pair) == ["ReconfigurationOfSecurityParameters"]
    item = {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "SecurityProfile"}}
    got = pair.csms_call("GetVariables", {"getVariableData": [item]}).payload["getVariableResult"][0]
    assert (got["attributeStatus"], got["attributeValue"]) == ("Accepted", "2")
