"""Shells that carry OCPP-J frames between the charger model and a CSMS: in-process (virtual time) or
WebSocket (real time)."""
