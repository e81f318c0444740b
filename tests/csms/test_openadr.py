"""Demand response against a real OpenADR 2.0b VTN (openleadr's server on loopback): the CSMS's VEN registers,
receives an event, answers optIn (or optOut when a vehicle's departure is at risk and the rule allows it), lowers
the site's limit from the event's start so two real chargers (the ``ocpp`` package's ChargePoint) are told less
within one planning cycle, gives it back at the end, and reports the planned power back to the VTN."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from datetime import UTC, datetime, timedelta

import pytest

from csms.runtime.openadr import Step, Ven, steps
from tests.csms.test_loadmgmt_gateway import connect, managed, plug_and_start, session_factory, settle, total_kw

__all__ = ["managed", "session_factory"]  # fixtures used by name

pytestmark = pytest.mark.timeout(90)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_signals_become_limit_steps():
    t0 = datetime(2026, 12, 4, 18, tzinfo=UTC)
    event = {
        "active_period": {"dtstart": t0, "duration": timedelta(hours=1)},
        "event_signals": [
            {"signal_name": "SIMPLE", "signal_type": "level",
             "intervals": [{"duration": timedelta(minutes=30), "signal_payload": 2},
                           {"duration": timedelta(minutes=30), "signal_payload": 1}]},
        ],
    }  # fmt: skip
    assert steps(event, 100.0) == [
        Step(t0.timestamp(), t0.timestamp() + 1800, 50.0),
        Step(t0.timestamp() + 1800, t0.timestamp() + 3600, 75.0),
    ]
    dispatch = {"active_period": {"dtstart": t0, "duration": timedelta(hours=1)},
                "event_signals": [{"signal_name": "LOAD_DISPATCH", "signal_type": "delta",
                                   "intervals": [{"duration": timedelta(hours=1), "signal_payload": 40}]}]}  # fmt: skip
    assert steps(dispatch, 100.0)[0].limit_kw == 60.0
    bad = {"active_period": {"dtstart": t0}, "event_signals": [{"signal_name": "ELECTRICITY_PRICE", "intervals": [{}]}]}
    with pytest.raises(ValueError, match="ELECTRICITY_PRICE"):
        steps(bad, 100.0)


@contextlib.asynccontextmanager
async def vtn(responses: list[str], reports: list[float], resources: list[str] | None = None):
    from openleadr import OpenADRServer

    port = free_port()
    server = OpenADRServer(vtn_id="test-vtn", http_host="127.0.0.1", http_port=port,
                           requested_poll_freq=timedelta(seconds=1), verify_message_signatures=False)  # fmt: skip
    registered: dict[str, str] = {}

    async def on_create_party_registration(info):
        registered[info["ven_name"]] = "ven-1"
        return "ven-1", "reg-1"

    async def on_register_report(
        ven_id, resource_id, measurement, unit, scale, min_sampling_interval, max_sampling_interval
    ):
        async def received(data):
            reports.extend(value for _, value in data)

        if resources is not None:
            resources.append(resource_id)
        return received, min_sampling_interval

    server.add_handler("on_create_party_registration", on_create_party_registration)
    server.add_handler("on_register_report", on_register_report)
    await server.run()
    try:
        yield server, f"http://127.0.0.1:{port}/OpenADR2/Simple/2.0b", registered
    finally:
        await server.stop()


async def until(predicate, timeout: float, what: str) -> None:
    for _ in range(int(timeout / 0.1)):
        if predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def test_an_event_lowers_the_site_limit_for_its_duration_and_the_ven_reports_back(gateway, managed):
    responses: list[str] = []
    reports: list[float] = []
    async with (
        vtn(responses, reports) as (server, url, registered),
        connect(gateway, "lm-a") as a,
        connect(gateway, "lm-b") as b,
    ):
        await plug_and_start(a, "TAG-A")
        await plug_and_start(b, "TAG-B")
        await settle(a, b)
        before = total_kw(a.tx_limit(), b.tx_limit())
        assert before > 20.0  # 30 kW shared by the two cars
        ven = Ven(managed, vtn_url=url, ven_name="csms-test", sites=["garage"])
        runner = asyncio.create_task(ven.start())
        try:
            await until(lambda: "csms-test" in registered, 20, "the VEN to register")
            start = datetime.now(UTC) + timedelta(seconds=2)
            server.add_event(
                ven_id="ven-1", signal_name="LOAD_DISPATCH", signal_type="setpoint",
                intervals=[{"dtstart": start, "duration": timedelta(seconds=6), "signal_payload": 11.0}],
                callback=lambda ven_id, event_id, opt_type: responses.append(opt_type),
            )  # fmt: skip
            await until(lambda: responses == ["optIn"], 20, "the VEN's optIn")
            await until(lambda: total_kw(a.tx_limit(), b.tx_limit()) <= 11.0 + 1e-6, 10, "the chargers told less")
            await until(lambda: total_kw(a.tx_limit(), b.tx_limit()) > 20.0, 15, "the limit given back at the end")
            await until(lambda: len(reports) > 0, 20, "a telemetry report")
        finally:
            await ven.stop()
            runner.cancel()
            with contextlib.suppress(BaseException):
                await runner


async def test_the_ven_opts_out_when_a_departure_is_at_risk_and_the_rule_allows(gateway, managed):
    responses: list[str] = []
    asked: list[tuple[str, float]] = []

    async def at_risk(site_id: str, start: float, end: float, limit_kw: float) -> bool:
        asked.append((site_id, limit_kw))
        return True

    async with vtn(responses, []) as (server, url, registered):
        ven = Ven(managed, vtn_url=url, ven_name="csms-test", sites=["garage"], opt_out="when_departure_at_risk",
                  at_risk=at_risk)  # fmt: skip
        runner = asyncio.create_task(ven.start())
        try:
            await until(lambda: "csms-test" in registered, 20, "the VEN to register")
            server.add_event(
                ven_id="ven-1", signal_name="SIMPLE", signal_type="level",
                intervals=[{"dtstart": datetime.now(UTC) + timedelta(seconds=2), "duration": timedelta(minutes=5),
                            "signal_payload": 3}],
                callback=lambda ven_id, event_id, opt_type: responses.append(opt_type),
            )  # fmt: skip
            await until(lambda: responses == ["optOut"], 20, "the VEN's optOut")
            assert asked == [("garage", 7.5)]  # level 3: a quarter of the site's 30 kW
            assert managed.curtailments("garage") == []  # nothing lowered
        finally:
            await ven.stop()
            runner.cancel()
            with contextlib.suppress(BaseException):
                await runner


@contextlib.asynccontextmanager
async def signed_vtn(pki: dict, responses: list[str]):
    """A VTN on loopback TLS (client certificates required) that signs its messages with its certificate and
    checks the VEN's signatures and TLS certificate against the VEN's fingerprint."""
    from openleadr import OpenADRServer, utils

    port = free_port()
    vtn_cert, vtn_key = str(pki["vtn"].cert_file), str(pki["vtn"].key_file)
    ven_fingerprint = utils.certificate_fingerprint(pki["ven"].cert_file.read_text())
    server = OpenADRServer(
        vtn_id="TEST-VTN", http_host="127.0.0.1", http_port=port, requested_poll_freq=timedelta(seconds=1),
        cert=vtn_cert, key=vtn_key, http_cert=vtn_cert, http_key=vtn_key, http_ca_file=str(pki["ca"].cert_file),
        show_fingerprint=False, verify_message_signatures=True,
        ven_lookup=lambda ven_id: {"ven_id": "ven-1", "ven_name": "csms-test", "fingerprint": ven_fingerprint,
                                   "registration_id": "reg-1"},
    )  # fmt: skip
    registered: dict[str, str] = {}

    async def on_create_party_registration(info):
        registered[info["ven_name"]] = "ven-1"
        return "ven-1", "reg-1"

    server.add_handler("on_create_party_registration", on_create_party_registration)
    await server.run()
    try:
        yield server, f"https://127.0.0.1:{port}/OpenADR2/Simple/2.0b", registered
    finally:
        await server.stop()


@pytest.fixture
def pki(tmp_path):
    from simulator.conformance.loopback_pki import issue, make_ca

    ca = make_ca(tmp_path, "openadr-ca")
    return {"ca": ca, "vtn": issue(tmp_path, ca, "vtn", server=True), "ven": issue(tmp_path, ca, "ven"),
            "impostor": issue(tmp_path, ca, "impostor", server=True)}  # fmt: skip


def _sign_as(cert_file, key_file, *, signed_ago: timedelta = timedelta(0)):
    """What the VTN's messages are made with from now on: signed with this certificate, ``signed_ago``."""
    from functools import partial

    from openleadr import messaging

    make = partial(messaging.create_message, cert=cert_file.read_bytes(), key=key_file.read_bytes())
    protect = messaging._create_replay_protect

    def create(*args, **kwargs):
        if not signed_ago:
            return make(*args, **kwargs)

        def aged():
            element = protect()
            stamp = element.find("{http://openadr.org/oadr-2.0b/2012/07/xmldsig-properties}timestamp")
            stamp.text = (datetime.now(UTC) - signed_ago).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            return element

        messaging._create_replay_protect = aged
        try:
            return make(*args, **kwargs)
        finally:
            messaging._create_replay_protect = protect

    return staticmethod(create)


async def test_a_signed_vtn_is_obeyed_and_a_wrong_or_expired_signature_is_refused_visibly(
    gateway, managed, session_factory, pki
):
    from openleadr import utils
    from openleadr.service.vtn_service import VTNService

    from csms.runtime.openadr import VenSecurity, record_rejection
    from tests.support.api import api_client

    responses: list[str] = []
    vtn_fingerprint = utils.certificate_fingerprint(pki["vtn"].cert_file.read_text())
    async with signed_vtn(pki, responses) as (server, url, registered):
        security = VenSecurity(vtn_fingerprint=vtn_fingerprint, cert=str(pki["ven"].cert_file),
                               key=str(pki["ven"].key_file), ca_file=str(pki["ca"].cert_file))  # fmt: skip

        async def rejected(service: str, cause: str, reason: str) -> None:
            await asyncio.to_thread(record_rejection, session_factory, url, service, cause, reason)

        ven = Ven(managed, vtn_url=url, ven_name="csms-test", sites=["garage"], security=security,
                  on_rejected=rejected)  # fmt: skip
        runner = asyncio.create_task(ven.start())
        original = VTNService._create_message
        try:
            await until(lambda: "csms-test" in registered, 20, "the VEN to register over TLS, signed")
            start = datetime.now(UTC) + timedelta(seconds=60)

            def event(kw: float) -> None:
                server.add_event(
                    ven_id="ven-1", signal_name="LOAD_DISPATCH", signal_type="setpoint",
                    intervals=[{"dtstart": start, "duration": timedelta(minutes=30), "signal_payload": kw}],
                    callback=lambda ven_id, event_id, opt_type: responses.append(opt_type),
                )  # fmt: skip

            event(11.0)
            await until(lambda: responses == ["optIn"], 20, "the VEN's optIn to the signed event")
            good = [c.limit_kw for c in managed.curtailments("garage")]
            assert good == [11.0] and ven.rejected == []
            # Someone else's certificate signs the VTN's messages: every answer is refused, the event it carries
            # too; the site keeps the last good event's limit.
            VTNService._create_message = _sign_as(pki["impostor"].cert_file, pki["impostor"].key_file)
            event(2.0)
            await until(lambda: any("wrong signature" in r for _, r in ven.rejected), 20, "the wrong signature")
            assert [c.limit_kw for c in managed.curtailments("garage")] == good
            # The VTN's own certificate, but the signature is older than openleadr's replay window.
            VTNService._create_message = _sign_as(pki["vtn"].cert_file, pki["vtn"].key_file,
                                                  signed_ago=timedelta(minutes=2))  # fmt: skip
            await until(lambda: any("expired signature" in r for _, r in ven.rejected), 20, "the expired one")
            assert [c.limit_kw for c in managed.curtailments("garage")] == good
            assert responses == ["optIn"]  # the refused event was never answered
        finally:
            VTNService._create_message = original
            await ven.stop()
            runner.cancel()
            with contextlib.suppress(BaseException):
                await runner
    async with api_client(session_factory, gateway) as client:
        wrong, expired = [
            (await client.get("/api/v1/security-events", params={"type": f"openadr_{kind}_signature"})).json()
            for kind in ("wrong", "expired")
        ]
    assert len(wrong) == len(expired) == 1  # repeats within a minute counted in the one event
    assert wrong[0]["detail"]["reason"].startswith("wrong signature: signed by certificate ")
    assert expired[0]["detail"]["reason"].startswith("expired signature: signed at ")
    assert {e["origin"] for e in wrong + expired} == {"csms"}
    assert {e["source"] for e in wrong + expired} == {url.split("/")[2]}


async def test_a_ven_whose_vtn_is_not_up_yet_registers_once_it_is(managed):
    """openleadr's client gives up after one failed registration; the VEN asks again until the VTN answers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/OpenADR2/Simple/2.0b"
    ven = Ven(managed, vtn_url=url, ven_name="csms-late", sites=["garage"])
    ven.retry_s = 0.5
    runner = asyncio.create_task(ven.start())
    try:
        await asyncio.sleep(1.5)  # one or two refused attempts
        assert ven.client.registration_id is None
        from openleadr import OpenADRServer

        server = OpenADRServer(vtn_id="late-vtn", http_host="127.0.0.1", http_port=port, show_fingerprint=False,
                               requested_poll_freq=timedelta(seconds=1), verify_message_signatures=False)  # fmt: skip
        registered: list[str] = []

        async def on_create_party_registration(info):
            registered.append(info["ven_name"])
            return "ven-late", "reg-late"

        server.add_handler("on_create_party_registration", on_create_party_registration)
        await server.run()
        try:
            await until(lambda: ven.client.registration_id == "reg-late", 20, "the VEN to register at last")
            assert registered == ["csms-late"]
        finally:
            await server.stop()
    finally:
        await ven.stop()
        runner.cancel()
        with contextlib.suppress(BaseException):
            await runner


async def test_the_sites_come_from_the_database_when_an_event_arrives(gateway, managed, session_factory):
    """``csms serve``'s VEN (make_ven) speaks for the enrolled sites as the database says when an event arrives: an
    event for a resource no site is enrolled as is refused visibly; once the operator enrolls the site through the
    API (after the VEN started), the next event for it is obeyed, stored, and kept when the site is changed."""
    import time

    from csms.runtime.openadr import VenSettings, make_ven
    from csms.services import demand_response
    from tests.support.api import api_client

    responses: list[str] = []
    reports: list[float] = []
    resources: list[str] = []
    async with vtn(responses, reports, resources) as (server, url, registered):
        ven = make_ven(VenSettings(url, "csms-test"), managed, session_factory)
        ven.report_refresh_s = 0.5
        runner = asyncio.create_task(ven.start())
        try:
            await until(lambda: "csms-test" in registered, 20, "the VEN to register")
            start = datetime.now(UTC) + timedelta(seconds=60)

            def event(kw: float, resource: str) -> None:
                server.add_event(
                    ven_id="ven-1", signal_name="LOAD_DISPATCH", signal_type="setpoint", targets_by_type={
                        "resource_id": [resource]},
                    intervals=[{"dtstart": start, "duration": timedelta(minutes=30), "signal_payload": kw}],
                    callback=lambda ven_id, event_id, opt_type: responses.append(opt_type),
                )  # fmt: skip

            event(11.0, "meter-7")  # no site is enrolled yet
            await until(lambda: responses == ["optOut"], 20, "the VEN's optOut for an unknown resource")
            assert managed.curtailments("garage") == []
            assert (
                len(ven.rejected) == 1
                and "resource 'meter-7', which is no site this VEN speaks for" in ven.rejected[0][1]
            )
            async with api_client(session_factory, gateway, load_management=managed) as client:
                enrolled = await client.patch(
                    "/api/v1/sites/garage", json={"openadr_enrolled": True, "openadr_resource_id": "meter-7"}
                )
                assert enrolled.status_code == 200, enrolled.text
                assert (enrolled.json()["openadr_enrolled"], enrolled.json()["openadr_resource_id"]) == (
                    True,
                    "meter-7",
                )
                annex = {"id": "annex", "nodes": [{"id": "grid", "limit_kw": 10}], "openadr_resource_id": "meter-7"}
                clash = await client.post("/api/v1/sites", json=annex)
                assert clash.status_code == 409 and "meter-7" in clash.text
                event(12.0, "meter-7")
                await until(lambda: responses == ["optOut", "optIn"], 20, "the VEN's optIn once the site is enrolled")
                assert [c.limit_kw for c in managed.curtailments("garage")] == [12.0]
                # The site enrolled after the start has its telemetry report offered to the VTN too.
                await until(lambda: "meter-7" in resources, 10, "the enrolled site's report registered")
                with session_factory() as db:
                    stored = demand_response.active(db, time.time())
                assert [(c.site_id, c.limit_kw, c.start) for c in stored] == [("garage", 12.0, start.timestamp())]
                # A change of the site re-plans it with the limit still in force.
                planner = managed.manager.planners["garage"]
                renamed = await client.patch("/api/v1/sites/garage", json={"name": "Garage"})
                assert renamed.status_code == 200
                await until(lambda: managed.manager.planners["garage"] is not planner, 10, "the site planned anew")
                assert [c.limit_kw for c in managed.curtailments("garage")] == [12.0]
                refused = (
                    await client.get("/api/v1/security-events", params={"type": "openadr_unknown_resource"})
                ).json()
            assert len(refused) == 1 and "'meter-7'" in refused[0]["detail"]["reason"]
            assert refused[0]["source"] == url.split("/")[2]
        finally:
            await ven.stop()
            runner.cancel()
            with contextlib.suppress(BaseException):
                await runner


def test_the_represented_sites_are_the_enrolled_ones_unless_the_start_up_override_names_others(sqlite_factory):
    from csms.services import demand_response, sites

    now = datetime.now(UTC)
    with sqlite_factory() as db, db.begin():
        for site_id, kw in (("north", 40.0), ("south", 25.0)):
            sites.create(db, site_id, now=now, nodes=[{"id": "grid", "limit_kw": kw}], strategy="equal_share")
        sites.update(db, "north", {"openadr_enrolled": True, "openadr_resource_id": "feeder-9"}, now)
    with sqlite_factory() as db:
        assert demand_response.represented(db) == ({"feeder-9": "north"}, {"north": 40.0})
        # openadr_sites: exactly these, enrolled or not, each by its resource id (or else its id)
        assert demand_response.represented(db, ("south", "north")) == (
            {"feeder-9": "north", "south": "south"},
            {"north": 40.0, "south": 25.0},
        )


async def test_an_override_naming_no_site_is_said_once_not_left_out_silently(managed, session_factory, caplog):
    from csms.runtime.openadr import VenSettings, make_ven
    from csms.services import sites

    with session_factory() as db, db.begin():
        sites.create(
            db, "north", now=datetime.now(UTC), nodes=[{"id": "grid", "limit_kw": 40.0}], strategy="equal_share"
        )
    settings = VenSettings("http://127.0.0.1:1/OpenADR2/Simple/2.0b", "csms-test", sites=("north", "nrth"))
    ven = make_ven(settings, managed, session_factory)
    with caplog.at_level(logging.WARNING, logger="csms.runtime.openadr"):
        for _ in range(2):  # an event each
            assert dict((await ven.directory()).sites) == {"north": "north"}
    said = [r.getMessage() for r in caplog.records if "openadr_sites" in r.getMessage()]
    assert said == ["OpenADR: openadr_sites names nrth, which no site is: not represented"]
