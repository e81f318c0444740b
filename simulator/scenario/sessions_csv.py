"""Read a CSV file of charging sessions into cells that remember their line and column.

The shape: lines starting with ``#`` are comments, blank lines are skipped, the first other line is the
header, every further line one session. Header names are the ``Session`` fields or their ACN-Data names
(``connectionTime``, ``disconnectTime``, ``kWhRequested``/``kWhDelivered``, ``stationID``/``spaceID``);
ACN-Data's other fields are accepted and ignored, so an export of ACN-Data sessions reads as it is. Values are
checked by the loader (``simulator.scenario.loader``) against the ``Session`` model; this module only finds
the cells and the problems of the table's shape. A quoted value may not span lines.
"""

from __future__ import annotations

import csv
import difflib
from dataclasses import dataclass, field

from simulator.scenario.models import Session, session_columns

__all__ = ["ACN_IGNORED_COLUMNS", "Cell", "CsvProblem", "Row", "SessionTable", "read_session_table"]

#: ACN-Data session fields that say nothing the replay uses.
ACN_IGNORED_COLUMNS = frozenset(
    {"_id", "clusterID", "doneChargingTime", "sessionID", "siteID", "timezone", "userID", "userInputs"}
)


@dataclass(frozen=True)
class CsvProblem:
    """``line`` and ``column`` are 1-based; ``column`` counts the comma-separated fields."""

    line: int
    column: int
    field: str
    message: str


@dataclass(frozen=True)
class Cell:
    value: str
    line: int
    column: int
    header: str


@dataclass(frozen=True)
class Row:
    """One session line: each ``Session`` field name given on it → its cell (empty cells are not given)."""

    line: int
    cells: dict[str, Cell]


@dataclass
class SessionTable:
    rows: list[Row] = field(default_factory=list)


def read_session_table(text: str) -> tuple[SessionTable, list[CsvProblem]]:
    """Split ``text`` into the cells of each session row, with every problem of the table's shape."""
    numbered = enumerate(text.splitlines(), start=1)
    lines = [(n, line) for n, line in numbered if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        return SessionTable(), [CsvProblem(1, 1, "", "expected a header line and one line per session, got none")]
    header_line, header_text = lines[0]
    header = [name.strip() for name in _cells(header_text)]
    columns, problems = _header_columns(header, header_line)
    table = SessionTable()
    if problems:
        return table, problems
    if len(lines) == 1:
        return table, [CsvProblem(header_line, 1, "", "expected at least one session line after the header")]
    for n, text_line in lines[1:]:
        cells = _cells(text_line)
        if len(cells) != len(header):
            message = f"expected {len(header)} comma-separated values as in the header, got {len(cells)}"
            problems.append(CsvProblem(n, 1, "", message))
            continue
        given = {
            columns[i]: Cell(value.strip(), n, i + 1, header[i])
            for i, value in enumerate(cells)
            if i in columns and value.strip()
        }
        table.rows.append(Row(n, given))
    return table, problems


def _cells(line: str) -> list[str]:
    return next(csv.reader([line]))


def _header_columns(header: list[str], line: int) -> tuple[dict[int, str], list[CsvProblem]]:
    """Column index → ``Session`` field, for the columns the replay reads."""
    known = session_columns()
    columns: dict[int, str] = {}
    first: dict[str, str] = {}
    problems: list[CsvProblem] = []
    for i, name in enumerate(header):
        if name in ACN_IGNORED_COLUMNS:
            continue
        field_name = known.get(name)
        if field_name is None:
            close = difflib.get_close_matches(name, list(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (expected one of {', '.join(known)})"
            problems.append(CsvProblem(line, i + 1, name, f"unknown column {name!r}{hint}"))
        elif field_name in first:
            message = f"column {name!r} gives {field_name} again (already given by {first[field_name]!r}); keep one"
            problems.append(CsvProblem(line, i + 1, name, message))
        else:
            first[field_name] = name
            columns[i] = field_name
    for field_name, info in Session.model_fields.items():
        if info.is_required() and field_name not in first:
            names = [alias for alias, target in known.items() if target == field_name]
            problems.append(CsvProblem(line, 1, "", f"expected a column for {field_name} (one of {', '.join(names)})"))
    return columns, problems
