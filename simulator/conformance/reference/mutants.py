"""Mutants of the minimal CSMS: each breaks one rule a conformance suite must catch. The suite is run against
each; a mutant is *caught* when at least one case fails. The score is caught / all; it must be 100 %.

    ./run python -m simulator.conformance.reference.mutants [--ocpp 2.0.1|1.6] [--profile core]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.conformance.reference.minimal_csms import Mutation, serve
from simulator.conformance.reference.operator_door import OperatorDoor

#: The hooks file that drives the minimal CSMS's operator API.
HOOKS = Path(__file__).parent / "minimal-hooks.yaml"

#: The station's CALL timeout in a mutation run, and how late the late mutant answers.
REPLY_TIMEOUT_S = 2.0
LATE_S = 3.0
VALID_TOKEN = "CT-VALID-01"


def _answer_of(action: str, change: Any) -> Any:
    """A rewrite of the CALLRESULT of ``action`` only: ``change(payload)`` edits it in place."""

    def rewrite(frame: list[Any], answered: str | None) -> list[Any]:
        if frame[0] == 3 and answered == action:
            change(frame[2])
        return frame

    return rewrite


def _call_of(action: str, change: Any) -> Any:
    """A rewrite of the CSMS's own CALL of ``action``: ``change(payload)`` edits it in place."""

    def rewrite(frame: list[Any], answered: str | None) -> list[Any]:
        if frame[0] == 2 and frame[2] == action:
            change(frame[3])
        return frame

    return rewrite


def _shift(key: str) -> Any:
    def change(payload: dict[str, Any]) -> None:
        value = payload[key]
        payload[key] = value + 1 if isinstance(value, int) else f"{value}-other"

    return change


def _set(path: list[str], value: Any) -> Any:
    def change(payload: dict[str, Any]) -> None:
        node = payload
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value

    return change


def _drop(key: str) -> Any:
    return lambda payload: payload.pop(key, None)


def _wrong_id(action: str) -> Any:
    def rewrite(frame: list[Any], answered: str | None) -> list[Any]:
        if frame[0] in (3, 4) and answered == action:
            frame[1] = f"{frame[1]}-x"
        return frame

    return rewrite


def _silent(action: str) -> Any:
    return lambda frame, answered: None if answered == action else frame


def _local_time(payload: dict[str, Any]) -> None:
    payload["currentTime"] = payload["currentTime"][:19]  # no offset: not an RFC 3339 date-time


COMMON = [
    Mutation(
        "boot-without-currentTime",
        "BootNotification answer lacks the required currentTime",
        _answer_of("BootNotification", _drop("currentTime")),
    ),
    Mutation(
        "heartbeat-interval-0",
        "BootNotification answers interval 0",
        _answer_of("BootNotification", _set(["interval"], 0)),
    ),
    Mutation(
        "boot-status-not-an-enum",
        "BootNotification status 'OK', not one of the enumeration",
        _answer_of("BootNotification", _set(["status"], "OK")),
    ),
    Mutation(
        "heartbeat-local-time", "Heartbeat currentTime without its UTC offset", _answer_of("Heartbeat", _local_time)
    ),
    Mutation(
        "status-answer-wrong-id",
        "StatusNotification answered under another message id",
        _wrong_id("StatusNotification"),
    ),
    Mutation("status-never-answered", "StatusNotification never answered", _silent("StatusNotification")),
    Mutation(
        "late-heartbeat",
        f"Heartbeat answered {LATE_S:g} s late (the station waits {REPLY_TIMEOUT_S:g} s)",
        delay_action="Heartbeat",
        delay_s=LATE_S,
    ),
]
V16 = [  # 1.6 asks the station not to send before it is accepted, but not the Central System to refuse it
    Mutation(
        "authorize-accepts-unknown",
        "Authorize accepts an id tag it does not know",
        _answer_of("Authorize", _set(["idTagInfo", "status"], "Accepted")),
    ),
    Mutation(
        "remote-stop-wrong-transaction",
        "RemoteStopTransaction names another transactionId than asked",
        _call_of("RemoteStopTransaction", _shift("transactionId")),
    ),
    Mutation(
        "start-without-idTagInfo",
        "StartTransaction answer lacks the required idTagInfo",
        _answer_of("StartTransaction", _drop("idTagInfo")),
    ),
]
V201 = [
    Mutation("serves-before-boot", "answers a station whose boot it left Pending", serve_before_boot=True),
    Mutation(
        "remote-stop-wrong-transaction",
        "RequestStopTransaction names another transactionId than asked",
        _call_of("RequestStopTransaction", _shift("transactionId")),
    ),
    Mutation(
        "authorize-accepts-unknown",
        "Authorize accepts an id token it does not know",
        _answer_of("Authorize", _set(["idTokenInfo", "status"], "Accepted")),
    ),
    Mutation(
        "transaction-event-without-idTokenInfo",
        "TransactionEvent with an idToken answered without idTokenInfo",
        _answer_of("TransactionEvent", _drop("idTokenInfo")),
    ),
]
MUTANTS = {"1.6": COMMON + V16, "2.0.1": COMMON + V201}


@dataclass(frozen=True, slots=True)
class Verdicts:
    passed: list[str]
    failed: list[str]  # case ids


@dataclass(frozen=True, slots=True)
class Score:
    mutation: Mutation
    caught_by: list[str]  # cases that pass against the minimal CSMS and fail against this mutant


async def run_suite(
    version: str, mutation: Mutation | None, profile: str | None, cases: list[str] | None = None
) -> Verdicts:
    """``sim conformance`` against the minimal CSMS (mutated or not), with its operator API and hooks file."""
    server, memory = await serve("127.0.0.1", 0, id_tokens=[VALID_TOKEN], mutation=mutation)
    port = server.sockets[0].getsockname()[1]
    door = OperatorDoor(memory, asyncio.get_running_loop())
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        argv = [sys.executable, "-m", "simulator.cli", "conformance", "--csms", f"ws://127.0.0.1:{port}/ocpp"]
        argv += ["--ocpp", version, "--junit", str(junit), "--reply-timeout", str(REPLY_TIMEOUT_S), "--wait", "5"]
        argv += ["--operator", str(HOOKS)]
        argv += ["--profile", profile] if profile else []
        for case_id in cases or []:
            argv += ["--case", case_id]
        argv += ["-x"] if mutation is not None else []
        env = {**os.environ, "MINIMAL_API_URL": door.url}
        process = await asyncio.create_subprocess_exec(
            *argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        await process.wait()
        verdicts = _verdicts(junit) if junit.exists() else Verdicts([], [f"(no verdicts: exit {process.returncode})"])
    door.close()
    server.close()
    with contextlib.suppress(Exception):
        await server.wait_closed()
    return verdicts


def _verdicts(junit: Path) -> Verdicts:
    passed, failed = [], []
    for case in ET.parse(junit).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        case_id = props.get("case_id") or case.get("name", "?").removeprefix("test_")
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(case_id)
        elif case.find("skipped") is None:
            passed.append(case_id)
    return Verdicts(passed, failed)


async def hunt(version: str, profile: str | None = "core", parallel: int = 2) -> tuple[Verdicts, list[Score]]:
    """The suite against the unmutated minimal CSMS, then, on the cases that passed there, against every mutant
    (``parallel`` at a time, each stopping at its first failing case)."""
    baseline = await run_suite(version, None, profile)
    gate = asyncio.Semaphore(parallel)

    async def one(mutation: Mutation) -> Score:
        async with gate:
            verdicts = await run_suite(version, mutation, profile, baseline.passed)
            return Score(mutation, verdicts.failed)

    return baseline, list(await asyncio.gather(*(one(m) for m in MUTANTS[version])))


def table(version: str, baseline: Verdicts, scores: list[Score]) -> str:
    caught = sum(1 for s in scores if s.caught_by)
    lines = [f"OCPP {version} mutants: {caught}/{len(scores)} caught ({100 * caught / len(scores):.0f} %)"]
    lines.append(f"  (the unmutated minimal CSMS: {len(baseline.passed)} cases pass, {len(baseline.failed)} fail)")
    for s in scores:
        by = ", ".join(s.caught_by) if s.caught_by else "NOT CAUGHT"
        lines.append(f"  {s.mutation.name:40} {by}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ocpp", choices=["1.6", "2.0.1"], action="append", default=None)
    parser.add_argument("--profile", default="core", help="profiles to run against each mutant (default core)")
    args = parser.parse_args(argv)
    missed = 0
    for version in args.ocpp or ["1.6", "2.0.1"]:
        baseline, scores = asyncio.run(hunt(version, args.profile or None))
        print(table(version, baseline, scores), flush=True)
        missed += sum(1 for s in scores if not s.caught_by)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
