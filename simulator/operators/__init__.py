"""Operator adapters: what makes a CSMS act as a person at its console would, and reads back what it stored
(:mod:`.base`). :func:`make_operator` picks one from ``--operator``: ``chargetwin``, a hooks file, ``manual``."""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simulator.operators.base import (
    CallOutcome,
    Capability,
    FirmwareImage,
    FleetVehicle,
    Garage,
    Operator,
    OperatorError,
    StoredStation,
    StoredTransaction,
)

if TYPE_CHECKING:
    from simulator.operators.chargetwin import ChargetwinOperator
    from simulator.operators.hooks import HooksFileError, HooksOperator
    from simulator.operators.manual import ManualOperator

#: The adapters, imported on first use: a virtual-time run needs only :mod:`.base` (its embedded operator and
#: fleet import it through this package); the chargetwin adapter's httpx (with its CLI's Rich and Pygments
#: parts) was ~30 ms of every run's start.
_ADAPTERS = {
    "ChargetwinOperator": "simulator.operators.chargetwin",
    "HooksFileError": "simulator.operators.hooks",
    "HooksOperator": "simulator.operators.hooks",
    "ManualOperator": "simulator.operators.manual",
}


def __getattr__(name: str) -> Any:
    module = _ADAPTERS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "CallOutcome",
    "Capability",
    "ChargetwinOperator",
    "FirmwareImage",
    "FleetVehicle",
    "Garage",
    "HooksFileError",
    "HooksOperator",
    "ManualOperator",
    "Operator",
    "OperatorError",
    "StoredStation",
    "StoredTransaction",
    "make_operator",
]


def make_operator(spec: str, api_url: str | None = None, api_key: str | None = None) -> Operator:
    """``chargetwin`` (needs ``api_url``), a path to a hooks YAML file, or ``manual``.

    Raises:
        ValueError: a one-line reason the spec names no operator.  HooksFileError (a ValueError): a hooks
            file that cannot be used, every problem with its line.
    """
    from simulator.operators.chargetwin import ChargetwinOperator
    from simulator.operators.hooks import HooksOperator
    from simulator.operators.manual import ManualOperator

    if spec == "chargetwin":
        if not api_url:
            raise ValueError(
                "--operator chargetwin needs --api-url (chargetwin's HTTP API, e.g. http://127.0.0.1:8000)"
            )
        return ChargetwinOperator(api_url, api_key)
    if spec == "manual":
        return ManualOperator()
    path = Path(spec)
    if path.suffix.lower() not in (".yaml", ".yml"):
        raise ValueError(f"--operator {spec!r}: expected chargetwin, manual or a hooks file (*.yaml)")
    if not path.is_file():
        raise ValueError(f"--operator {spec!r}: no such hooks file")
    return HooksOperator.from_yaml(path)
