"""The embedded CSMS is the host on SimPy time: the frames of one virtual instant share one commit and are
answered only after it; a crash before the instant ends answers and stores nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import simpy

from csms.ocpp import framing
from csms.ocpp.framing import CallResult
from csms.services import stations
from csms.store.models import Station
from simulator.embedded_csms import EmbeddedCsms
from simulator.links.offer import Offer
from simulator.scheduler import SimPyScheduler

NOW = datetime(2026, 1, 15, 22, 0, tzinfo=UTC).timestamp()


class Wire:
    def __init__(self) -> None:
        self.frames: list[str] = []

    def send(self, frames: list[str]) -> None:
        self.frames += frames

    def close(self, reason: str) -> None:
        pass


def csms_with(*names: str) -> tuple[EmbeddedCsms, simpy.Environment]:
    env = simpy.Environment()
    csms = EmbeddedCsms.create(SimPyScheduler(env, NOW))
    with csms.session_factory() as db:
        for name in names:
            stations.provision(db, name, ocpp_version="1.6", password=None, now=datetime.fromtimestamp(NOW, UTC))
            row = db.get(Station, name)
            assert row is not None
            row.registration_status = "Accepted"
        db.commit()
    return csms, env


def heartbeat(uid: str) -> str:
    return orjson.dumps([2, uid, "Heartbeat", {}]).decode()


def test_frames_of_one_instant_share_a_batch_and_are_answered_after_it():
    csms, env = csms_with("a", "b")
    wires = {name: Wire() for name in ("a", "b")}
    connections = {name: csms.connect(name, "1.6", wires[name], Offer()) for name in ("a", "b")}
    env.run(until=1)
    assert csms.host is not None
    batches_before = csms.host.processor.batches
    for name, connection in connections.items():
        csms.receive(connection, heartbeat(f"hb-{name}"))
    assert all(w.frames == [] for w in wires.values())  # nothing answered before the commit
    env.run(until=2)
    assert csms.host.processor.batches == batches_before + 1
    for name in ("a", "b"):
        (frame,) = wires[name].frames
        answer = framing.decode(frame)
        assert isinstance(answer, CallResult) and answer.unique_id == f"hb-{name}"
    with csms.session_factory() as db:
        seen = {name: db.get(Station, name).last_seen_at.timestamp() for name in ("a", "b")}  # type: ignore[union-attr]
    assert seen == {"a": NOW + 1, "b": NOW + 1}


def test_a_crash_before_the_instant_ends_answers_and_stores_nothing():
    csms, env = csms_with("a")
    wire = Wire()
    connection = csms.connect("a", "1.6", wire, Offer())
    env.run(until=1)
    csms.receive(connection, heartbeat("hb"))
    assert csms.crash() == ["a"]
    env.run(until=2)
    assert wire.frames == [] and not csms.up
    with csms.session_factory() as db:
        assert db.get(Station, "a").last_seen_at.timestamp() == NOW  # type: ignore[union-attr]  # the connect's
