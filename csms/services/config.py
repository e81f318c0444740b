"""Operator-facing settings of the CSMS core (the CLI and scenarios fill them in)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CsmsConfig:
    heartbeat_interval_s: int = 300
    #: Retry interval given to stations answered Pending / Rejected.
    pending_interval_s: int = 60
    rejected_interval_s: int = 600
    #: Unknown stations are created (Pending until an operator accepts them) instead of refused.
    auto_register: bool = False
    call_timeout_s: float = 30.0
    #: How long an answer may wait for an outside lookup (an OCSP responder, the contract-certificate
    #: provider) before it is given without it; well inside a station's reply timeout (often 30 s).
    lookup_timeout_s: float = 5.0
    #: Frames kept per station in the OCPP message log (0: no log).
    message_log_per_station: int = 500
    #: Vendor ids whose DataTransfer we understand.
    known_vendors: frozenset[str] = frozenset({"org.chargetwin"})
