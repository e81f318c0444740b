"""A throwaway PKI for TLS on loopback, written as PEM files: CAs, a server certificate for
localhost/127.0.0.1 and station (client) certificates, built by the project's one PKI (:mod:`csms.pki.build`).
The project's TLS tests and the published conformance run (:mod:`simulator.conformance.publish`) serve
``wss://`` with it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509

from csms.pki import build

ORGANISATION = "chargetwin loopback"
DAYS = 2


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: build.PrivateKey
    cert_file: Path
    key_file: Path


def _write(directory: Path, stem: str, cert: x509.Certificate, key: build.PrivateKey) -> Issued:
    directory.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_file.write_text(build.cert_pem(cert))
    key_file.write_text(build.key_pem(key))
    return Issued(cert, key, cert_file, key_file)


def make_ca(directory: Path, common_name: str) -> Issued:
    cert, key = build.make_ca(build.name(common_name, ORGANISATION), datetime.now(UTC), DAYS)
    return _write(directory, common_name, cert, key)


def issue(directory: Path, ca: Issued, common_name: str, *, server: bool = False) -> Issued:
    """A leaf certificate signed by ``ca``: for a TLS server on loopback, or for a station (TLS client)."""
    key = build.new_key()
    names = ("localhost", "127.0.0.1") if server else ()
    subject = build.name(common_name, ORGANISATION)
    cert = build.issue((ca.cert, ca.key), subject, key.public_key(), datetime.now(UTC), DAYS, server_names=names)
    return _write(directory, f"{common_name}-{ca.cert_file.stem}", cert, key)
