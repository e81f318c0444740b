"""What of OCPP 1.6, 2.0.1 and 2.1 the CSMS and the twin support, read from the code: the tables of
``docs/protocol.md`` between its ``actions`` markers.

Every action comes from the schemas the ``ocpp`` package ships (:mod:`csms.ocpp.schemas`); what each side does
with it from the tables the code runs on:

* the CSMS receiving: the version adapter's ``HANDLED_ACTIONS`` (anything else is answered NotSupported);
* the CSMS sending: an action its command builders write (a typed command) — every other action can still be
  sent, schema-checked, as a raw call ``POST /api/v1/stations/{id}/calls/{Action}``;
* the twin receiving: its charger's handler table (a handler that is a bare ``lambda`` gives a fixed answer);
* the twin sending: the action names its firmware modules put on the wire.

Only the direction of each action is written here by hand (the spec's, which the schemas do not carry):
:data:`STATION_SENDS`. ``python -m simulator.coverage --write docs/protocol.md`` rewrites the block (and leaves
the rest of the page alone); ``--check`` exits 1 when the page is stale (a test runs it).
"""

from __future__ import annotations

import argparse
import ast
import functools
import random
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from csms.core.session import ADAPTERS
from csms.ocpp import commands, outgoing, schemas
from csms.ocpp.versions import OCPP16, OCPP21, OCPP201, VERSION_SUBPROTOCOL, Version
from simulator.station import charger as twin_charger

BEGIN, END = "<!-- actions:begin -->", "<!-- actions:end -->"
VERSIONS: tuple[Version, ...] = (OCPP16, OCPP201, OCPP21)

_16 = {"DiagnosticsStatusNotification", "StartTransaction", "StopTransaction", "SignedFirmwareStatusNotification"}
_201 = {
    "ClearedChargingLimit",
    "Get15118EVCertificate",
    "GetCertificateStatus",
    "NotifyChargingLimit",
    "NotifyCustomerInformation",
    "NotifyDisplayMessages",
    "NotifyEVChargingNeeds",
    "NotifyEVChargingSchedule",
    "NotifyEvent",
    "NotifyMonitoringReport",
    "NotifyReport",
    "PublishFirmwareStatusNotification",
    "ReportChargingProfiles",
    "ReservationStatusUpdate",
    "TransactionEvent",
}
_21 = {
    "BatterySwap",
    "ClosePeriodicEventStream",
    "GetCertificateChainStatus",
    "NotifyDERAlarm",
    "NotifyDERStartStop",
    "NotifyPeriodicEventStream",
    "NotifyPriorityCharging",
    "NotifySettlement",
    "OpenPeriodicEventStream",
    "PullDynamicScheduleUpdate",
    "ReportDERControl",
    "VatNumberValidation",
}
_ALL = {
    "Authorize",
    "BootNotification",
    "DataTransfer",
    "FirmwareStatusNotification",
    "Heartbeat",
    "LogStatusNotification",
    "MeterValues",
    "SecurityEventNotification",
    "SignCertificate",
    "StatusNotification",
}
#: The actions a charging station initiates, by version (the spec's direction; the rest the CSMS initiates).
#: DataTransfer goes both ways.
STATION_SENDS: dict[Version, frozenset[str]] = {
    OCPP16: frozenset(_ALL | _16),
    OCPP201: frozenset(_ALL | _201),
    OCPP21: frozenset(_ALL | _201 | _21),
}
BOTH_WAYS = frozenset({"DataTransfer"})

_ROOT = Path(__file__).resolve().parents[1]


class _NoMeter:
    """The twin's handler table is built with the charger; nothing here is ever metered."""

    def energy_wh(self, connector_id: int) -> float:
        return 0.0

    def power_w(self, connector_id: int) -> float:
        return 0.0

    def current_a(self, connector_id: int) -> tuple[float, ...]:
        return (0.0,)

    def voltage_v(self, connector_id: int) -> float:
        return 230.0

    def soc(self, connector_id: int) -> float | None:
        return None


def _string_constants(paths: Iterable[Path]) -> set[str]:
    """String literals of the modules, except dictionary keys (handler tables name what is received)."""
    found: set[str] = set()
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        keys = {id(k) for node in ast.walk(tree) if isinstance(node, ast.Dict) for k in node.keys if k is not None}
        found |= {
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in keys
        }
    return found


def _module_path(module: object) -> Path:
    return Path(getattr(module, "__file__", ""))


@dataclass(frozen=True)
class Row:
    action: str
    direction: str
    csms: str
    twin: str


def _twin_handlers(version: Version) -> dict[str, str]:
    station = twin_charger.Charger("coverage", version, meter=_NoMeter(), rng=random.Random(0))
    return {
        action: "fixed answer" if getattr(handler, "__name__", "") == "<lambda>" else "✔ answers"
        for action, (_owner, handler) in station._dispatch.items()
    }


@functools.cache
def rows(version: Version) -> tuple[Row, ...]:
    """One row per action the version defines (CALLs and SEND messages), both directions of DataTransfer."""
    handled = ADAPTERS[version].HANDLED_ACTIONS
    builder_files = [_module_path(commands.BUILDERS[version]), _module_path(outgoing), _module_path(commands)]
    typed = _string_constants(builder_files)
    twin_sends = _string_constants(sorted((_ROOT / "simulator" / "station").rglob("*.py")))
    twin_answers = _twin_handlers(version)
    sends = schemas.send_actions(version)
    out: list[Row] = []
    for action in sorted(schemas.known_actions(version) | sends):
        if action in STATION_SENDS[version]:
            if action in sends:
                csms = "✔ handled" if action in handled else "dropped unanswered (SEND)"
            else:
                csms = "✔ handled" if action in handled else "NotSupported"
            twin = "✔ sends" if action in twin_sends else "never sends"
            out.append(Row(action, "station → CSMS" + (" (SEND)" if action in sends else ""), csms, twin))
        if action not in STATION_SENDS[version] or action in BOTH_WAYS:
            csms = "✔ typed command" if action in typed else "raw call only"
            twin = twin_answers.get(action, "NotSupported")
            out.append(Row(action, "CSMS → station", csms, twin))
    return tuple(out)


def _table(version: Version) -> list[str]:
    table = rows(version)
    earlier = schemas.known_actions(OCPP201) if version == OCPP21 else frozenset()
    lines = [
        f"### OCPP {version} (`{VERSION_SUBPROTOCOL[version]}`)",
        "",
        f"{len(table)} actions and directions; the CSMS handles or sends typed "
        f"{sum(r.csms.startswith('✔') for r in table)}, the twin {sum(r.twin.startswith('✔') for r in table)}.",
        "",
        "| Action | Direction | CSMS | Twin |",
        "|---|---|---|---|",
    ]
    for r in table:
        name = f"{r.action} (new in 2.1)" if earlier and r.action not in earlier else r.action
        lines.append(f"| {name} | {r.direction} | {r.csms} | {r.twin} |")
    return [*lines, ""]


def render() -> str:
    """The generated block, markers included."""
    lines = [
        BEGIN,
        "<!-- Generated by `./run python -m simulator.coverage --write docs/protocol.md`: do not edit by hand. -->",
        "",
        "CSMS: *handled* (station → CSMS) answers from the CSMS's services; *NotSupported* is answered for the",
        "rest. *typed command* (CSMS → station): the CSMS writes the call itself (API, CLI, load management,",
        "alerts); *raw call only*: sent as given through `POST /api/v1/stations/{id}/calls/{Action}`, schema-checked.",
        "Twin: *answers* with its own behaviour, *fixed answer* always gives the same one, *NotSupported* refuses.",
        "",
    ]
    for version in VERSIONS:
        lines += _table(version)
    return "\n".join([*lines, END])


def rewritten(page: str) -> str:
    """The page with its block replaced by :func:`render` (appended when the page has no markers yet).

    Raises:
        ValueError: the page has one marker without the other, or the end before the begin.
    """
    begin, end = page.find(BEGIN), page.find(END)
    if begin == -1 and end == -1:
        return page.rstrip("\n") + "\n\n" + render() + "\n"
    if begin == -1 or end == -1 or end < begin:
        raise ValueError(f"the page must hold {BEGIN} before {END}")
    return page[:begin] + render() + page[end + len(END) :]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simulator.coverage", description="OCPP action coverage of the CSMS and the twin."
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", metavar="PAGE", type=Path, help="rewrite the block of PAGE in place")
    group.add_argument("--check", metavar="PAGE", type=Path, help="exit 1 when PAGE's block is stale")
    args = parser.parse_args(argv)
    page_path: Path | None = args.write or args.check
    if page_path is None:
        print(render())
        return 0
    try:
        page = page_path.read_text(encoding="utf-8") if page_path.exists() else ""
        fresh = rewritten(page)
    except (OSError, ValueError) as exc:
        print(f"{page_path}: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if fresh != page:
            print(f"{page_path} is stale: run ./run python -m simulator.coverage --write {page_path}", file=sys.stderr)
            return 1
        return 0
    page_path.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
