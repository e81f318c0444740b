"""Run the minimal CSMS (and its operator API) on its own, to point ``sim conformance`` or a charger at it:

    ./run python -m simulator.conformance.reference.serve --port 9000 --operator-port 9001 --id-token TAG1
    MINIMAL_API_URL=http://127.0.0.1:9001 ./run sim conformance --csms ws://127.0.0.1:9000/ocpp --ocpp 1.6 \\
        --operator simulator/conformance/reference/minimal-hooks.yaml
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from simulator.conformance.reference.minimal_csms import serve
from simulator.conformance.reference.operator_door import OperatorDoor


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--id-token", action="append", default=[], help="a token it accepts (repeatable)")
    parser.add_argument("--operator-port", type=int, default=None, help="also serve the operator API")
    args = parser.parse_args(argv)

    async def run() -> None:
        server, memory = await serve(args.host, args.port, id_tokens=args.id_token)
        if args.operator_port is not None:
            door = OperatorDoor(memory, asyncio.get_running_loop(), args.host, args.operator_port)
            print(f"operator API at {door.url} (MINIMAL_API_URL for minimal-hooks.yaml)", flush=True)
        await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
