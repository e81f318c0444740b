"""The minimal CSMS's operator API, the smallest a CSMS can have: provision a token, choose a station's boot
answer, make the CSMS send a station any call. JSON over HTTP (stdlib ``http.server`` in a thread); the calls
go out through the ``ocpp`` package's own ``ChargePoint.call`` on the CSMS's event loop. ``minimal-hooks.yaml``
beside it is the hooks file that drives it, so the suite runs its operator cases against a CSMS that is not
chargetwin, through the same adapter any CSMS's API would use.

    POST /stations                      {"id", "password", "ocpp_version"}   201 (nothing to store: no auth)
    POST /tokens                        {"id_token", "status"}               201
    POST /stations/{id}/boot-answer     {"status": "Pending" | "Rejected" | "Accepted"}   200
    POST /stations/{id}/calls/{action}  the OCPP payload -> 200 {"payload": the station's answer} | 409 not connected
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import asdict, is_dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ocpp.charge_point import camel_to_snake_case, snake_to_camel_case
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from simulator.conformance.reference.minimal_csms import Memory

#: How long a call waits for the station's answer.
CALL_TIMEOUT_S = 20.0


class OperatorDoor:
    """Serves the operator API on ``host:port`` (0: any free port) until :meth:`close`."""

    def __init__(self, memory: Memory, loop: asyncio.AbstractEventLoop, host: str = "127.0.0.1", port: int = 0) -> None:
        door = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                    status, answer = door.handle(self.path.rstrip("/").split("/")[1:], body)
                except (ValueError, KeyError, TypeError) as exc:
                    status, answer = 400, {"detail": f"{type(exc).__name__}: {exc}"}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.memory, self.loop = memory, loop
        self.server = ThreadingHTTPServer((host, port), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, name="operator door", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def handle(self, parts: list[str], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if parts == ["stations"]:
            return 201, {"id": body["id"]}
        if parts == ["tokens"]:
            self.memory.id_tokens[str(body["id_token"])] = str(body.get("status") or "Accepted")
            return 201, {"id_token": body["id_token"]}
        if len(parts) == 3 and parts[0] == "stations" and parts[2] == "boot-answer":
            self.memory.boot_answers[parts[1]] = str(body["status"])
            return 200, {"status": body["status"]}
        if len(parts) == 4 and parts[0] == "stations" and parts[2] == "calls":
            return self._call(parts[1], parts[3], body)
        return 404, {"detail": f"no such operation: /{'/'.join(parts)}"}

    def _call(self, station_id: str, action: str, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        station = self.memory.connected.get(station_id)
        if station is None:
            return 409, {"detail": f"station {station_id!r} is not connected"}
        # By version, not by class: run as a script, the minimal CSMS's classes are __main__'s, not this import's.
        module = call201 if station._ocpp_version == "2.0.1" else call16
        request = getattr(module, action)(**camel_to_snake_case(payload))
        future = asyncio.run_coroutine_threadsafe(station.call(request, suppress=False), self.loop)
        try:
            answer = future.result(CALL_TIMEOUT_S)
        except Exception as exc:
            return 200, {"error": f"{type(exc).__name__}: {exc}"}
        data = asdict(answer) if is_dataclass(answer) and not isinstance(answer, type) else dict(answer)
        return 200, {"payload": snake_to_camel_case({k: v for k, v in data.items() if v is not None})}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
