"""The parts of the CSMS that follow every station through the host: load management and alerts.

Each is written once against :class:`~csms.core.host.CsmsHost` and its scheduler, so the asyncio gateway and
the twin's embedded CSMS run the same code.
"""
