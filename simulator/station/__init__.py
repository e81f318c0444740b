"""Charger firmware model (sans-IO) for OCPP 1.6J and 2.0.1; see :mod:`.charger` for the theory of operation."""

from simulator.station.auth import IdTokenInfo
from simulator.station.charger import Charger
from simulator.station.config import Configuration, Entry, SetStatus
from simulator.station.connector import ConnectorError, ConnectorSpec, IllegalEvent, IllegalTransition
from simulator.station.registration import Registration, StationIdentity
from simulator.station.transactions import MeterSource, Reading, Transaction

__all__ = [
    "Charger",
    "Configuration",
    "ConnectorError",
    "ConnectorSpec",
    "Entry",
    "IdTokenInfo",
    "IllegalEvent",
    "IllegalTransition",
    "MeterSource",
    "Reading",
    "Registration",
    "SetStatus",
    "StationIdentity",
    "Transaction",
]
