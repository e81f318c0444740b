"""A station's row, or NotFound: the one lookup every service that works on a station starts with (a leaf module,
so the services that :mod:`csms.services.stations` itself calls can use it too)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from csms.services.errors import NotFound
from csms.store.models import Station


def get(db: Session, station_id: str) -> Station:
    """Raises NotFound: no such station."""
    row = db.get(Station, station_id)
    if row is None:
        raise NotFound(f"station {station_id!r} not found")
    return row
