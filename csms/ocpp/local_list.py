"""Local authorization lists, CSMS side, without I/O: what changed between the list a station holds and the
list it should hold, how an update is cut into SendLocalList calls the station can take, and each version's
payload (1.6 ``listVersion``/``idTag``, 2.0.1 ``versionNumber``/``idToken``).

Versions are the CSMS's to choose (2.0.1 D01.FR.01, FR.18): every call gets the next number above the last
version the station confirmed, so they are above 0 and increasing. A list larger than one message allows is
sent as a Full call with the first part followed by Differential calls with the rest; a list larger than the
station can hold at all is refused (:class:`ListTooLarge`) before anything is sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from csms.ocpp.outgoing import Call
from csms.ocpp.versions import OCPP16

UpdateType = Literal["Full", "Differential"]

#: 1.6 idTags are at most 20 characters: a longer token cannot be presented to a 1.6 station at all.
V16_ID_TAG_MAX = 20
#: What the OCPP-J frame adds around a SendLocalList payload (``[2,"<id>","SendLocalList",…]``), with margin.
FRAME_OVERHEAD_BYTES = 64


@dataclass(frozen=True, slots=True)
class ListEntry:
    """What a station's list says about one token."""

    status: str
    expiry: datetime | None = None
    group_id: str | None = None
    token_type: str = "ISO14443"


#: token -> its new entry, or None to remove it from the list (a differential update's content).
Changes = dict[str, ListEntry | None]


@dataclass(frozen=True, slots=True)
class Limits:
    """What the station reported it can take (None: not reported, no limit assumed)."""

    max_entries: int | None = None
    items_per_message: int | None = None
    bytes_per_message: int | None = None


@dataclass(frozen=True, slots=True)
class ListMessage:
    """One SendLocalList call: its type, its version and the changes it carries, in order."""

    update_type: UpdateType
    version: int
    changes: tuple[tuple[str, ListEntry | None], ...]

    def call(self, ocpp_version: str) -> Call:
        return render(ocpp_version, self.update_type, self.version, self.changes)


class ListTooLarge(ValueError):
    """The update cannot be sent to this station; the message says why."""


def differences(held: Mapping[str, ListEntry], wanted: Mapping[str, ListEntry]) -> Changes:
    """The differential update that turns ``held`` into ``wanted`` (removals as None), tokens in order."""
    changes: Changes = {token: None for token in sorted(held) if token not in wanted}
    changes.update({token: entry for token, entry in sorted(wanted.items()) if held.get(token) != entry})
    return dict(sorted(changes.items()))


def applied(held: Mapping[str, ListEntry], changes: Mapping[str, ListEntry | None]) -> dict[str, ListEntry]:
    """``held`` after a differential update."""
    out = dict(held)
    for token, entry in changes.items():
        if entry is None:
            out.pop(token, None)
        else:
            out[token] = entry
    return out


def fitting(ocpp_version: str, entries: Mapping[str, ListEntry]) -> dict[str, ListEntry]:
    """The entries a station of this version can carry (1.6: idTags of at most 20 characters)."""
    if ocpp_version != OCPP16:
        return dict(entries)
    return {token: entry for token, entry in entries.items() if len(token) <= V16_ID_TAG_MAX}


def plan(
    ocpp_version: str,
    update_type: UpdateType,
    changes: Mapping[str, ListEntry | None],
    *,
    held: Mapping[str, ListEntry],
    after_version: int,
    limits: Limits,
) -> list[ListMessage]:
    """The calls, in order, that send ``changes`` (for a Full update: the whole list) to a station holding
    ``held`` at ``after_version``. An empty differential update needs no call.

    Raises:
        ListTooLarge: the resulting list exceeds the station's ``max_entries``, or one entry alone exceeds
            ``bytes_per_message``.
    """
    full = update_type == "Full"
    if full and any(entry is None for entry in changes.values()):
        raise ListTooLarge("a Full list cannot remove tokens: list only the entries the station is to hold")
    result = dict(changes) if full else applied(held, changes)
    if limits.max_entries is not None and len(result) > limits.max_entries:
        raise ListTooLarge(
            f"the list would hold {len(result)} entries; the station holds at most {limits.max_entries} "
            "(LocalAuthListMaxLength / LocalAuthListCtrlr.Entries)"
        )
    items = list(changes.items())
    if not items and not full:
        return []
    chunks = _chunks(ocpp_version, items, limits, after_version)
    return [
        ListMessage("Full" if full and index == 0 else "Differential", after_version + 1 + index, tuple(chunk))
        for index, chunk in enumerate(chunks)
    ]


def _chunks(
    ocpp_version: str, items: list[tuple[str, ListEntry | None]], limits: Limits, after_version: int
) -> list[list[tuple[str, ListEntry | None]]]:
    """``items`` cut greedily so that each call stays within the items and bytes per message."""
    per_message = limits.items_per_message or len(items) or 1
    chunks: list[list[tuple[str, ListEntry | None]]] = [[]]
    for item in items:
        candidate = [*chunks[-1], item]
        if len(candidate) > per_message or not _fits(ocpp_version, candidate, limits, after_version + len(chunks)):
            if not _fits(ocpp_version, [item], limits, after_version + len(chunks) + 1):
                raise ListTooLarge(
                    f"the entry for {item[0]!r} alone exceeds the station's {limits.bytes_per_message} bytes per "
                    "message (LocalAuthListCtrlr.BytesPerMessage)"
                )
            chunks.append([item])
        else:
            chunks[-1] = candidate
    return chunks


def _fits(ocpp_version: str, items: list[tuple[str, ListEntry | None]], limits: Limits, version: int) -> bool:
    if limits.bytes_per_message is None:
        return True
    _, payload = render(ocpp_version, "Differential", version, items)
    return len(json.dumps(payload, separators=(",", ":"))) + FRAME_OVERHEAD_BYTES <= limits.bytes_per_message


def render(
    ocpp_version: str, update_type: UpdateType, version: int, changes: Iterable[tuple[str, ListEntry | None]]
) -> Call:
    """SendLocalList for ``changes`` (pairs of token and entry, None: removal)."""
    if ocpp_version == OCPP16:
        entries = [_v16_entry(token, entry) for token, entry in changes]
        payload: dict[str, Any] = {"listVersion": version, "updateType": update_type}
    else:
        entries = [_v201_entry(token, entry) for token, entry in changes]
        payload = {"versionNumber": version, "updateType": update_type}
    if entries:
        payload["localAuthorizationList"] = entries
    return "SendLocalList", payload


def _timestamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _v16_entry(token: str, entry: ListEntry | None) -> dict[str, Any]:
    if entry is None:
        return {"idTag": token}
    info: dict[str, Any] = {"status": entry.status}
    if entry.expiry is not None:
        info["expiryDate"] = _timestamp(entry.expiry)
    if entry.group_id and len(entry.group_id) <= V16_ID_TAG_MAX:
        info["parentIdTag"] = entry.group_id
    return {"idTag": token, "idTagInfo": info}


def _v201_entry(token: str, entry: ListEntry | None) -> dict[str, Any]:
    if entry is None:
        return {"idToken": {"idToken": token, "type": "ISO14443"}}
    info: dict[str, Any] = {"status": entry.status}
    if entry.expiry is not None:
        info["cacheExpiryDateTime"] = _timestamp(entry.expiry)
    if entry.group_id:
        info["groupIdToken"] = {"idToken": entry.group_id, "type": "Central"}
    return {"idToken": {"idToken": token, "type": entry.token_type}, "idTokenInfo": info}


# ---- what the station reports about its list ------------------------------------------------------------------
def capability_request(ocpp_version: str) -> Call:
    """The call that reads the station's list limits: 1.6 GetConfiguration, 2.0.1 GetVariables."""
    if ocpp_version == OCPP16:
        return "GetConfiguration", {"key": ["LocalAuthListMaxLength", "SendLocalListMaxLength"]}
    # The capacity (LocalAuthListCtrlr.Entries) is a maxLimit characteristic, which only a report carries: a
    # 2.0.1 station's list size is left to its own Failed answer.
    component = {"name": "LocalAuthListCtrlr"}
    wanted = ("ItemsPerMessage", "BytesPerMessage")
    return "GetVariables", {"getVariableData": [{"component": component, "variable": {"name": n}} for n in wanted]}


def limits_from(ocpp_version: str, result: Mapping[str, Any]) -> Limits:
    """The :class:`Limits` in the station's answer to :func:`capability_request` (unreadable values: None)."""
    if ocpp_version == OCPP16:
        values = {k.get("key"): k.get("value") for k in result.get("configurationKey") or []}
        return Limits(_count(values.get("LocalAuthListMaxLength")), _count(values.get("SendLocalListMaxLength")))
    found = {
        r.get("variable", {}).get("name"): r.get("attributeValue")
        for r in result.get("getVariableResult") or []
        if r.get("attributeStatus") == "Accepted"
    }
    return Limits(None, _count(found.get("ItemsPerMessage")), _count(found.get("BytesPerMessage")))


def _count(value: Any) -> int | None:
    try:
        number = int(str(value))
    except ValueError:
        return None
    return number if number > 0 else None


def reported_version(ocpp_version: str, result: Mapping[str, Any]) -> int | None:
    """The version in a GetLocalListVersion answer (1.6 -1: the station has no local list)."""
    value = result.get("listVersion" if ocpp_version == OCPP16 else "versionNumber")
    return value if isinstance(value, int) else None


def update_status(result: Mapping[str, Any]) -> str | None:
    """The status of a SendLocalList answer: Accepted, Failed, VersionMismatch or (1.6) NotSupported."""
    status = result.get("status")
    return status if isinstance(status, str) else None
