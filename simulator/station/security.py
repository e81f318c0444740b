"""What a charger keeps for its security: how it connects (profile, password, CSMS URL), its key and
certificate, the roots it trusts, and the network profiles a 2.0.1 CSMS gave it.

Both versions' firmware use it (the 1.6 security extension and 2.0.1 blocks A and M), and the links read it
at every connection attempt: a new password, profile, URL or certificate takes effect on the next connect.
Keys are EC P-256 (the OCPP security guidance allows it, and a key costs well under a millisecond, so a
fleet of thousands renews in a blink of virtual time); their randomness comes from the OS, which no
simulated outcome depends on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from csms.ocpp.certificate_hash import certificate_hash_data, same_certificate

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

#: Root types by wire name: 2.0.1 InstallCertificateUseEnumType, then 1.6's two.
ROOT_TYPES = (
    "V2GRootCertificate",
    "MORootCertificate",
    "CSMSRootCertificate",
    "ManufacturerRootCertificate",
    "CentralSystemRootCertificate",
)
#: 1.6 names the CSMS root differently; stored under the 2.0.1 name.
_ALIASES = {"CentralSystemRootCertificate": "CSMSRootCertificate"}
MAX_ROOTS = 20
_NONE: Mapping[Any, Any] = MappingProxyType({})


class Verdict(Enum):
    ACCEPTED = "Accepted"
    REJECTED = "Rejected"


@dataclass(frozen=True, slots=True)
class NetworkProfile:
    """One 2.0.1 SetNetworkProfile connection slot (what the charger needs of it)."""

    url: str
    security_profile: int
    ocpp_version: str = "OCPP20"


@dataclass(slots=True)
class StationSecurity:
    """Args:
    station_id: the CN of the charger's certificate and CSRs.
    profile: 1 (Basic auth), 2 (TLS + Basic auth), 3 (mutual TLS).
    password: HTTP Basic password (profiles 1 and 2).
    organization: the O of CSRs (1.6 ``CpoName``, 2.0.1 ``SecurityCtrlr.OrganizationName``).
    """

    station_id: str
    profile: int = 1
    password: str | None = None
    organization: str = "chargetwin"
    csms_url: str | None = None
    key: ec.EllipticCurvePrivateKey | None = None
    chain: Sequence[x509.Certificate] = ()
    priority: Sequence[int] = ()
    #: Which entry of ``priority`` the charger connects with now (it moves on when a connection fails).
    priority_index: int = 0
    # Every twin charger holds one and most never get a root, a network profile or a CSR: these are made at
    # the first (three empty dicts were 0.2 kB a charger).
    _roots: dict[str, list[x509.Certificate]] | None = field(default=None, init=False, repr=False)
    _network_profiles: dict[int, NetworkProfile] | None = field(default=None, init=False, repr=False)
    _pending: dict[str, ec.EllipticCurvePrivateKey] | None = field(default=None, init=False, repr=False)

    @property
    def roots(self) -> Mapping[str, list[x509.Certificate]]:
        """The trusted roots by type."""
        return self._roots or _NONE

    @property
    def network_profiles(self) -> Mapping[int, NetworkProfile]:
        """The 2.0.1 network profiles by configuration slot."""
        return self._network_profiles or _NONE

    # ---- the station certificate: CSR out, signed chain in -------------------------------------------------
    def csr(self, certificate_type: str = "ChargingStationCertificate") -> str:
        """A new key (kept until its certificate arrives) and the PEM CSR naming this station."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        if self._pending is None:
            self._pending = {}
        self._pending[certificate_type] = key
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, self.station_id),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.organization),
            ]
        )
        request = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
        return request.public_bytes(serialization.Encoding.PEM).decode()

    def certificate_signed(
        self, chain_pem: str, now: float, certificate_type: str = "ChargingStationCertificate"
    ) -> tuple[Verdict, str]:
        """Install a signed chain for the key of the last CSR; (Rejected, why) when it is not for that key,
        not for this station, or not valid now. The old certificate stays until a new one is accepted."""
        from cryptography import x509
        from cryptography.x509.oid import NameOID

        pending = self._pending or {}
        key = pending.get(certificate_type)
        if key is None:
            return Verdict.REJECTED, "no certificate signing request is pending"
        try:
            chain = x509.load_pem_x509_certificates(chain_pem.encode())
        except ValueError:
            return Verdict.REJECTED, "the chain is not PEM certificates"
        leaf = chain[0]
        if leaf.public_key() != key.public_key():
            return Verdict.REJECTED, "the certificate is not for the key of our request"
        names = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if not names or names[0].value != self.station_id:
            return Verdict.REJECTED, "the certificate names another station"
        at = datetime.fromtimestamp(now, UTC)
        if not leaf.not_valid_before_utc <= at <= leaf.not_valid_after_utc:
            return Verdict.REJECTED, "the certificate is not valid now"
        if certificate_type == "ChargingStationCertificate":
            self.key, self.chain = key, chain
        del pending[certificate_type]
        return Verdict.ACCEPTED, ""

    def client_certificate_pem(self) -> tuple[bytes, bytes] | None:
        """(certificate chain, private key) in PEM for a TLS client, or None without a certificate."""
        from cryptography.hazmat.primitives import serialization

        if self.key is None or not self.chain:
            return None
        chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain)
        key = self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return chain, key

    # ---- trusted roots -------------------------------------------------------------------------------------
    def install_root(self, certificate_type: str, pem: str) -> Verdict:
        from cryptography import x509

        kind = _ALIASES.get(certificate_type, certificate_type)
        try:
            certificate = x509.load_pem_x509_certificate(pem.encode())
        except ValueError:
            return Verdict.REJECTED
        if kind not in ROOT_TYPES or sum(len(v) for v in self.roots.values()) >= MAX_ROOTS:
            return Verdict.REJECTED
        if self._roots is None:
            self._roots = {}
        held = self._roots.setdefault(kind, [])
        if certificate not in held:
            held.append(certificate)
        return Verdict.ACCEPTED

    def installed(self, types: list[str] | None = None) -> list[tuple[str, dict[str, Any]]]:
        """(type, CertificateHashData) of the roots of the given types (all without), plus, when asked for
        in 2.0.1 terms, the station certificate's chain (``V2GCertificateChain`` is not held)."""
        wanted = {_ALIASES.get(t, t) for t in types} if types else set(ROOT_TYPES)
        return [
            (kind, certificate_hash_data(root, root))
            for kind in ROOT_TYPES
            if kind in wanted
            for root in self.roots.get(kind, [])
        ]

    def delete(self, hash_data: dict[str, Any]) -> str:
        """``Accepted``, ``NotFound``, or ``Failed`` for the certificate the charger connects with."""
        for kind, roots in self.roots.items():
            for root in roots:
                if same_certificate(certificate_hash_data(root, root), hash_data):
                    if kind == "CSMSRootCertificate" and self.profile >= 2 and len(roots) == 1:
                        return "Failed"  # the last root the TLS connection is verified against
                    roots.remove(root)
                    return "Accepted"
        if len(self.chain) > 1 and same_certificate(certificate_hash_data(self.chain[0], self.chain[1]), hash_data):
            return "Failed"  # the spec forbids deleting the charging station certificate this way
        return "NotFound"

    # ---- how to connect ------------------------------------------------------------------------------------
    def can_connect_with(self, profile: int) -> bool:
        """Never lower than now, TLS only with a CSMS root to verify the server, 3 only with a certificate: a
        station refuses a profile it could not connect with (1.6 SecurityProfile, 2.0.1 A05)."""
        if profile < self.profile or profile not in (1, 2, 3):
            return False
        if profile == 3 and self.client_certificate_pem() is None:
            return False
        return profile < 2 or bool(self.roots.get("CSMSRootCertificate"))

    def raise_profile(self, profile: int) -> Verdict:
        if not self.can_connect_with(profile):
            return Verdict.REJECTED
        self.profile = profile
        return Verdict.ACCEPTED

    def set_network_profile(self, slot: int, profile: NetworkProfile) -> Verdict:
        if not self.can_connect_with(profile.security_profile):
            return Verdict.REJECTED
        if self._network_profiles is None:
            self._network_profiles = {}
        self._network_profiles[slot] = profile
        return Verdict.ACCEPTED

    def set_priority(self, slots: list[int]) -> Verdict:
        if not slots or any(s not in self.network_profiles for s in slots):
            return Verdict.REJECTED
        self.priority = slots
        return Verdict.ACCEPTED

    def apply_priority(self) -> bool:
        """At a reboot: connect with the first slot of the priority list (True when that changed anything)."""
        self.priority_index = 0
        return self._use(0)

    def next_priority(self) -> bool:
        """A connection attempt failed: move on to the next slot of the priority list, after the last back to
        the first (2.0.1 B10: a station that cannot connect with one profile tries the next). True when the
        charger now connects elsewhere; a list of one slot (or none) changes nothing."""
        if len(self.priority) < 2:
            return False
        self.priority_index = (self.priority_index + 1) % len(self.priority)
        return self._use(self.priority_index)

    def _use(self, index: int) -> bool:
        if not self.priority:
            return False
        chosen = self.network_profiles[self.priority[index]]
        if chosen.security_profile == self.profile and chosen.url == self.csms_url:
            return False
        self.profile, self.csms_url = chosen.security_profile, chosen.url
        return True
