"""Answers that wait for an outside lookup: the OCSP responder a certificate names, or the contract-certificate
provider (a secondary actor of ISO 15118).

A service that cannot answer from the database alone returns a :class:`Pending` instead of a decision: the
lookups to make (data: a URL and bytes to POST, or a request for the provider) and how to turn their results
into the decision. The host hands the lookups to its shell's :class:`Lookups` after the commit and calls
:meth:`Pending.finish` with what came back — ``None`` for a lookup that failed or was not back by the deadline
(``CsmsConfig.lookup_timeout_s``), so every call is answered within the station's reply timeout.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from csms.domain import events as ev
from csms.pki import chain, ocsp

if TYPE_CHECKING:
    from cryptography import x509


@dataclass(frozen=True, slots=True)
class OcspFetch:
    """POST ``request`` (DER OCSPRequest, ``application/ocsp-request``) to ``url``; the result is the body."""

    url: str
    request: bytes


@dataclass(frozen=True, slots=True)
class ContractRequest:
    """Get15118EVCertificate for the contract-certificate provider; the result is a :class:`ContractAnswer`."""

    schema_version: str
    action: str  # Install | Update
    exi_request: str  # base64, as the station sent it


@dataclass(frozen=True, slots=True)
class ContractAnswer:
    status: str  # Accepted | Failed
    exi_response: str  # base64


@dataclass(frozen=True, slots=True)
class RemoteAuthorization:
    """OCPI real-time authorisation: POST ``body`` (LocationReferences) to ``url`` (the eMSP's
    ``tokens/{uid}/authorize``) with the credentials ``token``; the result is the answer's ``data``
    (AuthorizationInfo) as a dict."""

    url: str
    token: str
    body: dict[str, Any]


Lookup = OcspFetch | ContractRequest | RemoteAuthorization
Result = bytes | ContractAnswer | dict[str, Any] | None


class Lookups(Protocol):
    """The shell's side: make a lookup, and call ``then(result)`` on the clock's thread when it is back
    (``None``: it failed). The host times lookups out itself; a late ``then`` is ignored."""

    def run(self, lookup: Lookup, then: Callable[[Result], None]) -> None: ...


class ContractProvider(Protocol):
    """A contract-certificate provider (a mobility operator's or a contract-certificate pool's back end)."""

    def request(self, request: ContractRequest, now: datetime) -> ContractAnswer: ...


class Pending:
    """An answer that waits for :attr:`lookups`; :meth:`finish` makes the decision from their results (in the
    same order; ``None`` for one that failed or timed out)."""

    @property
    def lookups(self) -> tuple[Lookup, ...]:
        raise NotImplementedError

    def finish(self, results: Sequence[Result], now: datetime) -> ev.Decision:
        raise NotImplementedError

    def ocsp_failure(self, decision: ev.Decision) -> dict[str, Any] | None:
        """What to record as an ``ocsp_failed`` security event about ``decision``, if anything."""
        return None


# ---- Authorize with a contract certificate (C07) ---------------------------------------------------------------
@dataclass(frozen=True)
class ContractCheck(Pending):
    """The eMAID's status is read, the chain (when sent) checked; OCSP has the last word on revocation."""

    token: ev.AuthorizationInfo
    asked: tuple[tuple[ev.CertificateId, x509.Certificate | None], ...]
    emaid: str = ""

    @property
    def lookups(self) -> tuple[Lookup, ...]:
        return tuple(OcspFetch(cert_id.responder_url, ocsp.request(cert_id)) for cert_id, _ in self.asked)

    def finish(self, results: Sequence[Result], now: datetime) -> ev.Decision:
        verdicts = [
            ocsp.verdict(cert_id, result if isinstance(result, bytes) else None, now, issuer)
            for (cert_id, issuer), result in zip(self.asked, results, strict=True)
        ]
        return contract_decision(self.token, certificate_status(verdicts))

    def ocsp_failure(self, decision: ev.Decision) -> dict[str, Any] | None:
        status = getattr(decision, "certificate_status", None)
        if status not in (chain.CERTIFICATE_REVOKED, chain.NO_CERTIFICATE_AVAILABLE):
            return None
        urls = sorted({cert_id.responder_url for cert_id, _ in self.asked})
        return {"request": "Authorize", "emaid": self.emaid, "certificate_status": status, "responders": urls}


def certificate_status(verdicts: Sequence[ocsp.Verdict]) -> str:
    """One revoked certificate revokes the contract; any other status than good leaves it unproven."""
    if ocsp.Verdict.REVOKED in verdicts:
        return chain.CERTIFICATE_REVOKED
    if all(one is ocsp.Verdict.GOOD for one in verdicts):
        return chain.ACCEPTED
    return chain.NO_CERTIFICATE_AVAILABLE


def contract_decision(token: ev.AuthorizationInfo, certificate_status: str) -> ev.ContractAuthorization:
    """C07: a contract whose certificate is not Accepted is not authorized, whatever the eMAID's own status."""
    if certificate_status != chain.ACCEPTED:
        token = ev.AuthorizationInfo("Invalid")
    return ev.ContractAuthorization(token, certificate_status)


# ---- GetCertificateStatus (M06) --------------------------------------------------------------------------------
@dataclass(frozen=True)
class StatusCheck(Pending):
    certificate: ev.CertificateId

    @property
    def lookups(self) -> tuple[Lookup, ...]:
        return (OcspFetch(self.certificate.responder_url, ocsp.request(self.certificate)),)

    def finish(self, results: Sequence[Result], now: datetime) -> ev.Decision:
        (answer,) = results
        if not isinstance(answer, bytes) or not _is_ocsp_response(answer):
            return ev.CertificateStatusAnswer("Failed")
        return ev.CertificateStatusAnswer("Accepted", base64.b64encode(answer).decode())

    def ocsp_failure(self, decision: ev.Decision) -> dict[str, Any] | None:
        if getattr(decision, "status", None) != "Failed":
            return None
        cert = self.certificate
        return {"request": "GetCertificateStatus", "serial_number": cert.serial_number, "responder": cert.responder_url}


def _is_ocsp_response(answer: bytes) -> bool:
    from cryptography.x509 import ocsp as x509_ocsp

    try:
        return x509_ocsp.load_der_ocsp_response(answer).response_status is x509_ocsp.OCSPResponseStatus.SUCCESSFUL
    except ValueError:
        return False


# ---- Get15118EVCertificate (M01, M02) --------------------------------------------------------------------------
@dataclass(frozen=True)
class ContractCertificateOrder(Pending):
    request: ContractRequest

    @property
    def lookups(self) -> tuple[Lookup, ...]:
        return (self.request,)

    def finish(self, results: Sequence[Result], now: datetime) -> ev.Decision:
        (answer,) = results
        if not isinstance(answer, ContractAnswer):
            return ev.EvCertificateAnswer("Failed")
        return ev.EvCertificateAnswer(answer.status, answer.exi_response)
