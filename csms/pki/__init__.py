"""Certificates, made with ``cryptography``, sans-IO (no socket, no database, no clock: ``now`` comes in).

The CSMS's certificate authority for charging stations: building CAs and certificates (:mod:`.build`),
checking a station's CSR (:mod:`.csr`), the CA directory that ``csms pki init`` writes and ``csms serve --pki``
reads (:mod:`.authority`), and the OCPP names of a certificate (:mod:`.identity`).

Plug & Charge (ISO 15118 over OCPP 2.0.1): OCSP requests and answers (:mod:`.ocsp`), contract-certificate
chains (:mod:`.chain`), the lookups a call's answer may wait for (:mod:`.lookups`), and the built-in
contract-certificate provider, a local test CA (:mod:`.local_ca`).
"""
