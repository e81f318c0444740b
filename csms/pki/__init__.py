"""Plug & Charge (ISO 15118 over OCPP 2.0.1), sans-IO: OCSP requests and answers, contract-certificate chains,
the lookups a call's answer may wait for, and the built-in contract-certificate provider (a local test CA).

Nothing here touches a socket, the database or the clock: the bytes a responder or provider sent come in, the
present instant comes in as an aware datetime.
"""
