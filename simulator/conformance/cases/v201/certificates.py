"""Throw-away X.509 material for the security and ISO 15118 cases, made with the ``openssl`` command (the
project has no crypto library): a CA, certificates it signs, certificate signing requests, a self-signed
certificate no CSMS trusts, the OCSP CertID of a certificate, and an OCSP responder on loopback.

Everything lives in a temporary directory that goes away with the :class:`Pki`. Without ``openssl`` on the
PATH the cases that need it are not run.
"""

from __future__ import annotations

import base64
import http.server
import shutil
import subprocess
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from simulator.conformance.station import NotRun

#: How long one openssl command may take [s].
OPENSSL_TIMEOUT_S = 20.0


def _openssl(*args: str, cwd: Path, stdin: bytes | None = None) -> bytes:
    if shutil.which("openssl") is None:
        raise NotRun("the case needs the openssl command to make its certificates")
    done = subprocess.run(
        ["openssl", *args], cwd=cwd, input=stdin, capture_output=True, timeout=OPENSSL_TIMEOUT_S, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)}: {done.stderr.decode(errors='replace')[-500:]}")
    return done.stdout


class Pki:
    """A CA of the case's own in a temporary directory."""

    def __init__(self, root: Path, name: str) -> None:
        self.root, self.name = root, name
        self.ca_cert, self.ca_key = root / "ca.pem", root / "ca.key"
        self._serial = 0x1000

    @classmethod
    @contextmanager
    def create(cls, name: str = "chargetwin conformance CA") -> Iterator[Pki]:
        with tempfile.TemporaryDirectory(prefix="ct-pki-") as where:
            pki = cls(Path(where), name)
            _openssl(
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", f"/CN={name}",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                cwd=pki.root,
            )  # fmt: skip
            yield pki

    def path(self, name: str) -> Path:
        return self.root / name

    def csr(self, common_name: str, organization: str = "chargetwin") -> tuple[str, Path]:
        """A new key pair and its PEM certificate signing request; returns (csr, key file)."""
        stem = f"csr-{self._next()}"
        _openssl(
            "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{stem}.key", "-out", f"{stem}.csr", "-subj", f"/CN={common_name}/O={organization}",
            cwd=self.root,
        )  # fmt: skip
        return self.path(f"{stem}.csr").read_text(), self.path(f"{stem}.key")

    def issue(
        self, common_name: str, *, csr: str | None = None, ocsp_url: str | None = None
    ) -> tuple[str, Path | None]:
        """A certificate signed by this CA (for ``csr``, or for a new key; naming ``ocsp_url`` as its OCSP
        responder when given); returns (PEM, key file or None)."""
        key: Path | None = None
        if csr is None:
            csr, key = self.csr(common_name)
        serial = self._next()
        stem = f"cert-{serial}"
        self.path(f"{stem}.csr").write_text(csr)
        extensions: tuple[str, ...] = ()
        if ocsp_url is not None:
            self.path(f"{stem}.ext").write_text(f"authorityInfoAccess = OCSP;URI:{ocsp_url}\n")
            extensions = ("-extfile", f"{stem}.ext")
        _openssl(
            "x509", "-req", "-in", f"{stem}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", str(serial),
            "-days", "1", "-out", f"{stem}.pem", *extensions,
            cwd=self.root,
        )  # fmt: skip
        return self.path(f"{stem}.pem").read_text(), key

    def self_signed(self, common_name: str) -> tuple[Path, Path]:
        """A certificate that no CA signed (an invalid client certificate): (certificate file, key file)."""
        stem = f"self-{self._next()}"
        _openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{stem}.key", "-out", f"{stem}.pem", "-days", "1", "-subj", f"/CN={common_name}",
            cwd=self.root,
        )  # fmt: skip
        return self.path(f"{stem}.pem"), self.path(f"{stem}.key")

    def hash_data(self, certificate: str, responder_url: str) -> list[dict[str, str]]:
        """OCPP's OCSPRequestDataType of ``certificate`` (issued by this CA), SHA256."""
        stem = f"hash-{self._next()}"
        self.path(f"{stem}.pem").write_text(certificate)
        text = _openssl(
            "ocsp", "-sha256", "-issuer", "ca.pem", "-cert", f"{stem}.pem", "-no_nonce", "-req_text",
            "-reqout", f"{stem}.der",
            cwd=self.root,
        ).decode()  # fmt: skip
        fields = {}
        for line in text.splitlines():
            key, _, value = line.strip().partition(":")
            fields[key.strip()] = value.strip()
        return [
            {
                "hashAlgorithm": "SHA256",
                "issuerNameHash": fields["Issuer Name Hash"].lower(),
                "issuerKeyHash": fields["Issuer Key Hash"].lower(),
                "serialNumber": fields["Serial Number"].lower(),
                "responderURL": responder_url,
            }
        ]

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

    def answer(self, request: bytes) -> bytes:
        self.requests += 1
        root = self.pki.root
        (root / "ocsp-req.der").write_bytes(request)
        (root / "index.txt").write_text(self._index())
        _openssl(
            "ocsp", "-index", "index.txt", "-rsigner", "ca.pem", "-rkey", "ca.key", "-CA", "ca.pem",
            "-reqin", "ocsp-req.der", "-respout", "ocsp-resp.der",
            cwd=root,
        )  # fmt: skip
        return (root / "ocsp-resp.der").read_bytes()

    def _index(self) -> str:
        """openssl's CA database: one line per certificate this CA issued, good or revoked."""
        lines = []
        for pem in sorted(self.pki.root.glob("cert-*.pem")):
            serial = pem.stem.split("-")[1]
            status = "R\t991231235959Z\t260101000000Z" if self.revoked else "V\t991231235959Z\t"
            lines.append(f"{status}\t{int(serial):X}\tunknown\t/CN=contract\n")
        return "".join(lines)
