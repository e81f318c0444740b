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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--csms", required=True, metavar="URL", help="the CSMS's OCPP endpoint, ws://HOST:PORT/PATH")
    parser.add_argument("--csms-tls-url", default=None, metavar="URL", help="its wss:// endpoint (profiles 2, 3)")
    parser.add_argument("--ca-file", default=None, metavar="PEM", help="CA that signs the CSMS's server certificate")
    parser.add_argument("--client-cert", default=None, metavar="PEM", help="the station's certificate (profile 3)")
    parser.add_argument("--client-key", default=None, metavar="PEM", help="its private key")
    parser.add_argument(
        "--client-ca-cert",
        default=None,
        metavar="PEM",
        help="a station CA the CSMS trusts: each case's station gets a certificate naming its id (profile 3)",
    )
    parser.add_argument("--client-ca-key", default=None, metavar="PEM", help="that CA's private key")
    parser.add_argument("--ocpp", required=True, choices=["1.6", "2.0.1"], help="OCPP version")
    parser.add_argument(
        "--station-id", default=None, metavar="ID", help="station id when the operator cannot provision one"
    )
    parser.add_argument("--password", default=None, metavar="P", help="that station's HTTP Basic password")
    parser.add_argument(
        "--profile", default=None, metavar="P[,P…]", help="certification profiles to run (default: all)"
    )
    parser.add_argument("--case", action="append", default=[], metavar="TC_…", help="run only this case (repeatable)")
    parser.add_argument(
        "--operator", default=None, metavar="chargetwin|hooks.yaml|manual", help="how the CSMS is made to act"
    )
    parser.add_argument("--api-url", default=None, metavar="URL", help="chargetwin's API (for --operator chargetwin)")
    parser.add_argument("--api-key", default=None, metavar="KEY", help="chargetwin API key")
    parser.add_argument("--junit", default=None, metavar="FILE", help="write JUnit XML")
    parser.add_argument("--report", default=None, metavar="FILE", help="write a Markdown table")
    parser.add_argument("--expected-failures", default=None, metavar="YAML", help="cases known to fail, with why")
    parser.add_argument(
        "--reply-timeout", type=float, default=10.0, metavar="S", help="station's CALL timeout (default 10)"
    )
    parser.add_argument(
        "--open-timeout", type=float, default=10.0, metavar="S", help="station's handshake timeout (default 10)"
    )
    parser.add_argument("--wait", type=float, default=None, metavar="S", help="wait for the CSMS to act (default 15)")
    parser.add_argument("--list", action="store_true", help="list the selected cases and exit")
    parser.add_argument("-x", "--exitfirst", action="store_true", help="stop at the first failing case")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per case")


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
