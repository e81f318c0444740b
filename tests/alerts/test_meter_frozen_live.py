"""``csms serve`` end to end over real sockets: a charger whose energy register stops while it reports power gets
a ``meter_frozen`` alert (API and webhook), cleared when the register moves again or the transaction ends.
The readings carry their own timestamps, so ten minutes of meter values are sent at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from csms.alerts import AlertRules
from tests.alerts.test_live import station
from tests.alerts.test_webhooks import SECRET, Receiver
from tests.support.live import eventually, live_csms

START = datetime(2026, 1, 15, 22, 0, tzinfo=UTC)
RULES = AlertRules(meter_frozen_after_s=300, meter_frozen_readings=3)


def _ts(minute: int) -> str:
    return (START + timedelta(minutes=minute)).isoformat().replace("+00:00", "Z")


def _sampled(register_wh: float, power_w: float) -> list[dict[str, Any]]:
    return [
        {"value": f"{register_wh:g}", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
        {"value": f"{power_w:g}", "measurand": "Power.Active.Import", "unit": "W"},
    ]


def _sampled201(register_wh: float, power_w: float) -> list[dict[str, Any]]:
    return [
        {"value": register_wh, "measurand": "Energy.Active.Import.Register", "unit_of_measure": {"unit": "Wh"}},
        {"value": power_w, "measurand": "Power.Active.Import", "unit_of_measure": {"unit": "W"}},
    ]


async def _open(client: Any, station_id: str) -> list[dict[str, Any]]:
    rows = (await client.get("/alerts", params={"open": "true", "station_id": station_id})).json()
    return [a for a in rows if a["rule"] == "meter_frozen"]


async def test_frozen_register_over_1_6_is_alerted_with_the_operators_threshold_and_cleared_when_it_moves(database_url):
    with Receiver(failures=0) as receiver:
        async with live_csms(database_url) as (endpoints, client):
            # The operator shortens the rule's duration (default 15 min) on the running CSMS.
            rules = await client.put("/alert-rules/meter_frozen", json={"threshold": 300})
            rule = next(r for r in rules.json() if r["rule"] == "meter_frozen")
            assert (rule["threshold"], rule["threshold_field"], rule["enabled"]) == (300, "meter_frozen_after_s", True)
            hook = await client.post("/webhooks", json={"url": receiver.url, "secret": SECRET, "events": ["alert.*"]})
            assert hook.status_code == 201, hook.text
            async with station(endpoints, client, "cp-m", "1.6") as cp:
                started = await cp.call(
                    call16.StartTransaction(connector_id=1, id_tag="TAG-1", meter_start=10_000, timestamp=_ts(0))
                )

                async def meter(minute: int, register_wh: float, power_w: float) -> None:
                    value = [{"timestamp": _ts(minute), "sampled_value": _sampled(register_wh, power_w)}]
                    await cp.call(
                        call16.MeterValues(connector_id=1, transaction_id=started.transaction_id, meter_value=value)
                    )

                await meter(1, 10_350, 21_000)
                for minute in range(2, 7):  # stuck at 10 350 Wh for 5 readings over 5 minutes, 21 kW flowing
                    await meter(minute, 10_350, 21_000)
                [alert] = await eventually(lambda: _open(client, "cp-m"))
                assert (alert["evse_id"], alert["severity"]) == (1, "warning")
                assert alert["details"]["transaction_id"] == str(started.transaction_id)
                assert alert["details"]["register_wh"] == 10_350

                await meter(7, 10_700, 21_000)
                assert await eventually(lambda: _none(client, "cp-m"))

            async def delivered() -> list[str] | None:
                rows = (await client.get(f"/webhooks/{hook.json()['id']}/deliveries")).json()
                types = sorted(r["event_type"] for r in rows if r["status"] == "delivered")
                return types if len(types) >= 2 else None

            assert await eventually(delivered) == ["alert.raised", "alert.resolved"]
    bodies = [body for _, body in receiver.requests]
    assert all(b"meter_frozen" in body for body in bodies)


async def test_frozen_register_over_2_0_1_is_cleared_by_the_transaction_end(sqlite_url):
    async with (
        live_csms(sqlite_url, alert_rules=RULES) as (endpoints, client),
        station(endpoints, client, "cp-n", "2.0.1") as cp,
    ):

        async def event(kind: str, seq: int, minute: int, **extra: Any) -> None:
            body = {
                "event_type": kind,
                "timestamp": _ts(minute),
                "trigger_reason": "MeterValuePeriodic" if kind == "Updated" else "EVDetected",
                "seq_no": seq,
                "transaction_info": {"transaction_id": "tx-9", **extra.pop("info", {})},
                **extra,
            }
            await cp.call(call201.TransactionEvent(**body))

        await event("Started", 0, 0, evse={"id": 1, "connector_id": 1}, info={"charging_state": "Charging"})
        for minute in range(1, 8):  # only the first Updated names the EVSE, as many stations do
            value = [{"timestamp": _ts(minute), "sampled_value": _sampled201(5_000, 45_000)}]
            extra = {"evse": {"id": 1, "connector_id": 1}} if minute == 1 else {}
            await event("Updated", minute, minute, meter_value=value, **extra)
        [alert] = await eventually(lambda: _open(client, "cp-n"))
        assert alert["evse_id"] == 1
        await event("Ended", 8, 8, info={"stopped_reason": "EVDisconnected"})
        assert await eventually(lambda: _none(client, "cp-n"))


async def _none(client: Any, station_id: str) -> bool:
    return not await _open(client, station_id)
