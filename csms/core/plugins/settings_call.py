"""A plugin's call that reads or sets a station's settings, with what the station answers kept among its settings
(:mod:`csms.services.configuration`), as the API's configuration calls keep theirs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from csms.ocpp import commands
from csms.ocpp.convert import from_posix
from csms.ocpp.outgoing import Call, VariableResult
from csms.ocpp.rpc import PendingCall
from csms.ocpp.versions import Version
from csms.services import configuration

if TYPE_CHECKING:
    from csms.core.host import CsmsHost

log = logging.getLogger(__name__)


def call_and_keep(
    host: CsmsHost,
    station_id: str,
    version: Version,
    call: Call,
    on_results: Callable[[list[VariableResult]], None] | None = None,
) -> None:
    """Send ``call`` (one of :mod:`csms.ocpp.commands`' configuration calls) to a connected station; its answer's
    settings are stored, and ``on_results`` is told them. No answer, a CALLERROR or a station gone: nothing is
    kept (the plugin asks again when it next has a reason to)."""
    action, payload = call
    factory = host.session_factory

    def answered(pending: PendingCall) -> None:
        outcome = pending.as_dict()
        if outcome["outcome"] != "result" or not host.running:
            return
        results = commands.configuration_results(version, action, payload, outcome.get("payload") or {})
        if on_results is not None:
            on_results(results)
        at = from_posix(host.scheduler.now())

        def keep() -> None:
            with factory() as db, db.begin():
                configuration.remember_results(db, station_id, results, at)

        host.scheduler.run_db(keep, lambda _: None)

    try:
        host.call(station_id, action, payload, on_done=answered)
    except Exception as exc:  # gone again, or refused by the schema
        log.warning("station %s: %s not sent: %s", station_id, action, exc)
