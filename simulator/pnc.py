"""Plug & Charge in the twin: the mobility operator that issued the vehicles' contract certificates, and the
embedded CSMS's way to reach it in virtual time.

:class:`MobilityOperator` is a local test CA (:class:`csms.pki.local_ca.LocalTestCa`, the same code the
CSMS's built-in provider and the loopback responder use) issuing one contract certificate per eMAID, with its
OCSP responder at :data:`RESPONDER_URL`. :class:`InProcessLookups` is the embedded CSMS's
:class:`~csms.pki.lookups.Lookups`: the host's OCSP requests reach that CA's responder without a socket, after
a virtual latency, so the same verifier code runs as in ``csms serve`` on another transport. A URL it does not
know fails, as an unreachable responder would.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from csms.core.scheduler import Timers
from csms.ocpp.convert import from_posix
from csms.pki import ocsp
from csms.pki.local_ca import LocalTestCa
from csms.pki.lookups import ContractProvider, ContractRequest, Lookup, OcspFetch, Result

#: Where the twin's mobility operator answers OCSP (never resolved: the embedded CSMS reaches it in-process).
RESPONDER_URL = "http://ocsp.mobility-operator.twin/ocsp"


class MobilityOperator:
    def __init__(self, now: datetime) -> None:
        self.ca = LocalTestCa.generate("chargetwin twin MO root", now - timedelta(days=1), RESPONDER_URL)
        self._contracts: dict[str, tuple[dict[str, str], ...]] = {}

    @property
    def root_pem(self) -> str:
        return self.ca.cert_pem

    def contract(self, emaid: str, now: datetime) -> tuple[dict[str, str], ...]:
        """The OCSP data (iso15118CertificateHashData) of ``emaid``'s contract certificate, issued on first use."""
        if emaid not in self._contracts:
            cert = self.ca.issue(emaid, now, valid_for=timedelta(days=365))
            self._contracts[emaid] = (ocsp.to_ocpp(ocsp.certificate_id(cert, self.ca.cert, RESPONDER_URL)),)
        return self._contracts[emaid]


class InProcessLookups:
    def __init__(
        self,
        timers: Timers,
        operator: MobilityOperator,
        provider: ContractProvider | None = None,
        latency_s: float = 0.15,
    ) -> None:
        self.timers, self.operator, self.provider, self.latency_s = timers, operator, provider, latency_s
        self.made = 0

    def run(self, lookup: Lookup, then: Callable[[Result], None]) -> None:
        self.made += 1
        now = from_posix(self.timers.now())
        result: Result = None
        if isinstance(lookup, OcspFetch) and lookup.url == RESPONDER_URL:
            result = self.operator.ca.ocsp_answer(lookup.request, now)
        elif isinstance(lookup, ContractRequest) and self.provider is not None:
            result = self.provider.request(lookup, now)
        self.timers.call_at(self.timers.now() + self.latency_s, lambda: then(result))
