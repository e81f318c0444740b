"""The CSMS's charging-station CA as files in one directory, and the signing of stations' CSRs.

``csms pki init DIR`` writes (PEM; keys unencrypted, mode 0600):

* ``root-ca.pem``/``.key`` — the CSMS root; stations install it as their CSMSRootCertificate
  (``csms-root.pem`` is the file to give them). Absent when the operator brings an external CA.
* ``station-ca.pem``/``.key`` — the sub-CA (or the operator's external CA) that signs station certificates;
  ``csms serve --pki DIR`` trusts exactly it for client certificates (security profile 3).
* ``server.pem``/``.key`` — the CSMS's wss:// certificate (with the chain up to, not including, the root).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from csms.pki import build
from csms.pki.csr import checked_csr

if TYPE_CHECKING:
    from cryptography import x509

    from csms.pki.build import PrivateKey

ROOT_DAYS = 3650
SUB_CA_DAYS = 1825
SERVER_DAYS = 365
DEFAULT_CERTIFICATE_DAYS = 365


@dataclass(frozen=True)
class CaPaths:
    directory: Path

    @property
    def root_cert(self) -> Path:
        return self.directory / "root-ca.pem"

    @property
    def root_key(self) -> Path:
        return self.directory / "root-ca.key"

    @property
    def station_ca_cert(self) -> Path:
        return self.directory / "station-ca.pem"

    @property
    def station_ca_key(self) -> Path:
        return self.directory / "station-ca.key"

    @property
    def server_cert(self) -> Path:
        return self.directory / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.directory / "server.key"

    @property
    def csms_root(self) -> Path:
        """What stations must trust to verify the server (their CSMSRootCertificate)."""
        return self.directory / "csms-root.pem"


@dataclass(frozen=True)
class StationCa:
    """The CA that signs station certificates, the chain above it, and the subject rules of its CSRs."""

    cert: x509.Certificate
    key: PrivateKey
    #: Certificates above ``cert`` up to the root (excluded), sent with each issued certificate.
    intermediates: tuple[x509.Certificate, ...] = ()
    #: The subject O every CSR must carry (None: not checked).
    organisation: str | None = None
    days: int = DEFAULT_CERTIFICATE_DAYS

    def sign(self, csr_pem: str, station_id: str, now: datetime) -> x509.Certificate:
        """Raises csms.pki.csr.CsrRefused: the CSR fails a check."""
        subject, public_key = checked_csr(csr_pem, station_id, self.organisation)
        return build.issue((self.cert, self.key), subject, public_key, now, self.days)

    def chain_pem(self, leaf: x509.Certificate) -> str:
        """The leaf and every CA under the root: what CertificateSigned carries."""
        return build.cert_pem(leaf, self.cert, *self.intermediates)


def _write(path: Path, text: str, *, secret: bool = False) -> None:
    path.write_text(text)
    if secret:
        os.chmod(path, 0o600)


def init(
    directory: Path,
    now: datetime,
    *,
    organisation: str,
    server_names: tuple[str, ...],
    external: tuple[bytes, bytes] | None = None,
) -> CaPaths:
    """Write a new CA directory: a root and a station sub-CA, or the operator's ``external`` (certificate,
    key) PEM as the station CA; and a server certificate for ``server_names``.

    Raises:
        FileExistsError: the directory holds a CA already.  ValueError: the external CA is unusable.
    """
    paths = CaPaths(directory)
    if paths.station_ca_cert.exists():
        raise FileExistsError(f"{paths.station_ca_cert} exists: not overwriting a CA")
    directory.mkdir(parents=True, exist_ok=True)
    if external is None:
        root = build.make_ca(build.name(f"{organisation} CSMS root CA", organisation), now, ROOT_DAYS, path_length=1)
        sub = build.make_ca(build.name(f"{organisation} station CA", organisation), now, SUB_CA_DAYS, issuer=root)
        _write(paths.root_cert, build.cert_pem(root[0]))
        _write(paths.root_key, build.key_pem(root[1]), secret=True)
        server_issuer, trust = root, root[0]
    else:
        sub = _external(*external)
        server_issuer, trust = sub, sub[0]
    _write(paths.station_ca_cert, build.cert_pem(sub[0]))
    _write(paths.station_ca_key, build.key_pem(sub[1]), secret=True)
    server_key = build.new_key()
    server = build.issue(
        server_issuer, build.name(server_names[0], organisation), server_key.public_key(), now, SERVER_DAYS,
        server_names=server_names,
    )  # fmt: skip
    _write(paths.server_cert, build.cert_pem(server))
    _write(paths.server_key, build.key_pem(server_key), secret=True)
    _write(paths.csms_root, build.cert_pem(trust))
    return paths


def _external(cert_pem: bytes, key_pem: bytes) -> tuple[x509.Certificate, PrivateKey]:
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(cert_pem)
    key = build.load_key(key_pem)
    if cert.public_key() != key.public_key():
        raise ValueError("the CA key does not belong to the CA certificate")
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    if not constraints.ca:
        raise ValueError("the certificate is not a CA (basicConstraints CA:FALSE)")
    return cert, key


def load(directory: Path, *, organisation: str | None = None, days: int = DEFAULT_CERTIFICATE_DAYS) -> StationCa:
    """The station CA of a directory written by :func:`init`. ``organisation``: the subject O CSRs must
    carry (default: the station CA's own O).

    Raises:
        OSError: a file is missing.  ValueError: a file is not what it should be.
    """
    from cryptography import x509

    paths = CaPaths(directory)
    cert = x509.load_pem_x509_certificate(paths.station_ca_cert.read_bytes())
    key = build.load_key(paths.station_ca_key.read_bytes())
    if cert.public_key() != key.public_key():
        raise ValueError(f"{paths.station_ca_key} does not belong to {paths.station_ca_cert}")
    return StationCa(cert, key, (), organisation or build.organisation(cert.subject), days)
