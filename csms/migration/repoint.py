"""Re-pointing a charger to another CSMS without touching it: the calls per OCPP version, the vendor keys 1.6
keeps its central system URL in, and what the watch of the charger afterwards concludes.

Pure: the API shell (:mod:`csms.api.routes.repoint`) sends the calls, waits, and watches the connection.

2.0.1 (B09/B10): the new URL goes into a free network-configuration slot, ``NetworkConfigurationPriority``
puts it first and keeps the old slots after it, then Reset OnIdle. A station that cannot reach the new CSMS
tries the next slot, the old one, by itself; when it comes back here the old priority is restored.

1.6 has no standard key for the URL: a vendor's own key (:data:`VENDOR_URL_KEYS`, by the BootNotification's
chargePointVendor) is changed, then Reset Hard once no transaction runs. A charger of another vendor cannot be
re-pointed remotely: the new CSMS accepts it on its old path instead (``csms serve --accept-path``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from csms.ocpp.outgoing import Call, VariableRef
from csms.ocpp.v16 import commands as v16
from csms.ocpp.v201 import commands as v201

#: 1.6 chargers' vendor configuration keys holding the central system URL, by chargePointVendor. EVerest
#: (libocpp) keeps it in ``CentralSystemURI`` (EVerest/libocpp#900); add a vendor once its key is known.
VENDOR_URL_KEYS: dict[str, str] = {"EVerest": "CentralSystemURI"}

_PRIORITY = VariableRef(v201.PRIORITY_VARIABLE[1], v201.PRIORITY_VARIABLE[0])


class Status(StrEnum):
    PENDING = "pending"  # the calls were accepted; the charger is watched until the deadline
    MOVED = "moved"  # it left this CSMS and did not come back by the deadline
    NOT_MOVED = "not_moved"  # it came back here, or never rebooted: the old settings are restored
    REFUSED = "refused"  # a call was refused or not answered: nothing was changed for good
    CANNOT = "cannot_repoint"  # 1.6 vendor without a known URL key: move it by forwarding


FINAL = frozenset({Status.MOVED, Status.NOT_MOVED, Status.REFUSED, Status.CANNOT})


def url_key(vendor: str | None, override: str | None = None) -> str | None:
    """The 1.6 configuration key of the central system URL for this vendor (``override``: the operator's)."""
    return override or VENDOR_URL_KEYS.get(vendor or "")


def cannot_repoint(vendor: str | None) -> str:
    return (
        f"cannot be re-pointed: vendor {vendor or '(unknown)'} has no known configuration key for the central "
        "system URL; use forwarding (the new CSMS accepts it on its old URL path: csms serve --accept-path)"
    )


# ---- 2.0.1 -------------------------------------------------------------------------------------------------
def read_priority() -> Call:
    return v201.get_configuration([_PRIORITY], None)[0]


def priority_of(result: dict[str, Any]) -> list[int]:
    """The slots a GetVariables answer lists as NetworkConfigurationPriority ([] when it reports none)."""
    for item in v201.configuration_results("GetVariables", {}, result):
        if item.ref.variable == _PRIORITY.variable and item.status == "Accepted" and item.value:
            parts = [p.strip() for p in item.value.split(",")]
            if all(p.isdigit() for p in parts):
                return [int(p) for p in parts]
    return []


def free_slot(used: list[int]) -> int:
    return next(slot for slot in range(1, len(used) + 2) if slot not in used)


@dataclass(frozen=True, slots=True)
class Plan201:
    #: The calls in order, each sent once the one before was accepted.
    calls: list[Call]
    #: The priority to restore when the station does not move.
    rollback: Call
    slot: int


def plan_201(priority: list[int], new_url: str, new_profile: int, current_url: str, current_profile: int) -> Plan201:
    """The calls that re-point a 2.0.1 station. A station that reports no priority gets the URL it uses now
    written to a slot too, so that it has somewhere to fall back to."""
    calls: list[Call] = []
    old = list(priority)
    if not old:
        old = [free_slot([])]
        calls.append(v201.set_network_profile(old[0], current_url, current_profile))
    slot = free_slot(old)
    calls += [
        v201.set_network_profile(slot, new_url, new_profile),
        v201.set_network_priority([slot, *old]),
        v201.reset("soft"),
    ]
    return Plan201(calls, v201.set_network_priority(old), slot)


# ---- 1.6 ---------------------------------------------------------------------------------------------------
def read_key(key: str) -> Call:
    return v16.get_configuration([VariableRef(key)], None)[0]


def key_value(result: dict[str, Any], key: str) -> str | None:
    for item in v16.configuration_results("GetConfiguration", {}, result):
        if item.ref.variable == key and item.status == "Accepted":
            return item.value
    return None


def write_key(key: str, value: str) -> Call:
    return v16.set_configuration([(VariableRef(key), value)], None)[0]


def reboot_16() -> Call:
    return v16.reset("hard")


# ---- the watch ---------------------------------------------------------------------------------------------
def verdict(came_back: bool, still_on_first_connection: bool) -> tuple[Status, str]:
    """What the watch concludes at its end: back here on a new connection, never gone, or gone."""
    if came_back:
        return Status.NOT_MOVED, "it came back to this CSMS (it could not reach the new one, or ignored the URL)"
    if still_on_first_connection:
        return Status.NOT_MOVED, "it did not reboot before the deadline"
    return Status.MOVED, "it left this CSMS and did not come back before the deadline"
