"""A hooks file's mistakes are named by file, line and field before anything runs; what a file leaves out the
operator says it cannot do; ``--operator`` names one of three adapters or says why not; the manual operator
tells a person what to do and waits for Enter."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from simulator.operators import HooksFileError, HooksOperator, ManualOperator, OperatorError, make_operator

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "operator-hooks.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hooks.yaml"
    path.write_text(text)
    return path


def test_bad_hooks_file_names_field_and_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_CSMS_TOKEN", raising=False)
    typo = write(
        tmp_path,
        "base_url: http://csms/api\n"
        "calls:\n"
        "  Reset:\n"
        "    url: /stations/{station_id}/reset\n"
        "    expect: [200]\n"
        "    answr: payload\n",
    )
    with pytest.raises(HooksFileError) as caught:
        HooksOperator.from_yaml(typo)
    assert str(caught.value) == f"{typo}:6:5: calls.Reset.answr: unknown field 'answr' (did you mean 'answer'?)"

    wrong = write(
        tmp_path,
        "base_url: http://csms/api\n"
        "headers:\n"
        "  Authorization: Bearer ${NO_SUCH_CSMS_TOKEN}\n"
        "calls:\n"
        "  Reset: {url: '/stations/{station}/reset'}\n"
        "read_transactions:\n"
        "  url: /transactions\n"
        "  expect: two hundred\n"
        "  fields: {transaction_id: id, energy_wh: wh}\n",
    )
    with pytest.raises(HooksFileError) as caught:
        HooksOperator.from_yaml(wrong)
    assert str(caught.value) == f"{wrong}:8:11: read_transactions.expect: expected a list, got 'two hundred'"

    wrong.write_text(wrong.read_text().replace("  expect: two hundred\n", ""))
    with pytest.raises(HooksFileError) as caught:
        HooksOperator.from_yaml(wrong)
    assert str(caught.value).splitlines() == [
        f"{wrong}:3:18: headers.Authorization: environment variable NO_SUCH_CSMS_TOKEN is not set",
        f"{wrong}:5:16: calls.Reset.url: unknown placeholder {{station}}: here one of {{action}}, {{payload}}, "
        "{station_id}, {timeout_s}",
    ]

    with pytest.raises(HooksFileError, match=r"hooks\.yaml:2:1: YAML syntax error"):
        HooksOperator.from_yaml(write(tmp_path, "base_url: http://csms\n- just a list item\n"))


def test_what_a_hooks_file_leaves_out_it_cannot_do(tmp_path: Path) -> None:
    only_reset = write(tmp_path, "base_url: http://csms/api\ncalls:\n  Reset: {url: '/stations/{station_id}/reset'}\n")
    operator = HooksOperator.from_yaml(only_reset)
    assert operator.cannot("send_call", "Reset") is None
    assert operator.cannot("send_call", "ReserveNow") == "hooks.yaml defines no call for ReserveNow"
    assert operator.cannot("read_transactions") == "hooks.yaml defines no read_transactions"
    assert operator.cannot("provision_token") == "hooks.yaml defines no provision_token"
    with pytest.raises(OperatorError, match=r"hooks\.yaml defines no read_station"):
        asyncio.run(operator.station("cp-1"))


def test_operator_spec_names_an_adapter_or_says_why_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSMS_API_URL", "http://csms")
    monkeypatch.setenv("CSMS_TOKEN", "key")
    assert make_operator("chargetwin", "http://127.0.0.1:8000", "key").name == "api"
    assert make_operator(str(EXAMPLE)).name == "hooks"
    assert make_operator("manual").name == "manual"
    for spec, reason in [
        ("chargetwin", "--operator chargetwin needs --api-url"),
        ("csms-of-my-own", "expected chargetwin, manual or a hooks file"),
        (str(tmp_path / "missing.yaml"), "no such hooks file"),
    ]:
        with pytest.raises(ValueError, match=reason) as caught:
            make_operator(spec)
        assert "\n" not in str(caught.value)


@pytest.mark.timeout(10)
async def test_manual_operator_prints_what_to_do_and_waits_for_enter() -> None:
    printed: list[str] = []
    pressed = threading.Event()

    def prompt(text: str) -> str:
        assert pressed.wait(5), "the test never pressed Enter"
        pressed.clear()
        return ""

    operator = ManualOperator(prompt=prompt, out=printed.append)
    payload = {"idToken": {"idToken": "TAG-1", "type": "ISO14443"}, "evseId": 1, "remoteStartId": 3}
    sending = asyncio.ensure_future(operator.send_call("cp-7", "RequestStartTransaction", payload))
    await asyncio.sleep(0.2)
    assert not sending.done()  # the event loop runs on while the person works
    assert printed == [
        "Make the CSMS send RequestStartTransaction to station 'cp-7' with idToken.idToken 'TAG-1', "
        "idToken.type 'ISO14443', evseId 1, remoteStartId 3."
    ]
    pressed.set()
    outcome = await asyncio.wait_for(sending, 5)
    assert outcome.accepted and outcome.response is None

    pressed.set()
    await operator.provision_token("TAG-9", group="fleet")
    assert printed[-1] == "On the CSMS, add (or update) id token 'TAG-9' with status Accepted, group 'fleet'."
    pressed.set()
    await operator.provision_station("cp-7", "2.0.1", "s3cret")
    assert "station 'cp-7': OCPP 2.0.1, HTTP Basic password 's3cret'" in printed[-1]

    for capability in ("read_transactions", "read_station", "read_uptime"):
        assert "nothing can be read back" in (operator.cannot(capability) or "")  # type: ignore[arg-type]
    assert operator.cannot("send_call", "ReserveNow") is None
    with pytest.raises(OperatorError, match="nothing can be read back"):
        await operator.transactions(["cp-7"], datetime.now(UTC))


@pytest.mark.timeout(10)
async def test_manual_operator_gives_up_when_no_one_answers() -> None:
    operator = ManualOperator(prompt=lambda _: (_ for _ in ()).throw(EOFError()), out=lambda _: None)
    with pytest.raises(OperatorError, match="standard input is closed"):
        await operator.send_call("cp-7", "Reset", {"type": "Soft"})


async def test_hooks_read_one_list_for_all_stations_and_scale_energy(tmp_path: Path) -> None:
    """A CSMS that lists every session in one answer, nested, with kWh and POSIX times: the paths and the
    scale map it, stations not asked for are left out, and a CALL's answer is found where ``answer`` says."""
    hooks = write(
        tmp_path,
        "base_url: http://other-csms/v2\n"
        "calls:\n"
        "  '*': {url: '/chargers/{station_id}/ocpp/{action}', body: {message: '{payload}'}, answer: reply.body}\n"
        "read_transactions:\n"
        "  url: /sessions\n"
        "  params: {from: '{since}'}\n"
        "  items: data.sessions\n"
        "  fields:\n"
        "    station_id: charger.name\n"
        "    transaction_id: id\n"
        "    started_at: times.0\n"
        "    stopped_at: times.1\n"
        "    energy_wh: {path: kwh, scale: 1000}\n",
    )
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/v2/sessions":
            sessions = [
                {"id": 41, "charger": {"name": "cp-1"}, "times": [1_780_000_000, 1_780_003_600], "kwh": 7.25},
                {"id": 42, "charger": {"name": "cp-9"}, "times": [1_780_000_000, None], "kwh": 1.0},
            ]
            return httpx.Response(200, json={"data": {"sessions": sessions}})
        return httpx.Response(202, json={"reply": {"body": {"status": "Accepted"}}})

    operator = HooksOperator.from_yaml(hooks, transport=httpx.MockTransport(handler))
    since = datetime(2026, 1, 1, tzinfo=UTC)
    try:
        (stored,) = await operator.transactions(["cp-1", "cp-2"], since)
        outcome = await operator.send_call("cp 1", "Reset", {"type": "Soft"})
    finally:
        await operator.close()
    assert (stored.station_id, stored.transaction_id, stored.energy_wh) == ("cp-1", "41", 7250.0)
    assert stored.stopped_at == datetime.fromtimestamp(1_780_003_600, UTC)
    assert len(seen) == 2 and seen[0].url.params["from"] == since.isoformat()  # one request for every station
    assert seen[1].url.raw_path == b"/v2/chargers/cp%201/ocpp/Reset"
    assert json.loads(seen[1].content) == {"message": {"type": "Soft"}}
    assert outcome.response == {"status": "Accepted"}
