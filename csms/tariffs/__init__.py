"""Tariffs: the OCPI 2.2.1 Tariff model, its parsing and the pricing of a session into a CDR-like result.

Everything here is sans-IO: no database, no asyncio, no wall clock. Times are passed in (UTC, aware); the
tariff's local time rules use the time zone given with the session. See docs/design/tariffs.md.
"""
