"""Throw-away X.509 material for the security and ISO 15118 cases, made with the project's ``cryptography``
builders (:mod:`csms.pki.build`): a CA, certificates it signs, certificate signing requests, a self-signed
certificate no CSMS trusts, the OCSP CertID of a certificate, and an OCSP responder on loopback.

Everything lives in a temporary directory that goes away with the :class:`Pki`.
"""

from __future__ import annotations

import base64
import http.server
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import ocsp

from csms.ocpp.certificate_hash import certificate_hash_data
from csms.pki import build

#: Validity of everything the case PKI makes [days].
DAYS = 2


class Pki:
    """A CA of the case's own in a temporary directory."""

    def __init__(self, root: Path, name: str) -> None:
        self.root, self.name = root, name
        self.ca_cert, self.ca_key = root / "ca.pem", root / "ca.key"
        self.now = datetime.now(UTC)
        self.ca, self.key = build.make_ca(build.name(name, None), self.now, DAYS)
        self.ca_cert.write_text(build.cert_pem(self.ca))
        self.ca_key.write_text(build.key_pem(self.key))
        self._serial = 0x1000
        #: Every certificate this CA issued, by serial (what the OCSP responder knows).
        self.issued: dict[int, x509.Certificate] = {}

    @classmethod
    @contextmanager
    def create(cls, name: str = "chargetwin conformance CA") -> Iterator[Pki]:
        with tempfile.TemporaryDirectory(prefix="ct-pki-") as where:
            yield cls(Path(where), name)

    def path(self, name: str) -> Path:
        return self.root / name

    def _key_file(self, key: build.PrivateKey) -> Path:
        path = self.path(f"key-{self._next()}.key")
        path.write_text(build.key_pem(key))
        return path

    def csr(self, common_name: str, organization: str = "chargetwin") -> tuple[str, Path]:
        """A new key pair and its PEM certificate signing request; returns (csr, key file)."""
        key = build.new_key()
        request = build.csr(key, common_name, organization)
        return request.public_bytes(serialization.Encoding.PEM).decode(), self._key_file(key)

    def issue(
        self, common_name: str, *, csr: str | None = None, ocsp_url: str | None = None
    ) -> tuple[str, Path | None]:
        """A certificate signed by this CA (for ``csr``, or for a new key; naming ``ocsp_url`` as its OCSP
        responder when given); returns (PEM, key file or None)."""
        key_file: Path | None = None
        if csr is None:
            key = build.new_key()
            public_key: build.PublicKey = key.public_key()
            subject = build.name(common_name, None)
            key_file = self._key_file(key)
        else:
            request = x509.load_pem_x509_csr(csr.encode())
            requested = request.public_key()
            assert isinstance(requested, ec.EllipticCurvePublicKey | rsa.RSAPublicKey), type(requested)
            public_key, subject = requested, request.subject
        cert = build.issue((self.ca, self.key), subject, public_key, self.now, DAYS, ocsp_url=ocsp_url)
        self.issued[cert.serial_number] = cert
        return build.cert_pem(cert), key_file

    def self_signed(self, common_name: str) -> tuple[Path, Path]:
        """A certificate that no CA signed (an invalid client certificate): (certificate file, key file)."""
        cert, key = build.make_ca(build.name(common_name, None), self.now, DAYS)
        path = self.path(f"self-{self._next()}.pem")
        path.write_text(build.cert_pem(cert))
        return path, self._key_file(key)

    def hash_data(self, certificate: str, responder_url: str) -> list[dict[str, str]]:
        """OCPP's OCSPRequestDataType of ``certificate`` (issued by this CA), SHA256."""
        cert = x509.load_pem_x509_certificate(certificate.encode())
        return [{**certificate_hash_data(cert, self.ca), "responderURL": responder_url}]

    def _next(self) -> int:
        self._serial += 1
        return self._serial


class OcspResponder:
    """An OCSP responder on loopback for the certificates of ``pki``: every one is good, or every one revoked.
    ``requests`` counts the OCSP requests it answered."""

    def __init__(self, pki: Pki, *, revoked: bool) -> None:
        self.pki, self.revoked = pki, revoked
        self.requests = 0
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/ocsp"

    def __enter__(self) -> OcspResponder:
        responder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self._reply(responder.answer(body))

            def do_GET(self) -> None:  # RFC 6960 A.1: the request base64 in the path
                encoded = urllib.parse.unquote(self.path.split("/ocsp/", 1)[-1])
                self._reply(responder.answer(base64.b64decode(encoded)))

            def _reply(self, answer: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/ocsp-response")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="ocsp responder", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def answer(self, request_der: bytes) -> bytes:
        """A signed OCSP response: good or revoked for a certificate the CA issued, else unauthorized."""
        self.requests += 1
        try:
            request = ocsp.load_der_ocsp_request(request_der)
        except ValueError:
            return ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST).public_bytes(
                serialization.Encoding.DER
            )
        cert = self.pki.issued.get(request.serial_number)
        if cert is None:
            return ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED).public_bytes(
                serialization.Encoding.DER
            )
        now = datetime.now(UTC)
        status = ocsp.OCSPCertStatus.REVOKED if self.revoked else ocsp.OCSPCertStatus.GOOD
        builder = ocsp.OCSPResponseBuilder().add_response(
            cert=cert,
            issuer=self.pki.ca,
            algorithm=request.hash_algorithm,
            cert_status=status,
            this_update=now,
            next_update=now + timedelta(hours=1),
            revocation_time=now - timedelta(hours=1) if self.revoked else None,
            revocation_reason=None,
        )
        # the signer's certificate rides along (as openssl's responder sends it): a CSMS that got hash data only
        # finds the issuer's key there
        builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, self.pki.ca).certificates([self.pki.ca])
        return builder.sign(self.pki.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
