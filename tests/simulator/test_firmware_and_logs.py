"""Firmware updates and log uploads end to end in virtual time: the operator's door into the embedded CSMS,
the twin charger on an in-process link, and the transfers served by the CSMS's own diagnostics services."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import itertools
import random
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import simpy
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from csms.api.app import create_app
from csms.gateway.server import Gateway
from csms.ocpp import commands
from csms.ocpp.convert import from_posix
from csms.services import diagnostics, stations
from csms.services.config import CsmsConfig
from csms.store.models import Station as StationRow
from simulator.embedded_csms import EmbeddedCsms
from simulator.embedded_operator import EmbeddedOperator
from simulator.links.inprocess import InProcessLink
from simulator.links.websocket import WebSocketLink
from simulator.scheduler import SimPyScheduler
from simulator.station.charger import Charger, Registration
from tests.simulator.helpers import T0, FakeMeter
from tests.simulator.test_realtime import API_KEY as SERVE_KEY
from tests.simulator.test_realtime import _serve, wait_for

PASSWORD = "firmware-test-pw-01"
IMAGE = b"\x7fELF twin firmware 2.4.1 " * 40
API_KEY = "firmware-test-key"


class Site:
    """One twin charger on an in-process link to an embedded CSMS (file database: the API reads it too)."""

    def __init__(self, tmp_path: Path, version: str) -> None:
        self.env = simpy.Environment()
        self.csms = EmbeddedCsms.create(SimPyScheduler(self.env, T0), f"sqlite:///{tmp_path / 'csms.db'}")
        self.operator = EmbeddedOperator(self.csms)
        self.version = version
        with self.csms.session_factory() as db:
            stations.provision(db, "fw-1", ocpp_version=version, password=PASSWORD, now=from_posix(T0))
            diagnostics.store_firmware(db, "fw-2.4.1.bin", IMAGE, from_posix(T0))
            db.commit()
        self.operator.provision_tokens(["DRIVER-1"], None, T0)
        self.charger = Charger("fw-1", version, meter=FakeMeter(), rng=random.Random(7))
        self.sent: list[tuple[float, str, dict[str, Any]]] = []
        original = self.charger.send

        def spy(action: str, payload: dict[str, Any], now: float, on_done: Any = None) -> bool:
            self.sent.append((now - T0, action, payload))
            return original(action, payload, now, on_done)

        self.charger.send = spy  # type: ignore[method-assign]
        self.link = InProcessLink(self.csms.scheduler, self.charger, self.csms, seed=1, password=PASSWORD)
        self.link.start()
        self.run(5)

    @property
    def now(self) -> float:
        return T0 + float(self.env.now)

    def run(self, seconds: float) -> None:
        self.env.run(until=self.env.now + seconds)

    def statuses(self, action: str) -> list[str]:
        return [p.get("status") or p.get("connectorStatus", "") for _, a, p in self.sent if a == action]

    def transfer(self, transfer_id: int) -> Any:
        with self.csms.session_factory() as db:
            return next(t for t in diagnostics.list_transfers(db, "fw-1") if t.id == transfer_id)

    def csms_firmware_version(self) -> str | None:
        with self.csms.session_factory() as db:
            row = db.get(StationRow, "fw-1")
            assert row is not None
            return row.firmware_version


def _status(payload: dict[str, Any]) -> str:
    return payload.get("status") or payload["connectorStatus"]


def _signer(content: bytes) -> tuple[str, str]:
    """A self-signed firmware-signing certificate (PEM) and the base64 ECDSA signature of ``content``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Twin Firmware Signing")])
    start = from_posix(T0) - timedelta(days=1)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    return pem, base64.b64encode(key.sign(content, ec.ECDSA(hashes.SHA256()))).decode()


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_update_firmware_downloads_waits_for_the_car_installs_and_boots_with_the_new_version(tmp_path, version):
    site = Site(tmp_path, version)
    assert site.csms_firmware_version() == "1.0.0"
    site.charger.plug_in(1, "DRIVER-1", site.now)
    site.link.poke()
    site.run(10)
    assert site.charger.transactions, "the car is charging"

    transfer_at = site.now - T0
    transfer_id = site.operator.update_firmware("fw-1", version, "fw-2.4.1.bin", site.now, retrieve_at=site.now + 60)
    site.run(120)
    action = "FirmwareStatusNotification"
    downloading_at = next(t for t, a, p in site.sent if a == action and p["status"] == "Downloading")
    assert downloading_at == pytest.approx(transfer_at + 60, abs=0.5), "the download waits for retrieveDateTime"
    scheduled = ["DownloadScheduled"] if version == "2.0.1" else []
    waiting = ["InstallScheduled"] if version == "2.0.1" else []
    assert site.statuses(action) == [*scheduled, "Downloading", "Downloaded", *waiting]
    assert site.charger.identity.firmware_version == "1.0.0", "nothing installed while the car charges"
    # Asked meanwhile, the charger says where the update stands (1.6 core has no InstallScheduled: Downloaded).
    site.csms.call("fw-1", *commands.trigger(version, "FirmwareStatusNotification", None))
    site.run(5)
    _, _, triggered = site.sent[-1]
    expected = (
        {"status": "InstallScheduled", "requestId": transfer_id} if version == "2.0.1" else {"status": "Downloaded"}
    )
    assert triggered == expected
    del site.sent[-1]

    statuses_before = len(site.statuses("StatusNotification"))
    site.charger.unplug(1, site.now)
    site.link.poke()
    site.run(60)
    # the connector went out of service once free (not during the session), and is back after the reboot
    connector = [_status(p) for _, a, p in site.sent if a == "StatusNotification"][statuses_before:]
    assert connector[:2] == ["Available", "Unavailable"]  # the car leaves; the scheduled Unavailable applies
    assert connector[-1] == "Available"
    rebooting = ["InstallRebooting"] if version == "2.0.1" else []
    assert site.statuses(action) == [*scheduled, "Downloading", "Downloaded", *waiting, "Installing", *rebooting,
                                     "Installed"]  # fmt: skip
    boots = [p for _, a, p in site.sent if a == "BootNotification"]
    assert len(boots) == 2
    if version == "2.0.1":
        assert boots[-1]["chargingStation"]["firmwareVersion"] == "fw-2.4.1"
        assert boots[-1]["reason"] == "FirmwareUpdate"
    else:
        assert boots[-1]["firmwareVersion"] == "fw-2.4.1"
    assert site.csms_firmware_version() == "fw-2.4.1"
    transfer = site.transfer(transfer_id)
    assert (transfer.call_status, transfer.status, transfer.finished) == ("Accepted", "Installed", True)


@pytest.mark.parametrize(("version", "action"), [("1.6", "SignedFirmwareStatusNotification"),
                                                 ("2.0.1", "FirmwareStatusNotification")])  # fmt: skip
def test_signed_firmware_is_installed_only_when_its_signature_matches(tmp_path, version, action):
    site = Site(tmp_path, version)
    certificate, signature = _signer(IMAGE)
    good = site.operator.update_firmware(
        "fw-1", version, "fw-2.4.1.bin", site.now, signing_certificate=certificate, signature=signature
    )
    site.run(60)
    assert [(p["requestId"], p["status"]) for _, a, p in site.sent if a == action] == [
        (good, s) for s in ("Downloading", "Downloaded", "SignatureVerified", "Installing", "InstallRebooting",
                            "Installed")
    ]  # fmt: skip
    assert site.csms_firmware_version() == "fw-2.4.1"

    with site.csms.session_factory() as db:
        diagnostics.store_firmware(db, "fw-6.6.6.bin", IMAGE + b"tampered", from_posix(site.now))
        db.commit()
    bad = site.operator.update_firmware(
        "fw-1", version, "fw-6.6.6.bin", site.now, signing_certificate=certificate, signature=signature
    )
    site.run(60)
    assert [p["status"] for _, a, p in site.sent if a == action and p["requestId"] == bad] == [
        "Downloading", "Downloaded", "InvalidSignature"
    ]  # fmt: skip
    assert site.charger.identity.firmware_version == "fw-2.4.1", "nothing installed"
    # what the security extension and 2.0.1 order beside the statuses (critical events)
    events = [(p["type"], p.get("techInfo")) for _, a, p in site.sent if a == "SecurityEventNotification"]
    assert events == [("FirmwareUpdated", "fw-2.4.1"), ("InvalidFirmwareSignature", "fw-6.6.6")]
    assert site.transfer(bad).status == "InvalidSignature" and site.transfer(bad).finished


def test_an_unreadable_signing_certificate_is_refused_with_a_security_event(tmp_path):
    site = Site(tmp_path, "2.0.1")
    transfer_id = site.operator.update_firmware(
        "fw-1", "2.0.1", "fw-2.4.1.bin", site.now, signing_certificate="not a certificate", signature="AAAA"
    )
    site.run(10)
    assert site.transfer(transfer_id).call_status == "InvalidCertificate"
    assert [p["type"] for _, a, p in site.sent if a == "SecurityEventNotification"] == [
        "InvalidFirmwareSigningCertificate"
    ]
    assert site.statuses("FirmwareStatusNotification") == []

    # Once the charger holds its manufacturer's root, a certificate from anyone else is refused too.
    manufacturer, _ = _signer(IMAGE)
    assert site.charger.security.install_root("ManufacturerRootCertificate", manufacturer).value == "Accepted"
    stranger, signature = _signer(IMAGE)
    refused = site.operator.update_firmware(
        "fw-1", "2.0.1", "fw-2.4.1.bin", site.now, signing_certificate=stranger, signature=signature
    )
    accepted = site.operator.update_firmware(
        "fw-1", "2.0.1", "fw-2.4.1.bin", site.now + 1, signing_certificate=manufacturer, signature="AAAA"
    )
    site.run(10)
    assert site.transfer(refused).call_status == "InvalidCertificate"
    assert site.transfer(accepted).call_status == "Accepted"
    site.run(60)  # a signature that matches nothing is found out once the image is there
    assert site.transfer(accepted).status == "InvalidSignature"


def test_a_download_that_fails_is_retried_then_reported_download_failed(tmp_path):
    site = Site(tmp_path, "2.0.1")
    # A URL on the CSMS with a token it never issued: its firmware service answers 404 every time.
    site.charger.receive_frame(
        '[2,"op-1","UpdateFirmware",{"requestId":77,"retries":2,"retryInterval":40,'
        '"firmware":{"location":"http://csms.twin/api/v1/firmware/fw-2.4.1.bin?token=wrong-token-wrong-token-0",'
        '"retrieveDateTime":"2026-01-15T22:00:00Z"}}]',
        site.now,
    )
    site.link.poke()
    start = site.now
    site.run(200)
    sent = [(t + T0 - start, p["status"]) for t, a, p in site.sent if a == "FirmwareStatusNotification"]
    assert [s for _, s in sent] == ["Downloading", "Downloading", "Downloading", "DownloadFailed"]
    gaps = [round(b[0] - a[0]) for a, b in itertools.pairwise(sent)][:2]
    assert gaps == [40, 40], sent  # the retry interval after each failed attempt (0.2 s transfer latency)
    assert site.charger.identity.firmware_version == "1.0.0"


def test_a_network_outage_cuts_transfers_too(tmp_path):
    site = Site(tmp_path, "1.6")
    site.link.set_network(False)
    results: list[Any] = []
    site.charger.maintenance.desk.upload(
        "http://csms.twin/api/v1/uploads/diagnostics/any", "f.log", b"x", lambda result, now: results.append(result)
    )
    site.link.poke()
    site.run(1)
    assert [(r.ok, r.detail) for r in results] == [(False, "no network (link down)")]


@pytest.fixture
def api(tmp_path: Path) -> Any:
    def client(csms: EmbeddedCsms) -> httpx.AsyncClient:
        app = create_app(csms.session_factory, Gateway(csms.session_factory, CsmsConfig()), API_KEY)
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://csms",
            headers={"Authorization": f"Bearer {API_KEY}"},
        )

    return client


@pytest.mark.parametrize(("version", "get_log", "action"), [
    ("2.0.1", True, "LogStatusNotification"),
    ("1.6", True, "LogStatusNotification"),
    ("1.6", False, "DiagnosticsStatusNotification"),
])  # fmt: skip
async def test_a_log_is_uploaded_and_readable_over_the_api(tmp_path, api, version, get_log, action):
    site = Site(tmp_path, version)
    site.run(30)
    transfer_id = site.operator.request_log("fw-1", version, site.now, get_log=get_log)
    site.run(10)
    assert site.statuses(action) == ["Uploading", "Uploaded"]
    transfer = site.transfer(transfer_id)
    assert transfer.status == "Uploaded" and transfer.finished
    assert transfer.file_name.startswith("fw-1-DiagnosticsLog-") and transfer.file_name.endswith(".log")
    async with api(site.csms) as client:
        listed = (await client.get("/api/v1/stations/fw-1/transfers")).json()
        assert listed[0]["status"] == "Uploaded" and listed[0]["size"] > 0
        content = await client.get(f"/api/v1/stations/fw-1/transfers/{transfer_id}/content")
    assert content.status_code == 200
    text = content.text
    assert text.startswith("# fw-1 DiagnosticsLog")
    assert '"BootNotification"' in text  # the charger's own frames, both ways
    assert " in  [3," in text and " out [2," in text


async def test_a_log_holds_only_the_period_asked(tmp_path, api):
    site = Site(tmp_path, "2.0.1")
    site.run(600)  # heartbeats
    since = site.now - 1
    site.charger.plug_in(1, "DRIVER-1", site.now)
    site.link.poke()
    site.run(30)
    transfer_id = site.operator.request_log("fw-1", "2.0.1", site.now, start_time=since, stop_time=site.now)
    site.run(10)
    async with api(site.csms) as client:
        text = (await client.get(f"/api/v1/stations/fw-1/transfers/{transfer_id}/content")).text
    assert '"Authorize"' in text and '"TransactionEvent"' in text
    assert '"BootNotification"' not in text and '"Heartbeat"' not in text and '"GetLog"' not in text


def test_a_new_update_replaces_one_still_waiting_for_its_download(tmp_path):
    site = Site(tmp_path, "2.0.1")
    first = site.operator.update_firmware("fw-1", "2.0.1", "fw-2.4.1.bin", site.now, retrieve_at=site.now + 3600)
    site.run(5)
    second = site.operator.update_firmware("fw-1", "2.0.1", "fw-2.4.1.bin", site.now)
    site.run(60)
    assert site.transfer(first).call_status == "Accepted" and site.transfer(second).call_status == "AcceptedCanceled"
    said = [(p["requestId"], p["status"]) for _, a, p in site.sent if a == "FirmwareStatusNotification"]
    assert said[0] == (first, "DownloadScheduled") and said[-1] == (second, "Installed")
    assert all(request == second for request, _ in said[1:])
    heard = len(site.statuses("FirmwareStatusNotification"))
    site.run(3600)  # the first one's retrieve time passes: nothing happens
    assert len(site.statuses("FirmwareStatusNotification")) == heard


async def test_an_upload_over_the_csms_limit_is_refused_and_reported_upload_failure(tmp_path, monkeypatch):
    site = Site(tmp_path, "2.0.1")
    site.csms.config = dataclasses.replace(site.csms.config, max_upload_bytes=200)  # the CSMS's limit
    transfer_id = site.operator.request_log("fw-1", "2.0.1", site.now)
    site.run(10)
    assert site.statuses("LogStatusNotification") == ["Uploading", "UploadFailure"]
    transfer = site.transfer(transfer_id)
    assert transfer.status == "UploadFailure" and transfer.size is None


# ---- real time: the same charger on a WebSocket link to ``csms serve``, its transfers over real HTTP ----------
@pytest.mark.timeout(90)
async def test_firmware_and_log_against_csms_serve_over_real_http(tmp_path):
    with _serve(f"sqlite:///{tmp_path / 'serve.db'}") as serve:
        headers = {"Authorization": f"Bearer {SERVE_KEY}"}
        async with httpx.AsyncClient(base_url=serve.api_url + "/api/v1", headers=headers, timeout=30) as api:
            station = {"id": "rt-fw-1", "password": PASSWORD, "ocpp_version": "2.0.1"}
            assert (await api.post("/stations", json=station)).status_code == 201
            stored = await api.post("/firmware-files", params={"name": "fw-2.4.1.bin"}, content=IMAGE)
            assert stored.status_code == 201, stored.text
            charger = Charger("rt-fw-1", "2.0.1", meter=FakeMeter(), rng=random.Random(9))
            link = WebSocketLink(charger, _WallClock(speed=50.0), serve.ws_url, password=PASSWORD)
            link.start()
            try:
                await wait_for(lambda: charger.registration is Registration.ACCEPTED, timeout=15)
                sent = await api.post("/stations/rt-fw-1/firmware", json={"name": "fw-2.4.1.bin"})
                assert sent.status_code == 200 and sent.json()["call"]["payload"]["status"] == "Accepted", sent.text
                transfer_id = sent.json()["transfer"]["id"]
                # downloaded over HTTP with its token, installed (20 virtual s), rebooted, booted again
                firmware = charger.maintenance.firmware
                await wait_for(lambda: firmware.reported[-1:] == [(transfer_id, "Installed")], timeout=15)
                assert [s for _, s in firmware.reported] == [
                    "Downloading", "Downloaded", "Installing", "InstallRebooting", "Installed"
                ]  # fmt: skip
                assert charger.identity.firmware_version == "fw-2.4.1"
                await wait_for(lambda: charger.registration is Registration.ACCEPTED and link.connected, timeout=15)

                async def csms_says_installed() -> bool:
                    rows = (await api.get("/stations/rt-fw-1/transfers", params={"kind": "firmware"})).json()
                    return rows[0]["status"] == "Installed"

                await _eventually(csms_says_installed)
                (row,) = (await api.get("/stations/rt-fw-1/transfers", params={"kind": "firmware"})).json()
                assert row["id"] == transfer_id and row["finished"]
                assert (await api.get("/stations/rt-fw-1")).json()["firmware_version"] == "fw-2.4.1"

                logged = await api.post("/stations/rt-fw-1/log", json={"log_type": "DiagnosticsLog"})
                assert logged.json()["call"]["payload"]["status"] == "Accepted", logged.text
                log_id = logged.json()["transfer"]["id"]

                async def uploaded() -> bool:
                    rows = (await api.get("/stations/rt-fw-1/transfers", params={"kind": "diagnostics"})).json()
                    return rows[0]["status"] == "Uploaded"

                await _eventually(uploaded)
                content = await api.get(f"/stations/rt-fw-1/transfers/{log_id}/content")
            finally:
                await link.stop()
    assert content.status_code == 200
    assert content.text.startswith("# rt-fw-1 DiagnosticsLog") and '"UpdateFirmware"' in content.text


class _WallClock:
    """The charger's clock starts at the wall clock's now (the CSMS's retrieveDateTime is its now) and runs
    ``speed`` times faster (so installing and rebooting take a fraction of a wall second)."""

    def __init__(self, speed: float) -> None:
        self.speed, self.wall0, self.epoch, self._monotonic = speed, time.monotonic(), time.time(), time.monotonic

    def now(self) -> float:
        return self.epoch + (self._monotonic() - self.wall0) * self.speed

    def sync(self) -> float:
        return self.now()

    def wall_delay(self, when: float) -> float:
        return (when - self.now()) / self.speed

    def kick(self) -> None:
        pass


async def _eventually(check: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)
