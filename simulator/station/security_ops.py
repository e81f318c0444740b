"""The charger's security operations, both versions: certificate signing (SignCertificate out,
CertificateSigned in), the roots a CSMS installs, lists and deletes, password and profile changes, 2.0.1
network profiles, and the SecurityEventNotifications the specs order for them.

A credential change takes effect the way the specs say: a new password (1.6 ``AuthorizationKey``, 2.0.1
``SecurityCtrlr.BasicAuthPassword``) or 1.6 ``SecurityProfile`` makes the charger reconnect right after its
answer; a 2.0.1 network profile takes effect at the next reboot, from the first slot of
``OCPPCommCtrlr.NetworkConfigurationPriority``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol

from csms.ocpp.convert import format_time, from_posix
from csms.ocpp.versions import OCPP16
from simulator.station.security import NetworkProfile, StationSecurity, Verdict

Handler = Callable[[dict[str, Any], float], dict[str, Any]]


class SecurityHost(Protocol):
    """What the security operations use of the charger."""

    @property
    def version(self) -> str: ...
    def send(self, action: str, payload: dict[str, Any], now: float) -> bool: ...
    def after_reply(self, action: Callable[[float], None]) -> None: ...
    def after_connect(self, action: Callable[[float], None]) -> None: ...
    def reconnect(self, now: float) -> None: ...


#: Password lengths of the specs: 2.0.1 BasicAuthPassword 16–40 characters; the 1.6 security extension's
#: AuthorizationKey 16–20 bytes, written as their hexadecimal digits. A charger refuses what it could not
#: authenticate with.
PASSWORD_LENGTHS = {"SecurityCtrlr.BasicAuthPassword": (16, 40), "AuthorizationKey": (16, 20)}
_SIGN_TYPES = {
    "SignChargingStationCertificate": "ChargingStationCertificate",
    "SignChargePointCertificate": "ChargingStationCertificate",  # the 1.6 extension's name
    "SignV2GCertificate": "V2GCertificate",
}


def _password(name: str, value: str) -> str | None:
    """The password a write carries, or None when the charger must refuse it."""
    if name == "AuthorizationKey":
        try:
            value = bytes.fromhex(value).decode("utf-8")
        except ValueError:  # not hex digits, or not the bytes of a text password
            return None
    low, high = PASSWORD_LENGTHS[name]
    if not low <= len(value.encode()) <= high or not value.strip():
        return None
    return value


class SecurityOperations:
    """Handlers for the security calls of one charger; ``security`` is what the links read at connect."""

    __slots__ = ("charger", "security")

    def __init__(self, charger: SecurityHost, security: StationSecurity) -> None:
        self.charger = charger
        self.security = security

    def handlers(self) -> dict[str, Handler]:
        handlers: dict[str, Handler] = {
            "CertificateSigned": self.certificate_signed,
            "InstallCertificate": self.install_certificate,
            "GetInstalledCertificateIds": self.get_installed_certificate_ids,
            "DeleteCertificate": self.delete_certificate,
        }
        if self.charger.version != OCPP16:
            handlers["SetNetworkProfile"] = self.set_network_profile
        return handlers

    # ---- certificate signing ---------------------------------------------------------------------------------
    def trigger_sign(self, requested: str) -> bool:
        """TriggerMessage / ExtendedTriggerMessage for a SignCertificate: True when ``requested`` is one."""
        certificate_type = _SIGN_TYPES.get(requested)
        if certificate_type is None:
            return False
        self.charger.after_reply(functools.partial(self.send_sign_certificate, certificate_type))
        return True

    def send_sign_certificate(self, certificate_type: str, now: float) -> None:
        payload: dict[str, Any] = {"csr": self.security.csr(certificate_type)}
        if self.charger.version != OCPP16:
            payload["certificateType"] = certificate_type
        self.charger.send("SignCertificate", payload, now)

    def certificate_signed(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        certificate_type = p.get("certificateType", "ChargingStationCertificate")
        verdict, why = self.security.certificate_signed(p["certificateChain"], now, certificate_type)
        if verdict is Verdict.REJECTED:
            v16 = self.charger.version == OCPP16
            invalid = "InvalidChargePointCertificate" if v16 else "InvalidChargingStationCertificate"
            self.charger.after_reply(functools.partial(self.send_security_event, invalid, why))
        return {"status": verdict.value}

    # ---- roots -----------------------------------------------------------------------------------------------
    def install_certificate(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        verdict = self.security.install_root(p["certificateType"], p["certificate"])
        return {"status": verdict.value}

    def get_installed_certificate_ids(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        wanted = p.get("certificateType")
        types = [wanted] if isinstance(wanted, str) else wanted  # 1.6: one type; 2.0.1: a list or none
        found = self.security.installed(types)
        if self.charger.version == OCPP16:
            hashes = [data for _, data in found]
            return {"status": "Accepted", "certificateHashData": hashes} if hashes else {"status": "NotFound"}
        if not found:
            return {"status": "NotFound"}
        chain = [{"certificateType": kind, "certificateHashData": data} for kind, data in found]
        return {"status": "Accepted", "certificateHashDataChain": chain}

    def delete_certificate(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        return {"status": self.security.delete(p["certificateHashData"])}

    # ---- how the charger connects ----------------------------------------------------------------------------
    def set_network_profile(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        data = p["connectionData"]
        profile = NetworkProfile(data["ocppCsmsUrl"], int(data["securityProfile"]), data["ocppVersion"])
        return {"status": self.security.set_network_profile(int(p["configurationSlot"]), profile).value}

    def write(self, name: str, value: str, now: float) -> str | None:
        """A configuration write that is the security's (its status), or None for the configuration table."""
        match name:
            case "AuthorizationKey" | "SecurityCtrlr.BasicAuthPassword":
                password = _password(name, value)
                if password is None:
                    return "Rejected"
                self.security.password = password
                self.charger.after_reply(functools.partial(self._reconnect, "ReconfigurationOfSecurityParameters"))
                return "Accepted"
            case "SecurityProfile":
                if not value.isdigit() or self.security.raise_profile(int(value)) is Verdict.REJECTED:
                    return "Rejected"
                self.charger.after_reply(functools.partial(self._reconnect, "ReconfigurationOfSecurityParameters"))
                return "Accepted"
            case "CpoName" | "SecurityCtrlr.OrganizationName":
                self.security.organization = value[:64]
                return "Accepted"
            case "OCPPCommCtrlr.NetworkConfigurationPriority":
                slots = [s.strip() for s in value.split(",")]
                if not all(s.isdigit() for s in slots):
                    return "Rejected"
                verdict = self.security.set_priority([int(s) for s in slots])
                return "RebootRequired" if verdict is Verdict.ACCEPTED else "Rejected"
        return None

    def read(self, name: str) -> str | None:
        """The value of a security variable (None: not one; write-only ones are never read back)."""
        match name:
            case "SecurityProfile" | "SecurityCtrlr.SecurityProfile":
                return str(self.security.profile)
            case "CpoName" | "SecurityCtrlr.OrganizationName":
                return self.security.organization
            case "OCPPCommCtrlr.NetworkConfigurationPriority":
                return ",".join(str(s) for s in self.security.priority)
        return None

    def rebooted(self, now: float) -> None:
        """A reboot applies the network priority (2.0.1 B10/A05) and reports the reconfiguration."""
        if self.security.apply_priority():
            event = functools.partial(self.send_security_event, "ReconfigurationOfSecurityParameters", "")
            self.charger.after_connect(event)

    def _reconnect(self, event: str, now: float) -> None:
        self.charger.reconnect(now)
        self.charger.after_connect(functools.partial(self.send_security_event, event, ""))

    def send_security_event(self, kind: str, tech_info: str, now: float) -> None:
        payload: dict[str, Any] = {"type": kind, "timestamp": format_time(from_posix(now))}
        if tech_info:
            payload["techInfo"] = tech_info[:255]
        self.charger.send("SecurityEventNotification", payload, now)
