"""OCPP-J protocol layer: framing, schema validation, RPC correlation and one adapter per version.

Nothing in this package performs I/O or reads a clock: callers pass frames and `now` in and take frames out.
"""

from csms.ocpp.versions import OCPP16, OCPP201, SUBPROTOCOLS, Version

__all__ = ["OCPP16", "OCPP201", "SUBPROTOCOLS", "Version"]
