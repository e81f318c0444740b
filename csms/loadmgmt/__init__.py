"""Load management: a site's electrical tree, allocation strategies, OCPP charging profiles, the planner.

Everything here is sans-IO: no asyncio, no sockets, no wall clock; ``now`` is POSIX seconds passed in.
The CSMS shell and the simulator feed :class:`~csms.loadmgmt.planner.Planner` events and send the calls it
returns. See docs/architecture.md, "Load management".
"""
