"""``sim conformance``: the built-in catalogue against a CSMS, through pytest and the chargetwin plugin.

Exit status: 0 every selected case passed (or failed as expected), 1 a case failed, 2 a usage error (bad
arguments, an unreachable CSMS, no case selected) with a one-line reason.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from websockets.exceptions import InvalidHandshake, InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from csms.ocpp.versions import VERSION_SUBPROTOCOL, parse_version
from simulator.conformance.catalogue import PROFILES
from simulator.conformance.plugin import DEFAULT_STATION_ID
from simulator.links.offer import basic_auth

CASES = Path(__file__).parent / "cases"
#: The project's other pytest plugins, which a conformance run has no use for.
QUIET_PLUGINS = ("cacheprovider", "xdist", "asyncio", "benchmark", "hypothesispytest", "anyio", "locust")
#: How long the pre-flight check waits for the CSMS's port to answer.
REACH_TIMEOUT_S = 5.0


def usage_problem(args: argparse.Namespace) -> str | None:
    """Why the run cannot start (bad profile, unreachable CSMS), or None."""
    if args.profile:
        unknown = {p.strip() for p in args.profile.split(",")} - set(PROFILES[args.ocpp])
        if unknown:
            known = ", ".join(PROFILES[args.ocpp])
            return f"unknown OCPP {args.ocpp} profile(s) {', '.join(sorted(unknown))} (known: {known})"
    parts = urlsplit(args.csms)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        return f"--csms must be a ws:// or wss:// URL, not {args.csms!r}"
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    if args.list:
        return None
    try:
        with socket.create_connection((parts.hostname, port), timeout=REACH_TIMEOUT_S):
            pass
    except OSError as exc:
        return f"cannot reach the CSMS at {parts.hostname}:{port}: {exc.strerror or exc}"
    if args.api_url is None and args.operator in (None, "manual"):  # no one provisions stations: one must exist
        return station_refused(args)
    return None


def station_refused(args: argparse.Namespace) -> str | None:
    """Without an operator that provisions stations, every case uses one given station: if the CSMS refuses
    its handshake, say so once (a usage error) rather than failing every case with it."""
    station_id = args.station_id or DEFAULT_STATION_ID
    headers = {"Authorization": basic_auth(station_id, args.password)} if args.password else {}
    url = f"{args.csms.rstrip('/')}/{station_id}"
    try:
        with connect(
            url,
            subprotocols=[Subprotocol(VERSION_SUBPROTOCOL[parse_version(args.ocpp)])],
            additional_headers=headers,
            open_timeout=REACH_TIMEOUT_S,
        ):
            return None
    except InvalidStatus as exc:
        return (
            f"the CSMS refused station {station_id!r} (HTTP {exc.response.status_code} at {url}): provision it and "
            "give --station-id/--password, or let the suite provision its stations (--api-url/--api-key, or a "
            "hooks file as --operator)"
        )
    except (InvalidHandshake, OSError, TimeoutError) as exc:
        return f"no WebSocket handshake with {url}: {type(exc).__name__}: {exc}"


def pytest_arguments(args: argparse.Namespace) -> list[str]:
    argv = [str(CASES), "-c", os.devnull, "--rootdir", str(CASES), "-W", "ignore::pytest.PytestAssertRewriteWarning"]
    argv += [arg for plugin in QUIET_PLUGINS for arg in ("-p", f"no:{plugin}")]
    argv += ["--csms-url", args.csms, "--ocpp", args.ocpp, "--reply-timeout", str(args.reply_timeout)]
    argv += ["--open-timeout", str(args.open_timeout)]
    options = {
        "--csms-tls-url": args.csms_tls_url,
        "--ca-file": args.ca_file,
        "--client-cert": args.client_cert,
        "--client-key": args.client_key,
        "--client-ca-cert": args.client_ca_cert,
        "--client-ca-key": args.client_ca_key,
        "--station-id": args.station_id,
        "--password": args.password,
        "--profile": args.profile,
        "--operator": args.operator,
        "--api-url": args.api_url,
        "--api-key": args.api_key,
        "--junitxml": args.junit,
        "--conformance-report": args.report,
        "--expected-failures": args.expected_failures,
        "--wait": None if args.wait is None else str(args.wait),
    }
    for flag, value in options.items():
        if value is not None:
            argv += [flag, value]
    for case_id in args.case:
        argv += ["--case", case_id]
    if args.junit:
        argv += ["-o", f"junit_suite_name=ocpp-{args.ocpp}-conformance", "-o", "junit_logging=no"]
    argv += ["--exitfirst"] if args.exitfirst else []
    argv += ["--capture=no"] if args.operator == "manual" else []  # the person answers on this terminal
    argv += ["--collect-only", "-q"] if args.list else (["-v"] if args.verbose else ["-q", "--no-header"])
    return argv


def run(args: argparse.Namespace) -> int:
    problem = usage_problem(args)
    if problem is not None:
        print(f"sim conformance: {problem}", file=sys.stderr)
        return 2
    code = pytest.main(pytest_arguments(args))
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        print("sim conformance: no case matches the selection", file=sys.stderr)
        return 2
    if code in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        return int(code)
    print(f"sim conformance: the run did not complete ({pytest.ExitCode(code).name.lower()})", file=sys.stderr)
    return 2
