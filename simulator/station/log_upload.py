"""Diagnostics and log uploads: 1.6 GetDiagnostics, GetLog (2.0.1 and the 1.6 security extension).

The charger builds the file from its own recent frames in the period asked (:class:`.transfers.FrameLog`;
a SecurityLog keeps only the SecurityEventNotifications), answers with the file name, then uploads it to
the location given (:mod:`.transfers`): Uploading → Uploaded, or a retry after retryInterval while retries
last, then UploadFailed (1.6 DiagnosticsStatusNotification) / UploadFailure (LogStatusNotification, with the
``requestId``). A GetLog while an upload runs replaces it (``AcceptedCanceled``). Absent ``retries`` means
none, absent ``retryInterval`` 30 s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from csms.ocpp.convert import format_time, from_posix, parse_time
from simulator.station.timers import Deadlines, Timer
from simulator.station.transfers import FrameLog, TransferDesk, TransferResult, render_log


@dataclass(frozen=True)
class LogDialect:
    action: str
    failed: str
    request_id: bool


DIAGNOSTICS = LogDialect("DiagnosticsStatusNotification", "UploadFailed", request_id=False)
LOG = LogDialect("LogStatusNotification", "UploadFailure", request_id=True)


class LogHost(Protocol):
    @property
    def station_id(self) -> str: ...
    def send(self, action: str, payload: dict[str, Any], now: float) -> bool: ...
    def after_reply(self, action: Callable[[float], None]) -> None: ...


@dataclass
class LogJob:
    dialect: LogDialect
    request_id: int | None
    url: str
    file_name: str
    content: bytes
    retries_left: int
    retry_interval_s: float
    transfer_id: int | None = None
    state: str = "Accepted"


def _posix(text: str | None) -> float | None:
    moment = parse_time(text)
    return None if moment is None else moment.timestamp()


class LogUploads:
    def __init__(self, host: LogHost, desk: TransferDesk, timers: Deadlines, frames: FrameLog) -> None:
        self.host, self.desk, self.timers, self.frames = host, desk, timers, frames
        self.job: LogJob | None = None
        #: Every status reported, (request id, status).
        self.reported: list[tuple[int | None, str]] = []

    def get_diagnostics(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        job = self._job(DIAGNOSTICS, None, p["location"], "DiagnosticsLog", p, _posix(p.get("startTime")),
                        _posix(p.get("stopTime")), now)  # fmt: skip
        self._start(job)
        return {"fileName": job.file_name}

    def get_log(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        log = p["log"]
        oldest, latest = _posix(log.get("oldestTimestamp")), _posix(log.get("latestTimestamp"))
        job = self._job(LOG, p["requestId"], log["remoteLocation"], p["logType"], p, oldest, latest, now)
        replaced = self.job is not None
        self._start(job)
        return {"status": "AcceptedCanceled" if replaced else "Accepted", "filename": job.file_name}

    def _job(
        self,
        dialect: LogDialect,
        request_id: int | None,
        url: str,
        log_type: str,
        p: dict[str, Any],
        oldest: float | None,
        latest: float | None,
        now: float,
    ) -> LogJob:
        frames = self.frames.between(oldest, latest)
        if log_type == "SecurityLog":
            frames = (f for f in frames if '"SecurityEventNotification"' in f.text)
        stamp = from_posix(now).strftime("%Y%m%dT%H%M%SZ")
        name = f"{self.host.station_id}-{log_type}-{stamp}.log"[:255]
        period = f"{_when(oldest)} .. {_when(latest)}"
        content = render_log(f"{self.host.station_id} {log_type} {period}", frames)
        retries = int(p.get("retries", 0))
        return LogJob(dialect, request_id, url, name, content, retries, float(p.get("retryInterval", 30)))

    def _start(self, job: LogJob) -> None:
        if self.job is not None:
            self.desk.forget(self.job.transfer_id)
        self.job = job
        self.timers.cancel(Timer.LOG_UPLOAD)
        self.host.after_reply(self._upload)

    def due(self, now: float) -> None:
        if self.job is not None:
            self._upload(now)

    def _upload(self, now: float) -> None:
        job = self.job
        if job is None:
            return
        if job.state != "Uploading":
            self._report("Uploading", now)
        job.transfer_id = self.desk.upload(job.url, job.file_name, job.content, self._uploaded)

    def _uploaded(self, result: TransferResult, now: float) -> None:
        job = self.job
        if job is None:
            return
        job.transfer_id = None
        if result.ok:
            self._report("Uploaded", now)
        elif job.retries_left > 0:
            job.retries_left -= 1
            self.timers.arm(Timer.LOG_UPLOAD, now + job.retry_interval_s)
            return
        else:
            self._report(job.dialect.failed, now)
        self.job = None

    def _report(self, status: str, now: float) -> None:
        job = self.job
        assert job is not None
        job.state = status
        self.reported.append((job.request_id, status))
        payload: dict[str, Any] = {"status": status}
        if job.dialect.request_id and job.request_id is not None:
            payload["requestId"] = job.request_id
        self.host.send(job.dialect.action, payload, now)

    def triggered(self, action: str) -> dict[str, Any]:
        """What a triggered Diagnostics/LogStatusNotification says: Uploading (with the requestId), or Idle."""
        job = self.job
        if job is None or job.dialect.action != action:
            return {"status": "Idle"}
        payload: dict[str, Any] = {"status": "Uploading"}
        if job.dialect.request_id and job.request_id is not None:
            payload["requestId"] = job.request_id
        return payload


def _when(moment: float | None) -> str:
    return "…" if moment is None else format_time(from_posix(moment))
