"""RPC errors and their wire names, which differ between OCPP versions.

OCPP-J 1.6 spells two codes in its own way (``FormationViolation``, ``OccurenceConstraintViolation``) and
lacks the 2.0.1 codes ``RpcFrameworkError`` and ``MessageTypeNotSupported``; the error *kinds* below are
version-neutral and :data:`WIRE_CODES` names each kind as the session's version requires.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from csms.ocpp.versions import OCPP16, OCPP21, OCPP201, Version


class ErrorKind(Enum):
    FORMAT_VIOLATION = "format_violation"
    GENERIC = "generic"
    INTERNAL = "internal"
    MESSAGE_TYPE_NOT_SUPPORTED = "message_type_not_supported"
    NOT_IMPLEMENTED = "not_implemented"
    NOT_SUPPORTED = "not_supported"
    OCCURRENCE_CONSTRAINT = "occurrence_constraint"
    PROPERTY_CONSTRAINT = "property_constraint"
    PROTOCOL = "protocol"
    RPC_FRAMEWORK = "rpc_framework"
    SECURITY = "security"
    TYPE_CONSTRAINT = "type_constraint"


WIRE_CODES: dict[Version, dict[ErrorKind, str]] = {
    OCPP16: {
        ErrorKind.FORMAT_VIOLATION: "FormationViolation",
        ErrorKind.GENERIC: "GenericError",
        ErrorKind.INTERNAL: "InternalError",
        # 1.6 has no code for these two; the closest it defines:
        ErrorKind.MESSAGE_TYPE_NOT_SUPPORTED: "ProtocolError",
        ErrorKind.RPC_FRAMEWORK: "FormationViolation",
        ErrorKind.NOT_IMPLEMENTED: "NotImplemented",
        ErrorKind.NOT_SUPPORTED: "NotSupported",
        ErrorKind.OCCURRENCE_CONSTRAINT: "OccurenceConstraintViolation",
        ErrorKind.PROPERTY_CONSTRAINT: "PropertyConstraintViolation",
        ErrorKind.PROTOCOL: "ProtocolError",
        ErrorKind.SECURITY: "SecurityError",
        ErrorKind.TYPE_CONSTRAINT: "TypeConstraintViolation",
    },
    OCPP201: {
        ErrorKind.FORMAT_VIOLATION: "FormatViolation",
        ErrorKind.GENERIC: "GenericError",
        ErrorKind.INTERNAL: "InternalError",
        ErrorKind.MESSAGE_TYPE_NOT_SUPPORTED: "MessageTypeNotSupported",
        ErrorKind.RPC_FRAMEWORK: "RpcFrameworkError",
        ErrorKind.NOT_IMPLEMENTED: "NotImplemented",
        ErrorKind.NOT_SUPPORTED: "NotSupported",
        ErrorKind.OCCURRENCE_CONSTRAINT: "OccurrenceConstraintViolation",
        ErrorKind.PROPERTY_CONSTRAINT: "PropertyConstraintViolation",
        ErrorKind.PROTOCOL: "ProtocolError",
        ErrorKind.SECURITY: "SecurityError",
        ErrorKind.TYPE_CONSTRAINT: "TypeConstraintViolation",
    },
}
WIRE_CODES[OCPP21] = WIRE_CODES[OCPP201]  # OCPP-J 2.1 keeps the 2.0.1 codes

#: Every wire code either version defines, mapped back to its kind (for CALLERRORs we receive).
KIND_BY_CODE: dict[str, ErrorKind] = {
    code: kind for codes in WIRE_CODES.values() for kind, code in codes.items() if code != "FormationViolation"
} | {"FormationViolation": ErrorKind.FORMAT_VIOLATION, "OccurrenceConstraintViolation": ErrorKind.OCCURRENCE_CONSTRAINT}

DESCRIPTIONS: dict[ErrorKind, str] = {
    ErrorKind.FORMAT_VIOLATION: "Payload for Action is syntactically incorrect",
    ErrorKind.GENERIC: "Any other error not covered by the more specific error codes",
    ErrorKind.INTERNAL: "An internal error occurred and the receiver was not able to process the Action",
    ErrorKind.MESSAGE_TYPE_NOT_SUPPORTED: "A message with a Message Type Number that is not supported",
    ErrorKind.NOT_IMPLEMENTED: "Requested Action is not known by receiver",
    ErrorKind.NOT_SUPPORTED: "Requested Action is recognized but not supported by the receiver",
    ErrorKind.OCCURRENCE_CONSTRAINT: "At least one of the fields violates occurrence constraints",
    ErrorKind.PROPERTY_CONSTRAINT: "At least one field contains an invalid value",
    ErrorKind.PROTOCOL: "Payload for Action is incomplete or does not conform to the PDU structure",
    ErrorKind.RPC_FRAMEWORK: "Content of the call is not a valid RPC request",
    ErrorKind.SECURITY: "A security issue prevented the receiver from completing the Action",
    ErrorKind.TYPE_CONSTRAINT: "At least one of the fields violates data type constraints",
}


def wire_code(kind: ErrorKind, version: Version) -> str:
    return WIRE_CODES[version][kind]


class OcppError(Exception):
    """A failure to be answered with a CALLERROR (the peer broke the protocol, or we could not serve it)."""

    def __init__(self, kind: ErrorKind, description: str | None = None, details: dict[str, Any] | None = None):
        self.kind = kind
        self.description = description or DESCRIPTIONS[kind]
        self.details = details or {}
        super().__init__(f"{kind.value}: {self.description}")


class FrameError(OcppError):
    """A frame that cannot be decoded; ``unique_id`` is None when its message id could not be read."""

    def __init__(self, kind: ErrorKind, description: str, unique_id: str | None = None):
        super().__init__(kind, description)
        self.unique_id = unique_id


class LocalCallError(ValueError):
    """We were asked to send a call the protocol does not allow (unknown action, invalid payload)."""

    def __init__(self, kind: ErrorKind, description: str):
        super().__init__(description)
        self.kind = kind
        self.description = description
