"""The CSMS host on a scheduler moved by hand: group commit, answers after the commit, replacement of a
connection, calls with completion, plugins isolated from each other, a stopped host does nothing more."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from csms.alerts import AlertEngine, AlertRules
from csms.alerts import engine as al
from csms.core.host import CsmsHost, StationNotConnected
from csms.core.plugins.alerts import AlertMonitor
from csms.domain import events as ev
from csms.ocpp import framing
from csms.ocpp.framing import Call, CallResult
from csms.ocpp.rpc import Outcome, PendingCall
from csms.services import stations
from csms.services.config import CsmsConfig
from csms.store.models import ConnectionEvent, Station
from tests.manual_scheduler import ManualScheduler

T0 = datetime(2026, 1, 15, 22, 0, tzinfo=UTC).timestamp()


class Wire:
    """A transport that keeps what the host sent and whether it closed the connection."""

    def __init__(self) -> None:
        self.frames: list[Any] = []
        self.closed: str | None = None

    def send(self, frames: list[str]) -> None:
        self.frames += [framing.decode(f) for f in frames]

    def close(self, reason: str) -> None:
        self.closed = reason


class Recorder:
    def __init__(self, fail_on: str | None = None) -> None:
        self.seen: list[tuple[Any, ...]] = []
        self.fail_on = fail_on
        self.host: CsmsHost | None = None

    def attach(self, host: CsmsHost) -> None:
        self.host = host

    def _see(self, *event: Any) -> None:
        if event[0] == self.fail_on:
            raise RuntimeError("boom")
        self.seen.append(event)

    def connected(self, station_id: str, version: str, registered: bool, now: float) -> None:
        self._see("connected", station_id, registered)

    def disconnected(self, station_ids: Sequence[str], now: float) -> None:
        assert self.host is not None
        for station_id in station_ids:
            self._see("disconnected", station_id, self.host.is_connected(station_id))

    def committed(self, station_id: str, reports: list[Any], now: float) -> None:
        self._see("committed", station_id, [type(r).__name__ for r, _ in reports])

    def stop(self) -> None:
        self._see("stop")


@pytest.fixture
def host(session_factory) -> tuple[CsmsHost, ManualScheduler]:
    with session_factory() as db:
        for name in ("a", "b"):
            stations.provision(db, name, ocpp_version="1.6", password=None, now=datetime.fromtimestamp(T0, UTC))
            row = db.get(Station, name)
            assert row is not None
            row.registration_status = "Accepted"
        db.commit()
    scheduler = ManualScheduler(T0)
    return CsmsHost(session_factory, CsmsConfig(message_log_per_station=0), scheduler), scheduler


def connect(host: CsmsHost, name: str) -> tuple[Any, Wire]:
    wire = Wire()
    admission = host.admit(name, None, "1.6")
    assert admission.admitted
    return host.connect(admission, "1.6", wire), wire


def heartbeat(unique_id: str) -> str:
    return orjson.dumps([2, unique_id, "Heartbeat", {}]).decode()


def test_frames_of_one_instant_share_a_commit_and_are_answered_after_it(host, session_factory):
    csms, scheduler = host
    (a, wire_a), (b, wire_b) = connect(csms, "a"), connect(csms, "b")
    scheduler.advance(T0)
    batches = csms.processor.batches
    scheduler.advance(T0 + 1)
    csms.receive(a, heartbeat("hb-a"))
    csms.receive(b, heartbeat("hb-b"))
    assert wire_a.frames == wire_b.frames == []  # nothing answered before the commit
    scheduler.advance(T0 + 1)
    assert csms.processor.batches == batches + 1
    for wire, uid in ((wire_a, "hb-a"), (wire_b, "hb-b")):
        [answer] = wire.frames
        assert isinstance(answer, CallResult) and answer.unique_id == uid
    with session_factory() as db:
        assert {s.id: s.last_seen_at.timestamp() for s in db.scalars(select(Station))} == {"a": T0 + 1, "b": T0 + 1}


def test_a_malformed_frame_is_answered_at_once_and_commits_nothing(host):
    csms, scheduler = host
    a, wire = connect(csms, "a")
    scheduler.advance(T0)
    batches = csms.processor.batches
    csms.receive(a, '[2, "x", "Heartbeat", {"unexpected": 1}]')
    assert [type(f).__name__ for f in wire.frames] == ["CallError"]
    scheduler.advance(T0 + 5)
    assert csms.processor.batches == batches


def test_a_second_connection_replaces_the_first_and_the_history_reads_in_order(host, session_factory):
    csms, scheduler = host
    recorder = Recorder()
    csms.add_plugin(recorder)
    first, old_wire = connect(csms, "a")
    scheduler.advance(T0 + 10)
    second, _ = connect(csms, "a")
    assert old_wire.closed == "replaced by a new connection"
    assert first.closed and not second.closed and csms.connections["a"] is second
    # the plugin hears the old connection end while the station is still online through the new one
    assert recorder.seen == [("connected", "a", True), ("disconnected", "a", True), ("connected", "a", True)]
    csms.receive(first, heartbeat("late"))  # a frame of the replaced socket is ignored
    scheduler.advance(T0 + 11)
    with session_factory() as db:
        kinds = [(e.kind, e.at.timestamp()) for e in db.scalars(select(ConnectionEvent).order_by(ConnectionEvent.id))]
    assert kinds == [("connected", T0), ("disconnected", T0 + 10), ("connected", T0 + 10)]


class Batches(Recorder):
    """Keeps each ``disconnected`` call whole: which stations it told at once."""

    def __init__(self) -> None:
        super().__init__()
        self.told: list[list[str]] = []

    def disconnected(self, station_ids: Sequence[str], now: float) -> None:
        self.told.append(list(station_ids))


def test_connections_ended_together_are_each_recorded_and_the_plugins_told_once(host, session_factory):
    csms, scheduler = host
    batches = Batches()
    csms.add_plugin(batches)
    (a, _), (b, _) = connect(csms, "a"), connect(csms, "b")
    scheduler.advance(T0 + 5)
    csms.call("a", "Reset", {"type": "Soft"}, on_done=(done := []).append)
    csms.disconnect_all([(a, "going away"), (b, "going away"), (a, "going away")])  # a twice: recorded once
    assert batches.told == [["a", "b"]]
    assert not csms.connections and a.closed and b.closed
    assert [p.outcome for p in done] == [Outcome.CANCELLED]
    scheduler.advance(T0 + 6)
    with session_factory() as db:
        events = db.scalars(select(ConnectionEvent).order_by(ConnectionEvent.id))
        rows = [(e.station_id, e.kind, e.at.timestamp(), e.detail) for e in events]
    assert rows == [
        ("a", "connected", T0, None), ("b", "connected", T0, None),
        ("a", "disconnected", T0 + 5, "going away"), ("b", "disconnected", T0 + 5, "going away"),
    ]  # fmt: skip


def test_a_call_completes_with_its_answer_or_with_the_connection(host):
    csms, _ = host
    a, wire = connect(csms, "a")
    done: list[PendingCall] = []
    pending = csms.call("a", "Reset", {"type": "Soft"}, on_done=done.append)
    [sent] = wire.frames
    assert isinstance(sent, Call) and sent.action == "Reset"
    csms.receive(a, orjson.dumps([3, sent.unique_id, {"status": "Accepted"}]).decode())
    assert done == [pending] and pending.outcome is Outcome.RESULT and pending.payload == {"status": "Accepted"}

    csms.call("a", "Reset", {"type": "Hard"}, on_done=done.append)
    csms.disconnect(a, "link down")
    assert done[-1].outcome is Outcome.CANCELLED
    with pytest.raises(StationNotConnected):
        csms.call("a", "Reset", {"type": "Soft"})


def test_an_unanswered_call_times_out_on_the_scheduler(host):
    csms, scheduler = host
    connect(csms, "a")
    done: list[PendingCall] = []
    csms.call("a", "Reset", {"type": "Soft"}, timeout_s=30, on_done=done.append)
    scheduler.advance(T0 + 29)
    assert done == []
    scheduler.advance(T0 + 30)
    assert [p.outcome for p in done] == [Outcome.TIMEOUT]


def test_a_failing_plugin_does_not_keep_the_others_from_hearing(host):
    csms, scheduler = host
    bad, good = Recorder(fail_on="connected"), Recorder()
    csms.add_plugin(bad)
    csms.add_plugin(good)
    a, wire = connect(csms, "a")
    csms.receive(a, heartbeat("hb"))
    scheduler.advance(T0)
    assert [type(f).__name__ for f in wire.frames] == ["CallResult"]  # the station is still served
    assert good.seen == [("connected", "a", True), ("committed", "a", ["HeartbeatReceived"])]
    assert bad.seen == [("committed", "a", ["HeartbeatReceived"])]


class Selective(Recorder):
    """A plugin that acts on some report kinds only (:class:`~csms.core.host.SelectiveReports`)."""

    def __init__(self, kinds: frozenset[type]) -> None:
        super().__init__()
        self.report_kinds = kinds


def status(unique_id: str) -> str:
    payload = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
    return orjson.dumps([2, unique_id, "StatusNotification", payload]).decode()


def test_a_selective_plugin_hears_only_commits_with_a_report_of_its_kinds(host):
    csms, scheduler = host
    every, statuses, none = Recorder(), Selective(frozenset({ev.StatusReported})), Selective(frozenset())
    for plugin in (every, statuses, none):
        csms.add_plugin(plugin)
    (a, _), (b, _) = connect(csms, "a"), connect(csms, "b")
    csms.receive(a, heartbeat("hb-a"))
    csms.receive(b, heartbeat("hb-b"))
    csms.receive(b, status("st-b"))
    scheduler.advance(T0)
    committed = [e for e in every.seen if e[0] == "committed"]
    assert committed == [
        ("committed", "a", ["HeartbeatReceived"]),
        ("committed", "b", ["HeartbeatReceived", "StatusReported"]),
    ]
    assert [e for e in statuses.seen if e[0] == "committed"] == committed[1:]  # all of b's reports, a's none
    assert [e for e in none.seen if e[0] == "committed"] == []
    assert ("connected", "a", True) in none.seen  # the other tells as before


def test_a_stopped_host_commits_and_answers_nothing_more(host, session_factory):
    csms, scheduler = host
    recorder = Recorder()
    csms.add_plugin(recorder)
    a, wire = connect(csms, "a")
    scheduler.advance(T0)
    csms.receive(a, heartbeat("hb"))
    csms.stop()
    scheduler.advance(T0 + 60)
    assert wire.frames == [] and recorder.seen[-1] == ("stop",)
    with session_factory() as db:
        assert db.get(Station, "a").last_seen_at.timestamp() == T0  # type: ignore[union-attr]  # the connect's


def test_unknown_station_is_refused_and_with_auto_registration_waits_for_approval(session_factory):
    scheduler = ManualScheduler(T0)
    assert CsmsHost(session_factory, CsmsConfig(), scheduler).admit("nobody", None, "2.0.1").status == 401
    auto = CsmsHost(session_factory, CsmsConfig(auto_register=True), scheduler).admit("newbie", None, "2.0.1")
    assert (auto.admitted, auto.status) == (False, 401)  # refused until an operator approves it
    with session_factory() as db:
        assert db.get(Station, "newbie") is None and db.get(Station, "nobody") is None
        assert [(p.station_id, p.ocpp_version) for p in stations.list_pending(db)] == [("newbie", "2.0.1")]


def _alerts_on(csms: CsmsHost) -> list[tuple[str, str, float | None]]:
    found: list[tuple[str, str, float | None]] = []
    monitor = AlertMonitor(AlertEngine(AlertRules(heartbeat_factor=2, heartbeat_grace_s=30)))
    monitor.on_effects = lambda effects: found.extend(
        (e.rule, e.station_id, None) for e in effects if isinstance(e, al.RaiseAlert)
    )
    csms.add_plugin(monitor)
    return found


@pytest.mark.parametrize("answers", [True, False])
def test_a_station_that_only_answers_the_csms_calls_is_alive(host, answers):
    """A charger heartbeats after an interval *without any exchange*: answering the CSMS's calls is one. So a
    station the CSMS calls every minute and that sends nothing else is not flagged heartbeat_missed; the same
    station silent is (at last seen + 2 × 300 s + 30 s), then offline."""
    csms, scheduler = host
    raised = _alerts_on(csms)
    a, wire = connect(csms, "a")
    for minute in range(1, 16):
        scheduler.advance(T0 + 60 * minute)
        csms.call("a", "GetConfiguration", {}, timeout_s=30)
        if answers:
            call = wire.frames[-1]
            csms.receive(a, orjson.dumps([3, call.unique_id, {"configurationKey": []}]).decode())
        else:
            scheduler.advance(T0 + 60 * minute + 30)  # each call times out
    expected = [] if answers else [("heartbeat_missed", "a", None), ("offline", "a", None)]
    assert raised == expected


def _answer(csms: CsmsHost, connection: Any, wire: Wire, *, error: bool = False) -> None:
    """The CSMS calls the station, which answers at once (a CALLRESULT, or a CALLERROR)."""
    csms.call(connection.station_id, "GetConfiguration", {}, timeout_s=30)
    uid = wire.frames[-1].unique_id
    frame = [4, uid, "InternalError", "", {}] if error else [3, uid, {"configurationKey": []}]
    csms.receive(connection, orjson.dumps(frame).decode())


def _last_seen(session_factory: Any, station_id: str) -> float:
    with session_factory() as db:
        row = db.get(Station, station_id)
        assert row is not None and row.last_seen_at is not None
        return row.last_seen_at.timestamp() - T0


def test_answers_to_the_csms_calls_move_last_seen_once_per_heartbeat_interval(host, session_factory):
    """A station that sends nothing of its own but answers the CSMS's calls (CALLRESULT or CALLERROR) every minute
    shows as seen in the console: ``last_seen_at`` moves at its first answer, then once per heartbeat interval
    (300 s), never older than a periodic Heartbeat would have kept it."""
    csms, scheduler = host
    a, wire = connect(csms, "a")
    scheduler.advance(T0)
    assert _last_seen(session_factory, "a") == 0  # the connection's
    written: list[float] = []
    for minute in range(1, 16):
        scheduler.advance(T0 + 60 * minute)
        _answer(csms, a, wire, error=minute % 2 == 1)  # the writes at 60, 360 and 660 s are CALLERRORs'
        scheduler.advance(T0 + 60 * minute)
        written.append(_last_seen(session_factory, "a"))
    assert written == [60] * 5 + [360] * 5 + [660] * 5


def test_an_answer_not_due_a_write_asks_for_no_commit_and_rides_with_the_next(host, session_factory):
    """Answers within the interval cost no transaction (most answers: SetChargingProfile renewals); a commit that
    happens anyway takes them, and still writes only what the throttle lets through."""
    csms, scheduler = host
    (a, wire_a), (b, _) = connect(csms, "a"), connect(csms, "b")
    scheduler.advance(T0 + 10)
    _answer(csms, a, wire_a)
    scheduler.advance(T0 + 10)
    jobs = scheduler.db_jobs
    for second in range(20, 300, 10):  # 28 answers within the interval: no commit for any of them
        scheduler.advance(T0 + second)
        _answer(csms, a, wire_a)
        scheduler.advance(T0 + second)
    assert scheduler.db_jobs == jobs and _last_seen(session_factory, "a") == 10
    scheduler.advance(T0 + 320)
    csms.receive(b, heartbeat("hb-b"))  # another station's commit takes a's answer at 290 s: not due, not written
    scheduler.advance(T0 + 320)
    assert scheduler.db_jobs == jobs + 1 and _last_seen(session_factory, "a") == 10
    _answer(csms, a, wire_a)  # at 320 s: due (310 s after the last write), its own commit
    scheduler.advance(T0 + 320)
    assert scheduler.db_jobs == jobs + 2 and _last_seen(session_factory, "a") == 320
