"""The chargetwin API adapter and the example hooks file (written for the same API) against the real API and
gateway in this process, with the ``ocpp`` package's ChargePoint as the station: both provision idempotently,
make the CSMS send calls and relay the station's answer, and read back what the CSMS stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from ocpp.v16 import call as call16

from csms.api.app import create_app
from simulator.operators import ChargetwinOperator, HooksOperator, Operator, OperatorError
from tests.csms.test_api import PASSWORD, charger

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "operator-hooks.yaml"
API_KEY = "operator-test-key-0123"


@pytest.fixture(params=["chargetwin", "hooks"])
async def operator(request, session_factory, gateway, monkeypatch) -> AsyncIterator[Operator]:
    transport = httpx.ASGITransport(app=create_app(session_factory, gateway, API_KEY))
    adapter: Operator
    if request.param == "chargetwin":
        adapter = ChargetwinOperator("http://csms", API_KEY, transport=transport)
    else:
        monkeypatch.setenv("CSMS_API_URL", "http://csms")
        monkeypatch.setenv("CSMS_TOKEN", API_KEY)
        adapter = HooksOperator.from_yaml(EXAMPLE, transport=transport)
    try:
        yield adapter
    finally:
        await adapter.close()


@pytest.mark.timeout(30)
async def test_operator_provisions_calls_and_reads_back(operator: Operator, gateway) -> None:
    for capability in ("provision_station", "provision_token", "read_transactions", "read_station", "read_uptime"):
        assert operator.cannot(capability) is None  # type: ignore[arg-type]
    assert operator.cannot("send_call", "ReserveNow") is None
    since = datetime.now(UTC) - timedelta(hours=1)
    await operator.provision_station("op-16", "1.6", "an-old-password-1")
    await operator.provision_station("op-16", "1.6", PASSWORD)  # exists: its password is changed, no error
    await operator.provision_token("TAG-1")
    await operator.provision_token("TAG-2")
    await operator.provision_token("TAG-2", status="Blocked")  # exists: its status is changed
    with pytest.raises(OperatorError, match="not connected"):
        await operator.send_call("op-16", "Reset", {"type": "Soft"}, timeout_s=2)

    async with charger(gateway, "op-16", "1.6") as cp:  # gets in with the new password and is accepted
        assert (await cp.call(call16.Authorize(id_tag="TAG-1"))).id_tag_info["status"] == "Accepted"
        assert (await cp.call(call16.Authorize(id_tag="TAG-2"))).id_tag_info["status"] == "Blocked"
        await cp.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Preparing"))

        outcome = await operator.send_call(
            "op-16", "RemoteStartTransaction", {"idTag": "TAG-1", "connectorId": 1}, timeout_s=5
        )
        assert outcome.accepted and outcome.response == {"status": "Accepted"}
        assert cp.received[-1] == ("RemoteStartTransaction", {"id_tag": "TAG-1", "connector_id": 1})

        t0 = datetime.now(UTC) - timedelta(minutes=30)
        tx = await cp.call(
            call16.StartTransaction(connector_id=1, id_tag="TAG-1", meter_start=1000, timestamp=t0.isoformat())
        )
        stopped_at = (t0 + timedelta(minutes=29)).isoformat()
        await cp.call(call16.StopTransaction(transaction_id=tx.transaction_id, meter_stop=12500, timestamp=stopped_at))

        station = await operator.station("op-16")
        assert station.connected is True and station.registration == "Accepted"
        assert station.statuses == {(1, 1): "Preparing"}

    (stored,) = await operator.transactions(["op-16"], since)
    assert stored.station_id == "op-16" and stored.transaction_id == str(tx.transaction_id)
    assert stored.energy_wh == pytest.approx(11500) and stored.id_token == "TAG-1"
    assert stored.started_at is not None and stored.stopped_at is not None
    assert await operator.transactions(["op-16"], datetime.now(UTC)) == []  # started before then

    figures = await operator.uptime(["op-16"], datetime.now(UTC) - timedelta(hours=2), datetime.now(UTC))
    (port,) = figures["ports"]
    assert (port["station_id"], port["evse_id"]) == ("op-16", 1) and 0 <= port["uptime_pct"] <= 100


@pytest.mark.timeout(30)
async def test_operator_says_what_the_csms_refused(operator: Operator) -> None:
    await operator.provision_station("op-201", "2.0.1", None)
    with pytest.raises(OperatorError, match="404"):
        await operator.send_call("no-such-station", "Reset", {"type": "Immediate"}, timeout_s=2)
    if isinstance(operator, ChargetwinOperator):  # the hooks file PATCHes the password only
        with pytest.raises(OperatorError, match=r"exists with OCPP 2\.0\.1, not 1\.6"):
            await operator.provision_station("op-201", "1.6", None)
