"""The names a test engineer knows: OCTT case ids (``TC_B_01_CSMS``), certification profiles, blocks.

Every built-in case (and a user's own) carries ``@case(id, title, profile)`` — a ``pytest.mark.ocpp_case`` —
so the plugin can select by profile or id, mark by profile and block, and publish the table.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

F = TypeVar("F", bound=Callable[..., Any])

#: Certification profiles per version, as the OCA names them (the plugin's ``--profile`` takes the keys).
PROFILES: dict[str, dict[str, str]] = {
    "2.0.1": {
        "core": "Core",
        "advanced-security": "Advanced Security",
        "local-auth-list": "Local Authorization List Management",
        "smart-charging": "Smart Charging",
        "reservation": "Reservation",
        "advanced-device-management": "Advanced Device Management",
        "advanced-user-interface": "Advanced User Interface",
        "iso15118": "ISO 15118 Support",
    },
    "1.6": {
        "core": "Core",
        "firmware-management": "Firmware Management",
        "local-auth-list": "Local Auth List Management",
        "reservation": "Reservation",
        "smart-charging": "Smart Charging",
        "remote-trigger": "Remote Trigger",
        "security": "Security extension",
    },
}

#: 2.0.1 functional blocks by the letter in the case id.
BLOCKS_201 = {
    "A": "Security",
    "B": "Provisioning",
    "C": "Authorization",
    "D": "Local Authorization List Management",
    "E": "Transactions",
    "F": "Remote Control",
    "G": "Availability",
    "H": "Reservation",
    "I": "Tariff and Cost",
    "J": "Meter Values",
    "K": "Smart Charging",
    "L": "Firmware Management",
    "M": "ISO 15118 Certificate Management",
    "N": "Diagnostics",
    "O": "Display Message",
    "P": "Data Transfer",
}

_ID = re.compile(r"^TC_(?P<block>[A-Z]+)_(?P<number>\d+)_CSMS(?:_(?P<variant>\w+))?$|^TC_\d{3}(?:_\d)?_CSMS$")


@dataclass(frozen=True, slots=True)
class CaseInfo:
    case_id: str
    title: str
    profile: str
    version: str

    @property
    def block(self) -> str:
        """The functional block: 2.0.1's letter, or 1.6's profile (its ids are plain numbers)."""
        match = _ID.match(self.case_id)
        if self.version == "2.0.1" and match and match.group("block"):
            return match.group("block")
        return self.profile

    @property
    def block_title(self) -> str:
        return BLOCKS_201.get(self.block, self.block) if self.version == "2.0.1" else PROFILES["1.6"][self.profile]


def case_marker(version: str) -> Callable[..., Callable[[F], F]]:
    """``case = case_marker("2.0.1")`` at the top of a module, then ``@case("TC_B_01_CSMS", "title", "core")``."""

    def case(case_id: str, title: str, profile: str = "core") -> Callable[[F], F]:
        if profile not in PROFILES[version]:
            raise ValueError(
                f"{case_id}: unknown {version} profile {profile!r} (known: {', '.join(PROFILES[version])})"
            )
        if not _ID.match(case_id):
            raise ValueError(f"{case_id!r} is not an OCTT case id (TC_<block>_<nn>_CSMS or TC_<nnn>_CSMS)")
        return pytest.mark.ocpp_case(CaseInfo(case_id, title, profile, version))

    return case


def info_of(item: pytest.Item) -> CaseInfo | None:
    marker = item.get_closest_marker("ocpp_case")
    return marker.args[0] if marker is not None else None
