"""The CSMS's certificate authority for charging stations, made with ``cryptography``: building CAs and
certificates (:mod:`.build`), checking a station's CSR (:mod:`.csr`), the CA directory that ``csms pki init``
writes and ``csms serve --pki`` reads (:mod:`.authority`), and the OCPP names of a certificate
(:mod:`.identity`). No clock is read here: ``now`` comes in."""
