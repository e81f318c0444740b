"""The TLS a twin charger connects with (security profiles 2 and 3): it trusts the CSMS root certificates the
CSMS installed on it (InstallCertificate ``CSMSRootCertificate``, 1.6 ``CentralSystemRootCertificate``) and any
CA file the run was given, and on profile 3 presents its own certificate and key (from SignCertificate →
CertificateSigned, or given by the scenario)."""

from __future__ import annotations

import ssl
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from simulator.station.security import StationSecurity


def client_context(security: StationSecurity, ca_file: Path | str | None = None) -> ssl.SSLContext:
    """A TLS 1.2+ client context for the charger's next connection.

    Raises:
        ssl.SSLError: no root to verify the CSMS with (neither installed nor given).
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    roots = security.roots.get("CSMSRootCertificate", [])
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    if roots:
        cadata = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in roots)
        context.load_verify_locations(cadata=cadata)
    if ca_file is None and not roots:
        raise ssl.SSLError("no CSMS root certificate to verify the server with")
    pems = security.client_certificate_pem() if security.profile >= 3 else None
    if pems is not None:
        # ssl loads a certificate chain only from files: written to a private temporary directory, read, removed.
        with tempfile.TemporaryDirectory(prefix="chargetwin-tls-") as folder:
            cert_file, key_file = Path(folder) / "cert.pem", Path(folder) / "key.pem"
            cert_file.write_bytes(pems[0])
            key_file.touch(mode=0o600)
            key_file.write_bytes(pems[1])
            context.load_cert_chain(cert_file, key_file)
    return context
