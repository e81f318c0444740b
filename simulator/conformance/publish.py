"""The published table: the whole catalogue of both versions against a fresh chargetwin ``csms serve``.

    ./run python -m simulator.conformance.publish            # writes docs/conformance.md

It starts ``csms serve`` (a subprocess on free loopback ports, SQLite in a temporary directory, a fixed API key
for the chargetwin operator, ``wss://`` with a server certificate and a station CA made for the run), runs
``sim conformance`` for 1.6 and 2.0.1 with the expected failures of ``expected/<version>/`` (each names the
feature it waits for), and joins the two Markdown tables. The project's tests use :func:`chargetwin` and
:func:`run_catalogue` the same way, so the table stays true.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from csms.pki import authority, build

EXPECTED = Path(__file__).parent / "expected"
ROOT = Path(__file__).parents[2]
VERSIONS = ("2.0.1", "1.6")
START_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class Endpoint:
    ws_url: str
    api_url: str
    api_key: str
    #: ``sim conformance`` options of the ``wss://`` endpoint: its URL, the CA to trust, a station certificate.
    tls_options: tuple[str, ...] = ()


def _tls_material(workdir: Path) -> tuple[list[str], list[str]]:
    """The CA directory of one run, made as an operator would (``csms pki init``): (``csms serve`` options,
    ``sim conformance`` options but the URL). The station certificate, issued by that CA, names no
    provisioned station (their ids are made per case)."""
    pki_dir = workdir / "pki"
    command = [sys.executable, "-m", "csms.cli", "pki", "init", str(pki_dir), "--organisation", "chargetwin"]
    if not pki_dir.exists():  # one CA for the whole publication: the second version's run reuses it
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True, timeout=60)
    paths = authority.CaPaths(pki_dir)
    ca = authority.load(pki_dir)
    key = build.new_key()
    now = datetime.now(UTC)
    cert = build.issue((ca.cert, ca.key), build.name("conformance-station", "chargetwin"), key.public_key(), now, 2)
    station_cert, station_key = pki_dir / "conformance-station.pem", pki_dir / "conformance-station.key"
    station_cert.write_text(build.cert_pem(cert))
    station_key.write_text(build.key_pem(key))
    serve = ["--pki", str(pki_dir)]
    suite = ["--ca-file", str(paths.csms_root), "--client-cert", str(station_cert), "--client-key", str(station_key)]
    suite += ["--client-ca-cert", str(paths.station_ca_cert), "--client-ca-key", str(paths.station_ca_key)]
    return serve, suite


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def chargetwin(workdir: Path, *extra: str) -> Iterator[Endpoint]:
    """A fresh ``csms serve`` for the duration of the block (terminated, or killed, on the way out), with
    ``ws://`` and ``wss://``."""
    ocpp_port, api_port, key = free_port(), free_port(), "ctk_conformance_" + secrets.token_urlsafe(12)
    tls_port = free_port()
    serve_tls, suite_tls = _tls_material(workdir)
    command = [sys.executable, "-m", "csms.cli", "serve", "--ocpp-port", str(ocpp_port), "--api-port", str(api_port)]
    command += ["--tls-port", str(tls_port), *serve_tls, "--contract-test-ca", str(workdir / "contract-ca")]
    command += ["--database-url", f"sqlite:///{workdir / 'csms.db'}", "--log-level", "warning", *extra]
    env = {**os.environ, "CHARGETWIN_API_KEY": key}
    env.pop("CHARGETWIN_DATABASE_URL", None)
    log = (workdir / "csms.log").open("w")
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{api_port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"csms serve exited with {process.returncode}: see {workdir / 'csms.log'}")
            try:
                httpx.get(api + "/openapi.json", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError("csms serve did not start within a minute") from None
                time.sleep(0.1)
        tls_options = ("--csms-tls-url", f"wss://127.0.0.1:{tls_port}/ocpp", *suite_tls)
        yield Endpoint(f"ws://127.0.0.1:{ocpp_port}/ocpp", api, key, tls_options)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


def run_catalogue(
    endpoint: Endpoint, version: str, out: Path, *extra: str, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """``sim conformance`` for ``version`` with chargetwin's expected failures; writes out/<version>.xml and .md."""
    command = [sys.executable, "-m", "simulator.cli", "conformance", "--csms", endpoint.ws_url, "--ocpp", version]
    command += ["--api-url", endpoint.api_url, "--api-key", endpoint.api_key]
    command += ["--expected-failures", str(EXPECTED / version), *endpoint.tls_options]
    command += ["--junit", str(out / f"{version}.xml"), "--report", str(out / f"{version}.md"), *extra]
    # Conformance, not latency: beside a full test run on a loaded 2-core machine a handshake has taken over
    # the former 5-s default (CI, once in about twenty runs), so the station is as patient as a charger's own timeout.
    command += ["--open-timeout", "30"]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)


HEADER = """# OCPP conformance of chargetwin

Generated by `./run python -m simulator.conformance.publish` from a run of `sim conformance` against a fresh
`csms serve` (SQLite, the chargetwin operator over its REST API). *Expected failure*: the case fails because
chargetwin lacks the feature named in the note (the issue that builds it); the suite turns it into an error the
day it passes, so this list stays true. *Not run*: the case needs something the run cannot do, with the reason.
How to run the suite against any CSMS: README, "Conformance".

"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "conformance.md")
    args = parser.parse_args(argv)
    parts, worst = [HEADER], 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for version in VERSIONS:
            with chargetwin(work) as endpoint:
                done = run_catalogue(endpoint, version, work)
            print(done.stdout[-3000:], done.stderr[-2000:], sep="\n", flush=True)
            worst = max(worst, done.returncode)
            table = (work / f"{version}.md").read_text().split("\n", 1)[1]
            parts.append(f"## OCPP {version}\n{table}\n")
    args.out.write_text("".join(parts))
    print(f"wrote {args.out}")
    return worst


if __name__ == "__main__":
    sys.exit(main())
