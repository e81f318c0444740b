"""The logs of ``csms serve``: plain text or one JSON object a line, on stderr, secrets masked.

Every record gets the station id, OCPP action, message id and API request id bound where it was logged
(:mod:`csms.log_context`); every message and traceback passes :func:`csms.api.redaction.mask_text` on its way
out, whichever library wrote it. Two libraries are held at WARNING whatever the level: at DEBUG websockets
writes every frame's text (station passwords in ChangeConfiguration/SetVariables) and SQLAlchemy every
statement's parameters; the masked OCPP message log in the database is the record of frames.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any, Literal

import orjson

from csms import log_context
from csms.api.redaction import mask_text

LogFormat = Literal["text", "json"]
LogLevel = Literal["critical", "error", "warning", "info", "debug"]
QUIET_LIBRARIES = ("websockets", "sqlalchemy")
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: uvicorn's access record: (client address, method, path with query, HTTP version, status).
_ACCESS_FIELDS = ("client", "method", "path", "http_version", "status")


class ContextFilter(logging.Filter):
    """Copies the bound context onto each record (values passed with ``extra=`` win)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in log_context.current().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


#: Record attributes that are not ``extra=`` fields (uvicorn's color_message is its message with ANSI colours).
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


def _context_of(record: logging.LogRecord) -> dict[str, Any]:
    """The context fields first, then what the call passed with ``extra=`` (e.g. a peer's address)."""
    fields = {name: value for name in log_context.FIELDS if (value := getattr(record, name, None)) is not None}
    for name, value in record.__dict__.items():
        if name not in _STANDARD and name not in fields and value is not None:
            fields[name] = mask_text(value) if isinstance(value, str) else value
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, the context fields
    that apply, uvicorn's access fields, ``exception`` (the traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": mask_text(record.getMessage()),
            **_context_of(record),
        }
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            line.update(zip(_ACCESS_FIELDS, record.args, strict=True))
            line["path"] = mask_text(str(line["path"]))
        if record.exc_info:
            line["exception"] = mask_text(self.formatException(record.exc_info))
        elif record.exc_text:
            line["exception"] = mask_text(record.exc_text)
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """The classic line, the context appended as ``[station_id=… action=…]``, secrets masked."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        context = _context_of(record)
        if context:
            first, newline, rest = text.partition("\n")
            text = first + " [" + " ".join(f"{k}={v}" for k, v in context.items()) + "]" + newline + rest
        return mask_text(text)


def configure(level: str = "info", log_format: LogFormat = "text", stream: IO[str] | None = None) -> None:
    """Route every logger of the process to one handler on ``stream`` (stderr) in ``log_format``."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter(_TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    # uvicorn's loggers keep no handler of their own (run_server gives uvicorn no log config): they reach ours.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
