"""The scenario's ``update_firmware`` action as one thing both operators carry out (the embedded CSMS's in
virtual time, an operator adapter against another CSMS in real time): the image to store under its name and,
signed, the certificate and signature that go with it in the UpdateFirmware request.

A run has one manufacturer (:class:`FirmwareSigner`): a root CA and a code-signing leaf made by the CSMS's
PKI builders at the first signed roll-out, valid from the chargers' clock then (the chargers check the
certificate against their own clock, which in a scenario is the scenario's, not the wall's). The chargers hold
no ManufacturerRootCertificate, so they take the certificate as it comes and check the signature with it.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

from csms.ocpp.convert import from_posix
from csms.pki import build
from simulator.operators import FirmwareImage
from simulator.scenario.models import UpdateFirmware

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

#: How long the run's firmware-signing certificate is valid, from its first signed roll-out (days).
SIGNER_DAYS = 365
#: What a tampered image has that the signed one had not.
TAMPERING = b"# altered after signing\n"


class FirmwareSigner:
    """The run's firmware manufacturer: signs images with one code-signing certificate (made when first asked)."""

    def __init__(self, organisation: str = "chargetwin twin manufacturer") -> None:
        self.organisation = organisation
        self._signer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None

    def certificate_pem(self, now: float) -> str:
        return build.cert_pem(self._key_pair(now)[0])

    def sign(self, image: bytes, now: float) -> str:
        """The base64 ECDSA (SHA-256) signature of the whole image, as the chargers check it."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        key = self._key_pair(now)[1]
        return base64.b64encode(key.sign(image, ec.ECDSA(hashes.SHA256()))).decode()

    def _key_pair(self, now: float) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        if self._signer is None:
            at = from_posix(now)
            root = build.make_ca(build.name("Firmware Root", self.organisation), at, SIGNER_DAYS)
            self._signer = build.firmware_signer(root, "Firmware Signing", at, SIGNER_DAYS)
        return self._signer


def image_of(version: str) -> bytes:
    """The firmware image a roll-out of ``version`` stores (the same bytes every run: storing it is idempotent)."""
    return f"chargetwin twin firmware {version}\n".encode()


def roll_out(item: UpdateFirmware, signer: FirmwareSigner, now: float) -> FirmwareImage:
    """The image, its name and (``signed``) its certificate and signature; ``tampered``: signed, then altered,
    under a name of its own (``{version}-tampered.bin``) so the genuine image stays as it was."""
    image = image_of(item.version)
    if not item.signed:
        return FirmwareImage(f"{item.version}.bin", image)
    certificate, signature = signer.certificate_pem(now), signer.sign(image, now)
    if item.tampered:
        return FirmwareImage(f"{item.version}-tampered.bin", image + TAMPERING, certificate, signature)
    return FirmwareImage(f"{item.version}.bin", image, certificate, signature)
