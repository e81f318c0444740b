"""The TLS a twin charger connects with (security profiles 2 and 3): it trusts the CSMS root certificates the
CSMS installed on it (InstallCertificate ``CSMSRootCertificate``, 1.6 ``CentralSystemRootCertificate``) and any
CA file the run was given, and on profile 3 presents its own certificate and key (from SignCertificate →
CertificateSigned, or given by the scenario)."""

from __future__ import annotations

import ssl
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from simulator.station.security import StationSecurity

#: OpenSSL's X509_V_FLAG_NO_CHECK_TIME (not named by the ssl module): in virtual time the wall clock says
#: nothing about a certificate's validity; :func:`handshake_in_memory` checks it against the run's clock.
_NO_CHECK_TIME = 0x200000
#: The longest a TLS 1.2/1.3 handshake takes in round trips; more means a peer that is not speaking TLS.
_MAX_ROUNDS = 8


def without_wall_clock(context: ssl.SSLContext) -> ssl.SSLContext:
    """``context`` verifying certificates without the wall clock (see :func:`handshake_in_memory`)."""
    context.verify_flags |= _NO_CHECK_TIME
    return context


def client_context(
    security: StationSecurity, ca_file: Path | str | None = None, *, virtual_time: bool = False
) -> ssl.SSLContext:
    """A TLS 1.2+ client context for the charger's next connection (``virtual_time``: for
    :func:`handshake_in_memory`).

    Raises:
        ssl.SSLError: no root to verify the CSMS with (neither installed nor given).
    """
    from cryptography.hazmat.primitives import serialization

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if virtual_time:
        without_wall_clock(context)
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


@dataclass(frozen=True, slots=True)
class Handshake:
    """How a TLS handshake in memory ended: the client certificate the server verified (``getpeercert()``
    form; empty: none sent), or who refused and why."""

    peercert: dict[str, Any] | None = None
    #: The server refused the client's certificate (a security event on the CSMS's side).
    server_refused: str | None = None
    #: The client refused the server (its certificate, its name, or the TLS it offered).
    client_refused: str | None = None


def handshake_in_memory(
    client: ssl.SSLContext, server: ssl.SSLContext, server_name: str | None, now: float
) -> Handshake:
    """A real TLS handshake between two contexts through memory buffers (the in-process link's wss://): the
    chain, signatures, names and key usage are OpenSSL's to check; the validity periods, which OpenSSL
    would read off the wall clock, are checked here against ``now`` (both contexts must be made with
    :func:`without_wall_clock`)."""
    up_in, up_out, down_in, down_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    charger = client.wrap_bio(down_in, up_out, server_hostname=server_name)
    csms = server.wrap_bio(up_in, down_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(_MAX_ROUNDS):
        try:
            done["client"] = done["client"] or _step(charger)
        except ssl.SSLError as exc:
            return Handshake(client_refused=_why(exc))
        up_in.write(up_out.read())
        try:
            done["server"] = done["server"] or _step(csms)
        except ssl.SSLCertVerificationError as exc:
            return Handshake(server_refused=_why(exc))
        except ssl.SSLError as exc:
            return Handshake(client_refused=f"the server ended the handshake: {_why(exc)}")
        down_in.write(down_out.read())
        if done["client"] and done["server"]:
            break
    else:
        return Handshake(client_refused="the TLS handshake did not finish")
    server_leaf = charger.getpeercert(binary_form=True)
    stale = _outside_validity(server_leaf, now)
    if stale:
        return Handshake(client_refused=f"the server's {stale}")
    client_leaf = csms.getpeercert(binary_form=True)
    stale = _outside_validity(client_leaf, now)
    if stale:
        return Handshake(server_refused=stale)
    return Handshake(peercert=csms.getpeercert() or {})


def _step(side: ssl.SSLObject) -> bool:
    try:
        side.do_handshake()
    except ssl.SSLWantReadError:
        return False
    return True


def _why(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return str(exc.verify_message)
    return str(exc.reason or exc)


def _outside_validity(der: bytes | None, now: float) -> str | None:
    """OpenSSL's words for a certificate outside its validity period at ``now`` (None: inside, or none sent)."""
    from cryptography import x509

    if not der:
        return None
    certificate = x509.load_der_x509_certificate(der)
    at = datetime.fromtimestamp(now, UTC)
    if at < certificate.not_valid_before_utc:
        return "certificate is not yet valid"
    if at > certificate.not_valid_after_utc:
        return "certificate has expired"
    return None
