"""The OCPP versions we speak and their WebSocket subprotocol names."""

from typing import Literal

Version = Literal["1.6", "2.0.1", "2.1"]

OCPP16: Version = "1.6"
OCPP201: Version = "2.0.1"
OCPP21: Version = "2.1"

#: WebSocket subprotocol name -> OCPP version, in our order of preference.
SUBPROTOCOLS: dict[str, Version] = {"ocpp2.1": OCPP21, "ocpp2.0.1": OCPP201, "ocpp1.6": OCPP16}
VERSION_SUBPROTOCOL: dict[Version, str] = {v: k for k, v in SUBPROTOCOLS.items()}


def parse_version(text: str) -> Version:
    """``"1.6"``, ``"2.0.1"`` or ``"2.1"`` as a :data:`Version`; anything else is a ValueError naming what we speak."""
    for version in VERSION_SUBPROTOCOL:
        if text == version:
            return version
    raise ValueError(f"unknown OCPP version {text!r}: expected one of {', '.join(VERSION_SUBPROTOCOL)}")
