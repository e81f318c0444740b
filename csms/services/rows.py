"""A row by its key, or NotFound naming what was looked for: the lookup the services' ``get_…`` functions share."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy.orm import Session

from csms.services.errors import NotFound

T = TypeVar("T")


def found(db: Session, model: type[T], key: Any, what: str) -> T:
    """Raises NotFound: ``{what} {key!r} not found``."""
    row = db.get(model, key)
    if row is None:
        raise NotFound(f"{what} {key!r} not found")
    return row
