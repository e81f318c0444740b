"""Operator adapters: what makes a CSMS act as a person at its console would (see :mod:`.base`)."""

from __future__ import annotations

from simulator.operators.base import Operator


def make_operator(spec: str, *, api_url: str | None = None, api_key: str | None = None) -> Operator:
    """``chargetwin`` (its REST API at ``api_url``); bad spec -> ValueError with a one-line reason."""
    if spec == "chargetwin":
        if not api_url:
            raise ValueError("--operator chargetwin needs --api-url (and --api-key)")
        from simulator.operators.chargetwin import ChargetwinOperator

        return ChargetwinOperator(api_url, api_key)
    raise ValueError(f"unknown operator {spec!r}: give chargetwin, a hooks YAML file or manual")
