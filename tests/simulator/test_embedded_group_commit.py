"""The embedded CSMS commits the frames of one virtual instant as one batch and answers only after it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import orjson

from csms.ocpp import framing
from csms.ocpp.framing import CallResult
from csms.services import stations
from csms.store.models import Station
from simulator.embedded_csms import EmbeddedCsms

NOW = datetime(2026, 1, 15, 22, 0, tzinfo=UTC).timestamp()


def csms_with(*names: str) -> EmbeddedCsms:
    csms = EmbeddedCsms.create()
    with csms.session_factory() as db:
        for name in names:
            stations.provision(db, name, ocpp_version="1.6", password=None, now=datetime.fromtimestamp(NOW, UTC))
            row = db.get(Station, name)
            assert row is not None
            row.registration_status = "Accepted"
        db.commit()
    return csms


def test_frames_of_one_instant_share_a_batch_and_are_answered_after_it():
    csms = csms_with("a", "b")
    deferred: list[Callable[[], None]] = []
    csms.defer = deferred.append
    sessions = {name: csms.connect(name, NOW) for name in ("a", "b")}
    batches_before = csms.processor.batches
    answers: dict[str, list[str]] = {}
    for name, session in sessions.items():
        frame = orjson.dumps([2, f"hb-{name}", "Heartbeat", {}]).decode()
        csms.deliver(session, frame, NOW + 1, lambda out, name=name: answers.setdefault(name, out))
    assert answers == {} and len(deferred) == 1  # nothing answered before the commit
    deferred.pop()()
    assert csms.processor.batches == batches_before + 1
    for name in ("a", "b"):
        (frame,) = answers[name]
        answer = framing.decode(frame)
        assert isinstance(answer, CallResult) and answer.unique_id == f"hb-{name}"
    with csms.session_factory() as db:
        seen = {name: db.get(Station, name).last_seen_at.timestamp() for name in ("a", "b")}  # type: ignore[union-attr]
    assert seen == {"a": NOW + 1, "b": NOW + 1}


def test_a_crash_before_the_instant_ends_answers_and_stores_nothing():
    csms = csms_with("a")
    deferred: list[Callable[[], None]] = []
    csms.defer = deferred.append
    session = csms.connect("a", NOW)
    answers: list[list[str]] = []
    csms.deliver(session, orjson.dumps([2, "hb", "Heartbeat", {}]).decode(), NOW + 1, answers.append)
    csms.crash()
    deferred.pop()()
    assert answers == []
    with csms.session_factory() as db:
        assert db.get(Station, "a").last_seen_at.timestamp() == NOW  # type: ignore[union-attr]  # the connect's
