"""Load a scenario file and report every problem as ``file:line:column: field.path: what was expected``.

The YAML is composed into a node tree first (nodes carry their line and column), then constructed and
validated by the pydantic models. Each pydantic error's ``loc`` is walked down the node tree to find the
line of the offending value (or key, for an unknown field; or the enclosing mapping, for a missing one).
A replay block's ``sessions_file`` is read here (``sessions_csv``) into its ``sessions`` before the models
validate, and problems with those sessions are placed at their line and column in the CSV file.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, get_args

import yaml
from pydantic import BaseModel, ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from simulator.scenario.models import Scenario, Session, field_names, reference_problems
from simulator.scenario.sessions_csv import Row, read_session_table

__all__ = ["ScenarioError", "ScenarioIssue", "issue_at", "load_scenario", "load_yaml_model", "parse_scenario"]

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class ScenarioIssue:
    """One problem in a scenario file; ``line`` and ``column`` are 1-based."""

    file: str
    line: int
    column: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class ScenarioError(ValueError):
    """A scenario file that cannot be used; ``issues`` lists every problem found, in file order."""

    def __init__(self, issues: list[ScenarioIssue]) -> None:
        self.issues = tuple(sorted(issues, key=lambda i: (i.line, i.column)))
        super().__init__("\n".join(str(i) for i in self.issues))


class _ScenarioYamlLoader(yaml.SafeLoader):
    """SafeLoader without YAML 1.1's base-60 numbers, so ``at: 18:00`` stays the string "18:00" instead of
    the integer 1080; date-times that do not exist are reported with their position."""

    def construct_yaml_timestamp(self, node: ScalarNode) -> Any:
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"invalid date-time {node.value!r}: {exc}", node.start_mark
            ) from None


_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_ScenarioYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_INT_TAG, _FLOAT_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ScenarioYamlLoader.add_implicit_resolver(
    _INT_TAG,
    re.compile(r"""^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"""),
    list("-+0123456789"),
)
_ScenarioYamlLoader.add_implicit_resolver(
    _FLOAT_TAG,
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)
_ScenarioYamlLoader.add_constructor("tag:yaml.org,2002:timestamp", _ScenarioYamlLoader.construct_yaml_timestamp)


def load_scenario(path: str | Path) -> Scenario:
    """Read, validate and cross-check a scenario file.

    Raises:
        ScenarioError: naming file, line, column, field path and expectation for every problem.
    """
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError([ScenarioIssue(name, 1, 1, "", f"cannot read the file: {exc.strerror}")]) from None
    return parse_scenario(text, name)


def parse_scenario(text: str, file: str = "<scenario>") -> Scenario:
    """Like ``load_scenario`` for text already read; ``file`` names it in messages."""
    root, data = _compose(text, file, "scenario fields")
    issues = _duplicate_keys(root, file)
    session_files, unread, file_issues = _read_session_files(data, root, file)
    issues += file_issues
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        errors = [err for err in exc.errors() if not _about_unread_sessions(tuple(err["loc"]), unread)]
        issues += [_issue_from_error(err, root, file) for err in errors]
        raise ScenarioError(issues) from None
    issues += [
        _session_file_issue(session_files, loc, message) or _issue(file, root, loc, message)
        for loc, message in reference_problems(scenario)
    ]
    if issues:
        raise ScenarioError(issues)
    return scenario


def load_yaml_model(path: str | Path, model: type[M], what: str) -> M:
    """Any other YAML file read into a pydantic ``model`` with the scenario loader's messages (file, line,
    column, field path, expectation; unknown fields with a close match among ``model``'s fields).

    Raises:
        ScenarioError: every problem found, ``what`` naming what the top level should hold.
    """
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError([ScenarioIssue(name, 1, 1, "", f"cannot read the file: {exc.strerror}")]) from None
    root, data = _compose(text, name, what)
    issues = _duplicate_keys(root, name)
    try:
        value = model.model_validate(data)
    except ValidationError as exc:
        names = sorted(_model_field_names(model))
        issues += [_issue_from_error(err, root, name, names) for err in exc.errors()]
    if issues:
        raise ScenarioError(issues)
    return value


def _model_field_names(model: type[BaseModel]) -> set[str]:
    """Every field name of ``model`` and of the models its fields hold (for "did you mean")."""
    names = set(model.model_fields)
    for info in model.model_fields.values():
        for arg in (info.annotation, *get_args(info.annotation)):
            if isinstance(arg, type) and issubclass(arg, BaseModel) and arg is not model:
                names |= _model_field_names(arg)
    return names


def _compose(text: str, file: str, what: str) -> tuple[Node, dict[str, Any]]:
    """The node tree (with positions) and the data it constructs, which must be a mapping."""
    loader = _ScenarioYamlLoader(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise ScenarioError([ScenarioIssue(file, line, column, "", f"YAML syntax error: {problem}")]) from None
    finally:
        loader.dispose()
    if root is None or not isinstance(data, dict):
        line = root.start_mark.line + 1 if root is not None else 1
        raise ScenarioError([ScenarioIssue(file, line, 1, "", f"expected a mapping of {what} at the top")])
    return root, data


def issue_at(path: str | Path, loc: Loc, message: str) -> ScenarioIssue:
    """A problem found after loading (a run that cannot honour a valid field), placed in the file as the
    loader places its own; ``loc`` is in pydantic's form, e.g. ``("faults", 3, "kind")``."""
    name = str(path)
    try:
        loader = _ScenarioYamlLoader(Path(path).read_text(encoding="utf-8"))
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
    except (OSError, yaml.YAMLError):
        root = None
    if root is None:  # the file changed or is gone since it was loaded: name the field only
        field = "".join(f"[{e}]" if isinstance(e, int) else f".{e}" for e in loc).lstrip(".")
        return ScenarioIssue(name, 1, 1, field, message)
    return _issue(name, root, loc, message)


# -- session files ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _SessionFile:
    """A CSV file read into a replay block's sessions: per session, each field's cell."""

    name: str
    rows: list[Row]


def _read_session_files(
    data: dict[str, Any], root: Node, file: str
) -> tuple[dict[int, _SessionFile], set[int], list[ScenarioIssue]]:
    """Read every ``sessions_file`` (relative to the scenario file) into its block's ``sessions``.

    Returns the files read by vehicle block index, the indexes of blocks whose file could not be read, and
    the problems found (in the CSV files, or with the ``sessions_file`` field itself).
    """
    blocks = data.get("vehicles")
    entries = [blocks] if isinstance(blocks, dict) else blocks if isinstance(blocks, list) else []
    read: dict[int, _SessionFile] = {}
    unread: set[int] = set()
    issues: list[ScenarioIssue] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or "sessions_file" not in entry:
            continue
        loc = ("vehicles", i, "sessions_file")
        unread.add(i)
        if "sessions" in entry:
            message = "expected exactly one of 'sessions' (a list) or 'sessions_file' (a CSV file)"
            issues.append(_issue(file, root, loc, message))
            continue
        if not isinstance(entry["sessions_file"], str):
            continue  # the model reports the type
        path = Path(file).parent / entry["sessions_file"]
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            issues.append(_issue(file, root, loc, f"cannot read the sessions file {str(path)!r}: {exc.strerror}"))
            continue
        sessions, rows, csv_issues = _validate_sessions(text, str(path))
        issues += csv_issues
        if not csv_issues:
            entry["sessions"] = sessions
            read[i] = _SessionFile(str(path), rows)
            unread.discard(i)
    return read, unread, issues


def _validate_sessions(text: str, name: str) -> tuple[list[Session], list[Row], list[ScenarioIssue]]:
    table, problems = read_session_table(text)
    issues = [ScenarioIssue(name, p.line, p.column, p.field, p.message) for p in problems]
    sessions: list[Session] = []
    for row in table.rows:
        try:
            sessions.append(Session.model_validate({field: cell.value for field, cell in row.cells.items()}))
        except ValidationError as exc:
            for err in exc.errors():
                loc: Loc = tuple(err["loc"])
                issues.append(_cell_issue(name, row, loc, _describe(err, loc)))
    return sessions, table.rows, issues


def _cell_issue(name: str, row: Row, loc: Loc, message: str) -> ScenarioIssue:
    """A problem with the ``loc[0]`` field of a CSV row, at its cell (the row's first column if not given)."""
    field = str(loc[0]) if loc else ""
    cell = row.cells.get(field)
    if cell is None:
        return ScenarioIssue(name, row.line, 1, field, message)
    return ScenarioIssue(name, cell.line, cell.column, cell.header, message)


def _about_unread_sessions(loc: Loc, unread: set[int]) -> bool:
    """A model error about the sessions of a block whose file could not be read (already reported)."""
    return len(loc) > 1 and loc[0] == "vehicles" and loc[1] in unread and "sessions" in loc


def _session_file_issue(files: dict[int, _SessionFile], loc: Loc, message: str) -> ScenarioIssue | None:
    """A problem with a session read from a CSV file, placed at its cell there; None for any other."""
    if len(loc) < 5 or loc[0] != "vehicles" or loc[2] != "sessions" or not isinstance(loc[1], int):
        return None
    source = files.get(loc[1])
    if source is None or not isinstance(loc[3], int):
        return None
    return _cell_issue(source.name, source.rows[loc[3]], loc[4:], message)


# -- locating problems --------------------------------------------------------------------------------------
@dataclass
class _Located:
    path: str
    line: int
    column: int
    key_line: int
    key_column: int


def _locate(root: Node, loc: Loc) -> _Located:
    """Walk ``loc`` down the node tree. Elements that are not keys/indexes there (union tags, validator
    names) are skipped; a trailing element that is absent (a missing field) is kept in the path."""
    node = root
    parts: list[str] = []
    mark = key_mark = root.start_mark
    for i, elem in enumerate(loc):
        last = i == len(loc) - 1
        if elem == "[key]":  # the problem is the key itself (a dict key), not its value
            mark = key_mark
            continue
        if isinstance(node, MappingNode) and isinstance(elem, str):
            entry = next(((k, v) for k, v in node.value if isinstance(k, ScalarNode) and k.value == elem), None)
            if entry is not None:
                parts.append(f".{elem}")
                key_mark, mark = entry[0].start_mark, entry[1].start_mark
                node = entry[1]
            elif last:
                parts.append(f".{elem}")
            continue
        if isinstance(node, SequenceNode) and isinstance(elem, int):
            if elem < len(node.value):
                node = node.value[elem]
                key_mark = mark = node.start_mark
            parts.append(f"[{elem}]")
            continue
        # an int index into a mapping: a single block the model accepts as a one-item list
    path = "".join(parts).lstrip(".")
    return _Located(path, mark.line + 1, mark.column + 1, key_mark.line + 1, key_mark.column + 1)


def _issue(file: str, root: Node, loc: Loc, message: str) -> ScenarioIssue:
    where = _locate(root, loc)
    return ScenarioIssue(file, where.line, where.column, where.path, message)


def _issue_from_error(err: Any, root: Node, file: str, names: list[str] | None = None) -> ScenarioIssue:
    loc: Loc = tuple(err["loc"])
    kind = err["type"]
    if kind == "union_tag_invalid":
        loc = (*loc, str(err["ctx"]["discriminator"]).strip("'"))
    where = _locate(root, loc)
    line, column = where.line, where.column
    if kind == "extra_forbidden":
        line, column = where.key_line, where.key_column
    elif kind == "missing":
        # the mark is that of the enclosing mapping, which is where the field belongs
        pass
    return ScenarioIssue(file, line, column, where.path, _describe(err, loc, names or _FIELD_NAMES))


_KIND_EXPECTED = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "string": "a string",
    "str": "a string",
    "dict": "a mapping",
    "model": "a mapping",
    "list": "a list",
    "tuple": "a list",
    "datetime": "a date-time like 2026-01-15T17:00:00-05:00",
}
_BOUNDS = {
    "greater_than": (">", "gt"),
    "greater_than_equal": (">=", "ge"),
    "less_than": ("<", "lt"),
    "less_than_equal": ("<=", "le"),
}
_FIELD_NAMES = sorted(field_names())


def _show(value: object) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return repr(value)


def _describe(err: Any, loc: Loc, names: list[str] | None = None) -> str:  # noqa: C901, PLR0911 - one message per error kind
    """Turn one pydantic error into "expected …, got …"."""
    kind: str = err["type"]
    ctx: dict[str, Any] = err.get("ctx") or {}
    got = _show(err.get("input"))
    if kind == "missing":
        return "required field is missing" if isinstance(loc[-1], str) else "list item is missing"
    if kind == "extra_forbidden":
        name = str(loc[-1])
        close = difflib.get_close_matches(name, names or _FIELD_NAMES, n=1)
        return f"unknown field {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
    if kind == "literal_error":
        return f"expected one of {ctx['expected'].replace(' or ', ', ')}, got {got}"
    if kind == "union_tag_invalid":
        return f"expected one of {ctx['expected_tags']}, got {ctx['tag']!r}"
    if kind == "union_tag_not_found":
        return f"expected a {ctx['discriminator']} field saying which kind this is"
    if kind in ("value_error", "assertion_error"):
        message = str(err["msg"])
        for prefix in ("Value error, ", "Assertion failed, "):
            message = message.removeprefix(prefix)
        return message
    if kind in _BOUNDS:
        symbol, key = _BOUNDS[kind]
        return f"expected a value {symbol} {ctx[key]}, got {got}"
    if kind in ("too_short", "too_long"):
        bound = "at least" if kind == "too_short" else "at most"
        count = ctx.get("min_length", ctx.get("max_length"))
        return f"expected {bound} {count} item(s), got {ctx.get('actual_length')}"
    family = kind.split("_", 1)[0]
    if family in _KIND_EXPECTED:
        return f"expected {_KIND_EXPECTED[family]}, got {got}"
    return f"{err['msg']}, got {got}"


def _duplicate_keys(root: Node, file: str) -> list[ScenarioIssue]:
    """PyYAML silently keeps the last of two equal keys; a scenario file with one is an error."""
    issues: list[ScenarioIssue] = []
    stack: list[tuple[Node, str]] = [(root, "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, MappingNode):
            first: dict[str, int] = {}
            for key, value in node.value:
                name = str(key.value)
                sub = f"{path}.{name}".lstrip(".")
                if name in first:
                    issues.append(
                        ScenarioIssue(
                            file,
                            key.start_mark.line + 1,
                            key.start_mark.column + 1,
                            sub,
                            f"duplicate key {name!r} (first at line {first[name]})",
                        )
                    )
                else:
                    first[name] = key.start_mark.line + 1
                stack.append((value, sub))
        elif isinstance(node, SequenceNode):
            stack.extend((item, f"{path}[{i}]") for i, item in enumerate(node.value))
    return issues
