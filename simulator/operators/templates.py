"""The small template and path language of a hooks file (:mod:`simulator.operators.hooks`).

* A template is any JSON-like value whose strings may hold ``{name}`` or ``{name.field.0.sub}``
  placeholders. A string that is exactly one placeholder becomes the value itself, with its JSON type
  (``"{payload}"`` → the whole payload object, ``"{payload.evseId}"`` → 1); inside longer text the value is
  written as text (objects as JSON). A name that is absent gives null (or the empty text).
* A path picks a value out of a JSON answer: dot-separated keys, numbers index lists; ``""`` is the answer.
* ``${NAME}`` in the file's ``base_url`` and ``headers`` is the environment variable NAME.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)\}")
ENVIRONMENT = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def pick(data: Any, path: str) -> Any:
    """The value at ``path`` in ``data`` (None where the path leads nowhere)."""
    value = data
    for part in path.split(".") if path else ():
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list | bool):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def render(template: Any, context: Mapping[str, Any], quote_text: Callable[[str], str] = str) -> Any:
    """``template`` with every placeholder replaced from ``context`` (see the module's docstring)."""
    if isinstance(template, str):
        whole = PLACEHOLDER.fullmatch(template)
        if whole is not None and quote_text is str:
            return pick(context, whole.group(1))
        return PLACEHOLDER.sub(lambda m: quote_text(_text(pick(context, m.group(1)))), template)
    if isinstance(template, dict):
        return {key: render(value, context, quote_text) for key, value in template.items()}
    if isinstance(template, list):
        return [render(item, context, quote_text) for item in template]
    return template


def render_url(template: str, context: Mapping[str, Any]) -> str:
    """A URL with each placeholder's text quoted as one path segment."""
    return str(render(template, context, lambda text: quote(text, safe="")))


def names(template: Any) -> Iterator[str]:
    """The first part of every placeholder in ``template`` (``payload`` for ``{payload.evseId}``)."""
    if isinstance(template, str):
        for match in PLACEHOLDER.finditer(template):
            yield match.group(1).split(".")[0]
    elif isinstance(template, dict):
        for value in template.values():
            yield from names(value)
    elif isinstance(template, list):
        for item in template:
            yield from names(item)


def missing_environment(text: str) -> list[str]:
    return [name for name in ENVIRONMENT.findall(text) if name not in os.environ]


def expand_environment(text: str) -> str:
    return ENVIRONMENT.sub(lambda m: os.environ.get(m.group(1), ""), text)


def as_datetime(value: Any) -> datetime | None:
    """An ISO 8601 text (naive: UTC) or POSIX seconds, as an aware datetime; anything else: None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def as_float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
