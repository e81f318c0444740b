"""The deployment files in ``deploy/`` as an operator would use them: every ``csms`` command line in them is one
that today's ``csms`` accepts, the compose file wires PostgreSQL, Redis, the migration and the nodes together,
the image runs as a non-root user with a health check, and ``systemd-analyze verify`` accepts the unit.

No image can be pulled here (no internet), so the files are checked, not run.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from csms.cli import build_parser

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
HEALTHZ = "http://127.0.0.1:8000/healthz"


def _csms_args(argv: list[str]) -> Any:
    """What ``csms`` makes of a command line; a flag it does not know is exit status 2, a failed test here."""
    try:
        return build_parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"csms refuses {shlex.join(argv)} (exit {exc.code})")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def _nodes(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose["services"].items() if s.get("command", [None])[0] == "serve"}


def test_compose_runs_migrations_once_then_nodes_on_postgres_and_redis(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"postgres", "redis", "migrate"} <= services.keys()
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "ping" in services["redis"]["healthcheck"]["test"]
    nodes = _nodes(compose)
    assert 1 <= len(nodes) <= 2, nodes.keys()
    node_ids = set()
    postgres_env = services["postgres"]["environment"]
    for name, node in nodes.items():
        args = _csms_args(node["command"])
        assert args.host == "0.0.0.0", name  # reachable from outside the container
        assert args.broker == "redis://redis:6379/0", name
        node_ids.add(args.node_id)
        assert node["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert node["depends_on"]["redis"] == {"condition": "service_healthy"}
        url = node["environment"]["CHARGETWIN_DATABASE_URL"]
        user, database = postgres_env["POSTGRES_USER"], postgres_env["POSTGRES_DB"]
        assert re.fullmatch(rf"postgresql://{user}:\$\{{POSTGRES_PASSWORD[^}}]*\}}@postgres:5432/{database}", url)
        assert node["environment"]["CHARGETWIN_API_KEY"].startswith("${CHARGETWIN_API_KEY:?")  # no default secret
        published = {int(p.split(":")[1]): int(p.split(":")[0]) for p in node["ports"]}
        assert set(published) == {args.ocpp_port, args.api_port}, name
        assert HEALTHZ.replace("8000", str(args.api_port)) in " ".join(node["healthcheck"]["test"])
        assert node["ulimits"]["nofile"]["soft"] >= 100_000
    assert len(node_ids) == len(nodes)  # each node its own name in the registry
    host_ports = [p.split(":")[0] for node in nodes.values() for p in node["ports"]]
    assert len(host_ports) == len(set(host_ports))


def test_dockerfile_is_slim_locked_non_root_and_health_checked() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    instructions = [line for line in re.sub(r"\\\n\s*", " ", text).splitlines() if line and not line.startswith("#")]
    froms = [line.split()[1] for line in instructions if line.startswith("FROM ")]
    assert froms and all(image == "python:3.11-slim" for image in froms)
    assert any("uv sync --locked --no-dev" in line for line in instructions)
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    healthcheck = next(line for line in instructions if line.startswith("HEALTHCHECK "))
    assert HEALTHZ in healthcheck
    entrypoint = next(line for line in instructions if line.startswith("ENTRYPOINT "))
    command = next(line for line in instructions if line.startswith("CMD "))
    assert yaml.safe_load(entrypoint.split(maxsplit=1)[1]) == ["csms"]
    args = _csms_args(yaml.safe_load(command.split(maxsplit=1)[1]))
    exposed = {int(p) for line in instructions if line.startswith("EXPOSE ") for p in line.split()[1:]}
    assert {args.ocpp_port, args.api_port, 9443} <= exposed
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    copied = {line.split()[1] for line in instructions if line.startswith("COPY ") and "--from" not in line}
    assert all(f"!{Path(c).name}" in ignored or f"!{Path(c).name}/" in ignored for c in copied)  # in the context


def _unit() -> str:
    return (DEPLOY / "chargetwin-csms.service").read_text()


def test_systemd_unit_is_hardened_and_runs_a_valid_csms_serve() -> None:
    settings = dict(line.split("=", 1) for line in _unit().splitlines() if "=" in line and not line.startswith("#"))
    for key, value in {
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "StateDirectory": "chargetwin", "Restart": "on-failure",
    }.items():  # fmt: skip
        assert settings.get(key) == value, key
    assert int(settings["LimitNOFILE"]) >= 100_000
    assert settings.get("DynamicUser") == "yes" or settings.get("User") not in (None, "root")
    executable, *argv = shlex.split(settings["ExecStart"])
    assert executable.endswith("/bin/csms")
    assert _csms_args(argv).host == "0.0.0.0"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    # verify checks that ExecStart exists and the environment file too: point them at this checkout's.
    csms = Path(sys.executable).with_name("csms")
    unit = tmp_path / "chargetwin-csms.service"
    text = _unit().replace("/opt/chargetwin/.venv/bin/csms", str(csms))
    unit.write_text(text.replace("EnvironmentFile=/", "EnvironmentFile=-/"))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    complaints = [line for line in done.stderr.splitlines() if unit.name in line or "chargetwin" in line]
    assert done.returncode == 0 and not complaints, done.stderr
