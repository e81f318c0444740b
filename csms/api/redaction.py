"""What must not be written into a log, a header or a printed setting as it came: secrets in URLs (the access
log; tokens in paths and queries, passwords in database and broker URLs), credentials of HTTP Authorization
headers, and file names chosen by a station (a Content-Disposition header). The one place for these rules:
``csms serve``'s log formatter and ``csms config show`` use it too (OCPP payloads: ``csms.ocpp.commands.masked``)."""

from __future__ import annotations

import logging
import re
from urllib.parse import quote

MASK = "********"
#: Path segments and query parameters that carry a secret: a diagnostics upload token, a console user's one-time
#: set-password link, a firmware download token, a key someone put in a query string (refused, still masked).
_SECRET_PATH = re.compile(r"(/uploads/diagnostics/|/set-password/)[^/?#\s]+")
_SECRET_QUERY = re.compile(r"([?&](?:token|key|api_key)=)[^&#\s]*", re.IGNORECASE)
#: The password of ``scheme://user:password@host`` (database and broker URLs).
_SECRET_USERINFO = re.compile(r"([a-z][a-z0-9+.-]*://[^/?#@\s:]*:)[^/?#@\s]+(@)", re.IGNORECASE)
#: The credentials after an HTTP authorization scheme (``Authorization: Bearer …`` quoted in a message).
_SECRET_CREDENTIALS = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_HEADER_SAFE = re.compile(r"[^A-Za-z0-9._ ()+-]")


def mask_url(url: str) -> str:
    """``url`` (a path with its query, or a whole URL) with its secrets replaced by :data:`MASK`."""
    url = _SECRET_USERINFO.sub(rf"\g<1>{MASK}\g<2>", url)
    return _SECRET_QUERY.sub(rf"\g<1>{MASK}", _SECRET_PATH.sub(rf"\g<1>{MASK}", url))


def mask_text(text: str) -> str:
    """Any text (a log message, an exception) with the secrets of :func:`mask_url` and HTTP credentials masked."""
    return _SECRET_CREDENTIALS.sub(rf"\g<1> {MASK}", mask_url(text))


class SecretsFilter(logging.Filter):
    """Masks URL secrets in every record of the logger it is added to (uvicorn's access log passes the path
    as an argument: ``client, method, path, http version, status``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(mask_url(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = mask_url(record.msg)
        return True


def install_access_log_filter(logger_name: str = "uvicorn.access") -> None:
    """Once per process: uvicorn configures its loggers when a server is configured, filters stay."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, SecretsFilter) for f in logger.filters):
        logger.addFilter(SecretsFilter())


def attachment(file_name: str) -> str:
    """A Content-Disposition value for a file name we did not choose (RFC 6266): a plain ASCII fallback with
    anything that could end the quoted string or the header replaced, and the exact name percent-encoded in
    ``filename*``."""
    fallback = _HEADER_SAFE.sub("_", file_name)[:150] or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(file_name, safe='')}"
