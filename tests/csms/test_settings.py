"""The settings of ``csms serve``: one list (the flags, the file's keys and the environment agree), the
precedence flags > environment > file > defaults, mistakes named with their key and source (exit status 2),
``csms config show`` with secrets masked, and the shipped example file."""

from __future__ import annotations

import argparse
import re
import tomllib
from pathlib import Path

import pytest

from csms import cli
from csms.runtime import settings as s
from tests.csms.test_cli import ROOT, csms

EXAMPLE = ROOT / "deploy" / "chargetwin.example.toml"


def parse(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(["serve", *argv])


def load(*argv: str, environ: dict[str, str] | None = None) -> s.Loaded:
    return s.load(parse(*argv), environ or {})


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "chargetwin.toml"
    path.write_text(text)
    return path


def options_of(command: str, *sub: str) -> set[str]:
    parser = cli.build_parser()
    for name in (command, *sub):
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return {a.dest for a in parser._actions if a.option_strings and a.dest not in ("help", "config")}


def test_every_flag_is_a_setting_and_every_setting_a_flag_but_the_secrets():
    fields = set(s.ServeSettings.model_fields)
    secrets = {"api_key", "payment_webhook_secret"}  # never on a command line, which every user of the machine sees
    assert options_of("serve") == fields - secrets == set(s.flagged())
    assert options_of("config", "show") == options_of("serve")
    assert all(s.is_secret(name) for name in secrets)


def test_the_example_file_loads_and_documents_every_setting(tmp_path):
    text = EXAMPLE.read_text()
    loaded = load("--config", str(EXAMPLE))
    assert loaded.settings == s.ServeSettings()  # it lists the defaults
    documented = set(re.findall(r"^#? ?([a-z_]+) = ", text, re.MULTILINE))
    assert documented == set(s.ServeSettings.model_fields)
    # the commented-out examples are valid values too
    uncommented = re.sub(r"^# ([a-z_]+ = )", r"\1", text, flags=re.MULTILINE)
    values = {}
    for line in uncommented.splitlines():  # the last of a key's lines wins (database_url has two)
        if re.match(r"[a-z_]+ = ", line):
            values.update(tomllib.loads(line))
    example = s.ServeSettings.model_validate(values, strict=True)
    s.check_together(example)


def test_precedence_flags_over_environment_over_file_over_defaults(tmp_path):
    path = write(tmp_path, 'ocpp_port = 9100\napi_port = 8100\nhost = "0.0.0.0"\nauto_register = true\n')
    environ = {"CHARGETWIN_API_PORT": "8200", "CHARGETWIN_OCPP_PORT": "9200", "CHARGETWIN_LOG_FORMAT": "json"}
    loaded = load("--config", str(path), "--ocpp-port", "9300", "--no-auto-register", environ=environ)
    got = loaded.settings
    assert (got.ocpp_port, got.api_port, got.host) == (9300, 8200, "0.0.0.0")
    assert (got.log_format, got.auto_register) == ("json", False)
    assert got.tls_port == 9443
    assert loaded.origins["host"] == str(path) and loaded.origins["api_port"] == "environment"
    assert loaded.origins["ocpp_port"] == "command line" and "tls_port" not in loaded.origins
    # the file may also come from $CHARGETWIN_CONFIG
    assert load(environ={"CHARGETWIN_CONFIG": str(path)}).settings.api_port == 8100


@pytest.mark.parametrize(
    ("text", "environ", "argv", "message"),
    [
        ("ocpp_port = 9000\nocpp_prot = 9001\n", {}, (), "line 2: ocpp_prot: unknown key (did you mean ocpp_port?)"),
        ('host = "::"\nocpp_port = "9000"\n', {}, (), "line 2: ocpp_port: Input should be a valid integer"),
        ("[tls]\ncert = 'a.pem'\n", {}, (), "line 1: tls: unknown key"),
        ("", {"CHARGETWIN_API_PORT": "eighty"}, (), "$CHARGETWIN_API_PORT: Input should be a valid integer"),
        ("", {"CHARGETWIN_LOG_FORMAT": "xml"}, (), "$CHARGETWIN_LOG_FORMAT: Input should be 'text' or 'json'"),
        ("", {}, ("--api-port", "70000"), "--api-port: Input should be less than or equal to 65535"),
        ('tls_cert = "server.pem"\n', {}, (), "tls_key (--tls-key): required with tls_cert"),
        ("", {"CHARGETWIN_TLS_KEY": "k.pem"}, (), "tls_cert (--tls-cert): required with tls_key"),
        ('tls_client_ca = "ca.pem"\n', {}, (), "tls_cert and tls_key (--tls-cert, --tls-key): required with tls_"),
        ('broker = "http://cache:6379"\n', {}, (), "broker: Value error, must be a redis://"),
        ("ocpp_port = \n", {}, (), "not valid TOML: Invalid value (at line 1, column 13)"),
    ],
)  # fmt: skip
def test_mistakes_name_the_key_and_where_it_came_from(tmp_path, text, environ, argv, message):
    path = write(tmp_path, text)
    with pytest.raises(s.SettingsError) as caught:
        load("--config", str(path), *argv, environ=environ)
    assert message in str(caught.value)


def test_a_bad_config_stops_serve_with_status_2(tmp_path):
    path = write(tmp_path, 'api_key = "k-0123456789abcdef"\nheartbeat_interval = -5\n')
    done = csms("serve", "--config", str(path))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == f"csms: {path} line 2: heartbeat_interval: Input should be greater than or equal to 1"
    missing = csms("config", "show", "--config", str(tmp_path / "nope.toml"))
    assert missing.returncode == 2 and "cannot read the config file" in missing.stderr


def test_config_show_prints_effective_toml_with_secrets_masked(tmp_path, capsys):
    path = write(
        tmp_path,
        'database_url = "postgresql://csms:db-pw-123@db:5432/csms"\n'
        'api_key = "file-key-0123456789"\nocpp_port = 9100\n',
    )
    environ = {"CHARGETWIN_BROKER": "redis://:broker-pw-456@cache:6379/0"}
    text = s.to_toml(load("--config", str(path), "--tls-port", "9555", environ=environ))
    for secret in ("db-pw-123", "file-key-0123456789", "broker-pw-456"):
        assert secret not in text
    shown = tomllib.loads(text)
    assert shown["database_url"] == "postgresql://csms:********@db:5432/csms" and shown["api_key"] == "********"
    assert shown["broker"] == "redis://:********@cache:6379/0"
    assert (shown["ocpp_port"], shown["tls_port"], shown["host"]) == (9100, 9555, "127.0.0.1")
    assert "tls_cert" not in shown and "# tls_cert = (not set)" in text
    assert "ocpp_port = 9100  # " + str(path) in text and "tls_port = 9555  # --tls-port" in text
    assert "$CHARGETWIN_BROKER" in text
    # through the command, as a user runs it
    assert cli.main(["config", "show", "--config", str(path), "--log-format", "json"]) == 0
    printed = capsys.readouterr().out
    assert 'log_format = "json"' in printed and "db-pw-123" not in printed
