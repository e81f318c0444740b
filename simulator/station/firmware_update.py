"""Firmware updates: 1.6 UpdateFirmware, 1.6 SignedUpdateFirmware (security extension), 2.0.1 UpdateFirmware.

Theory of operation
-------------------
One update at a time (:class:`UpdateJob`), moved along by the firmware timer and by the result of its
download (:mod:`.transfers`):

    retrieveDateTime in the future  → DownloadScheduled, wait
    download                        → Downloading → Downloaded, or a retry after retryInterval while
                                      retries last, then DownloadFailed (end)
    signed (signature + certificate) → SignatureVerified, or InvalidSignature (end, nothing installed)
    installDateTime in the future, or a transaction runs → InstallScheduled, wait (for the last
                                      transaction to end: :meth:`FirmwareUpdates.install_if_idle`)
    install                         → Installing, ``install_s`` later InstallRebooting and a reboot;
                                      once registered again (BootNotification with the new
                                      firmwareVersion, 2.0.1 reason FirmwareUpdate) → Installed

Every status goes out in the version's notification (:class:`Dialect`): 1.6 core FirmwareStatusNotification
knows only Downloading/Downloaded/DownloadFailed/Installing/Installed/InstallationFailed, so the others are not
sent there; 1.6 SignedFirmwareStatusNotification and 2.0.1 FirmwareStatusNotification carry every status and
the ``requestId``.

Decisions the specs leave open: the signature is checked with the signing certificate's public key over the
whole image (RSA PKCS#1 v1.5 or ECDSA, SHA-256); the new firmware version is the image's file name without
its extension (``fw-2.4.1.bin`` → ``fw-2.4.1``); absent ``retries`` means 2 retries, absent
``retryInterval`` 30 s; a new request while one is under way (before installing) replaces it
(``AcceptedCanceled``), while installing it is Rejected.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from csms.ocpp.convert import from_posix, parse_time
from csms.ocpp.versions import OCPP16
from simulator.station.registration import StationIdentity
from simulator.station.timers import Deadlines, Timer
from simulator.station.transfers import TransferDesk, TransferResult

if TYPE_CHECKING:
    from cryptography import x509

DEFAULT_RETRIES = 2
DEFAULT_RETRY_INTERVAL_S = 30.0


@dataclass(frozen=True)
class Dialect:
    """How a version reports an update's statuses."""

    action: str
    statuses: frozenset[str] | None  # None: all of them
    request_id: bool


V16_CORE = Dialect(
    "FirmwareStatusNotification",
    frozenset({"Downloaded", "DownloadFailed", "Downloading", "Idle", "InstallationFailed", "Installing", "Installed"}),
    request_id=False,
)
V16_SIGNED = Dialect("SignedFirmwareStatusNotification", None, request_id=True)
V201 = Dialect("FirmwareStatusNotification", None, request_id=True)


class UpdateHost(Protocol):
    """What a firmware update uses of the charger."""

    identity: StationIdentity
    boot_reason: str

    @property
    def version(self) -> str: ...
    @property
    def transactions(self) -> Mapping[int, Any]: ...
    def send(self, action: str, payload: dict[str, Any], now: float) -> bool: ...
    def after_reply(self, action: Callable[[float], None]) -> None: ...
    def after_connect(self, action: Callable[[float], None]) -> None: ...
    @property
    def station_inoperative(self) -> bool: ...
    def change_availability(self, connector_ids: list[int], operative: bool, now: float) -> str: ...


@dataclass
class UpdateJob:
    dialect: Dialect
    request_id: int | None
    url: str
    retrieve_at: float
    install_at: float | None
    retries_left: int
    retry_interval_s: float
    certificate: x509.Certificate | None = None
    signature: bytes | None = None
    state: str = "Accepted"
    transfer_id: int | None = None
    image: bytes = b""
    said_install_scheduled: bool = False
    #: The station was taken out of service for the install (and whether it was already, by the operator).
    took_out_of_service: bool = False
    was_inoperative: bool = False


def new_version(url: str) -> str:
    """The firmware version an image installs: its file name without the extension."""
    name = urlsplit(url).path.rsplit("/", 1)[-1] or "firmware"
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return stem[:50]


def signature_ok(certificate: x509.Certificate, signature: bytes, image: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    key = certificate.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, image, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, image, ec.ECDSA(hashes.SHA256()))
        else:
            return False
    except InvalidSignature:
        return False
    return True


def _signature(text: str) -> bytes | None:
    """The signature's bytes; None when it is not base64 (no image can match it: InvalidSignature)."""
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        return None


class InvalidCertificate(ValueError):
    """The signing certificate cannot be read, or is not valid now."""


def _certificate(pem: str, now: float, roots: list[x509.Certificate]) -> x509.Certificate:
    """The signing certificate, valid now and, when the charger holds ManufacturerRootCertificates, issued by
    one of them (with none installed there is nothing to check it against: it is taken as it comes)."""
    from cryptography import x509

    try:
        certificate = x509.load_pem_x509_certificate(pem.encode())
    except ValueError as exc:
        raise InvalidCertificate(f"unreadable signing certificate: {exc}") from None
    moment = from_posix(now)
    if not certificate.not_valid_before_utc <= moment <= certificate.not_valid_after_utc:
        raise InvalidCertificate("the signing certificate is not valid now")
    if roots and not any(_issued_by(certificate, root) for root in roots):
        raise InvalidCertificate("the signing certificate is not issued by an installed ManufacturerRootCertificate")
    return certificate


def _issued_by(certificate: x509.Certificate, root: x509.Certificate) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        certificate.verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


class FirmwareUpdates:
    """The charger's firmware-update job and its handlers (one per version's request)."""

    def __init__(
        self, host: UpdateHost, desk: TransferDesk, timers: Deadlines, *, install_s: float, reboot_delay_s: float
    ) -> None:
        self.host, self.desk, self.timers = host, desk, timers
        self.install_s, self.reboot_delay_s = install_s, reboot_delay_s
        self.job: UpdateJob | None = None
        #: Every status reported, (request id, status): the twin's record of what it did.
        self.reported: list[tuple[int | None, str]] = []
        #: The security events the 1.6 security whitepaper and 2.0.1 block L order: (type, techInfo, now).
        self.security_event: Callable[[str, str, float], None] = lambda kind, info, now: None
        #: The ManufacturerRootCertificates a signing certificate must come from (none: not checked).
        self.manufacturer_roots: Callable[[], list[x509.Certificate]] = list

    # ---- requests ---------------------------------------------------------------------------------------
    def update_firmware_v16(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        retrieve = parse_time(p["retrieveDate"])
        job = UpdateJob(
            V16_CORE,
            None,
            p["location"],
            now if retrieve is None else retrieve.timestamp(),
            None,
            int(p.get("retries", DEFAULT_RETRIES)),
            float(p.get("retryInterval", DEFAULT_RETRY_INTERVAL_S)),
        )
        if self.job is not None and self.job.state in ("Installing", "InstallRebooting"):
            return {}  # 1.6 UpdateFirmware has no status to refuse with: the running install goes on
        self._start(job, now)
        return {}

    def signed_update_firmware(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        """1.6 SignedUpdateFirmware and 2.0.1 UpdateFirmware (signature optional there)."""
        firmware = p["firmware"]
        dialect = V16_SIGNED if self.host.version == OCPP16 else V201
        retrieve = parse_time(firmware["retrieveDateTime"])
        install = parse_time(firmware.get("installDateTime"))
        job = UpdateJob(
            dialect,
            p["requestId"],
            firmware["location"],
            now if retrieve is None else retrieve.timestamp(),
            None if install is None else install.timestamp(),
            int(p.get("retries", DEFAULT_RETRIES)),
            float(p.get("retryInterval", DEFAULT_RETRY_INTERVAL_S)),
        )
        if "signingCertificate" in firmware or "signature" in firmware:
            try:
                job.certificate = _certificate(firmware.get("signingCertificate", ""), now, self.manufacturer_roots())
            except InvalidCertificate as exc:
                reason = str(exc)
                self.host.after_reply(
                    lambda when: self.security_event("InvalidFirmwareSigningCertificate", reason, when)
                )
                return {"status": "InvalidCertificate"}
            job.signature = _signature(firmware.get("signature", ""))
        if self.job is not None and self.job.state in ("Installing", "InstallRebooting"):
            return {"status": "Rejected"}
        replaced = self.job is not None
        self._start(job, now)
        return {"status": "AcceptedCanceled" if replaced else "Accepted"}

    def _start(self, job: UpdateJob, now: float) -> None:
        if self.job is not None:
            self.desk.forget(self.job.transfer_id)
            self._back_in_service(self.job, now)
        self.job = job
        self.timers.cancel(Timer.FIRMWARE)
        self.host.after_reply(self._begin)

    def _begin(self, now: float) -> None:
        job = self.job
        if job is None:
            return
        if job.retrieve_at > now:
            self._report("DownloadScheduled", now)
            self.timers.arm(Timer.FIRMWARE, job.retrieve_at)
        else:
            self._download(now)

    # ---- time and results -------------------------------------------------------------------------------
    def due(self, now: float) -> None:
        """The firmware timer fired: a scheduled or retried download, a scheduled install, or its end."""
        job = self.job
        if job is None:
            return
        if job.state in ("Accepted", "DownloadScheduled", "Retrying"):
            self._download(now)
        elif job.state in ("InstallScheduled", "SignatureVerified", "Downloaded"):
            self.install_if_idle(now)
        elif job.state == "Installing":
            self._installed(now)

    def _download(self, now: float) -> None:
        job = self.job
        assert job is not None
        self._report("Downloading", now)
        job.transfer_id = self.desk.download(job.url, self._downloaded)

    def _downloaded(self, result: TransferResult, now: float) -> None:
        job = self.job
        if job is None:
            return
        job.transfer_id = None
        if not result.ok:
            if job.retries_left > 0:
                job.retries_left -= 1
                job.state = "Retrying"
                self.timers.arm(Timer.FIRMWARE, now + job.retry_interval_s)
                return
            self._report("DownloadFailed", now)
            self.job = None
            return
        job.image = result.content
        self._report("Downloaded", now)
        if job.certificate is not None:
            if job.signature is None or not signature_ok(job.certificate, job.signature, job.image):
                self._report("InvalidSignature", now)
                self.security_event("InvalidFirmwareSignature", new_version(job.url), now)
                self.job = None
                return
            self._report("SignatureVerified", now)
        self.install_if_idle(now)

    def install_if_idle(self, now: float) -> None:
        """Install a downloaded (and verified) image now, unless its time has not come or a transaction runs."""
        job = self.job
        if job is None or job.state not in ("Downloaded", "SignatureVerified", "InstallScheduled"):
            return
        waiting_for_time = job.install_at is not None and job.install_at > now
        self._out_of_service(job, now)
        if waiting_for_time or self.host.transactions:
            if not job.said_install_scheduled:
                job.said_install_scheduled = True
                self._report("InstallScheduled", now)
            job.state = "InstallScheduled"
            if waiting_for_time:
                assert job.install_at is not None
                self.timers.arm(Timer.FIRMWARE, job.install_at)
            return
        self._report("Installing", now)
        self.timers.arm(Timer.FIRMWARE, now + self.install_s)

    def _installed(self, now: float) -> None:
        job = self.job
        assert job is not None
        self.host.identity = dataclasses.replace(self.host.identity, firmware_version=new_version(job.url))
        self._report("InstallRebooting", now)
        job.state = "InstallRebooting"
        self.timers.arm(Timer.REBOOT, now + self.reboot_delay_s)

    def rebooted(self, now: float) -> None:
        """The reboot that installs the image: the boot says why, and Installed follows registration."""
        job = self.job
        if job is None or job.state != "InstallRebooting":
            return
        if self.host.version != OCPP16:
            self.host.boot_reason = "FirmwareUpdate"
        self._back_in_service(job, now)
        self.job = None
        self.host.after_connect(functools.partial(self._installed_after_boot, job))

    def _out_of_service(self, job: UpdateJob, now: float) -> None:
        """Waiting to install, connectors not in use go Unavailable, the others once their transaction ends
        (1.6 recommends it, 2.0.1 L01.FR.07 orders it): no new session starts on a station about to reboot."""
        if not job.took_out_of_service:
            job.took_out_of_service, job.was_inoperative = True, self.host.station_inoperative
            self.host.change_availability([0], False, now)

    def _back_in_service(self, job: UpdateJob, now: float) -> None:
        """Undo :meth:`_out_of_service` (unless the operator had the station out of service already)."""
        if job.took_out_of_service and not job.was_inoperative:
            job.took_out_of_service = False
            self.host.change_availability([0], True, now)

    def _installed_after_boot(self, job: UpdateJob, now: float) -> None:
        self._notify(job, "Installed", now)
        if job.dialect is not V16_CORE:  # the security extension's and 2.0.1's critical event
            self.security_event("FirmwareUpdated", self.host.identity.firmware_version, now)

    # ---- notifications ----------------------------------------------------------------------------------
    def _report(self, status: str, now: float) -> None:
        job = self.job
        assert job is not None
        job.state = status
        self._notify(job, status, now)

    def _notify(self, job: UpdateJob, status: str, now: float) -> None:
        self.reported.append((job.request_id, status))
        dialect = job.dialect
        if dialect.statuses is not None and status not in dialect.statuses:
            return
        payload: dict[str, Any] = {"status": status}
        if dialect.request_id and job.request_id is not None:
            payload["requestId"] = job.request_id
        self.host.send(dialect.action, payload, now)

    def triggered(self) -> dict[str, Any]:
        """What a triggered FirmwareStatusNotification says: the job's state (with its requestId), or Idle."""
        job = self.job
        if job is None:
            return {"status": "Idle"}
        status = _BETWEEN_STATES.get(job.state, job.state)
        if job.dialect.statuses is not None and status not in job.dialect.statuses:
            status = _V16_CORE_NEAREST.get(status, "Idle")
        payload: dict[str, Any] = {"status": status}
        if job.dialect.request_id and job.request_id is not None:
            payload["requestId"] = job.request_id
        return payload


#: The job's states between two reported statuses, as a trigger reports them.
_BETWEEN_STATES = {"Accepted": "DownloadScheduled", "Retrying": "DownloadScheduled"}
#: 1.6 core FirmwareStatus has no word for these: the nearest it has.
_V16_CORE_NEAREST = {
    "DownloadScheduled": "Idle",
    "SignatureVerified": "Downloaded",
    "InstallScheduled": "Downloaded",
    "InstallRebooting": "Installing",
}
