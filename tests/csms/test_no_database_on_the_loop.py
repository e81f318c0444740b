"""The servers' coroutines never open a database session on the event loop. An API request's transaction stays
open (holding SQLite's write lock) until the audit middleware commits it with its entry, which needs the loop; a
coroutine that meanwhile blocks the loop on that lock waits for itself, up to the driver's 30 s timeout. That is
how an OCPI token pull once hung a concurrent ``PUT /tariffs`` past its client's timeout. Database work of a
coroutine goes to a thread (``asyncio.to_thread``, an executor, ``run_in_threadpool``), written as a nested or
module-level plain function."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _own_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """The nodes of a function's body that run when it runs: not those of functions or classes defined in it."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            continue
        yield child
        yield from _own_nodes(child)


def sessions_opened_in_coroutines(source: str) -> list[tuple[int, str]]:
    """(line, call) of each ``…factory…()()``-style session opened in an ``async def``'s own body."""
    found = []
    for function in ast.walk(ast.parse(source)):
        if not isinstance(function, ast.AsyncFunctionDef):
            continue
        for node in _own_nodes(function):
            # A session factory is called with no arguments (``make_session_factory(engine)`` builds one).
            if isinstance(node, ast.Call) and not node.args and "factory" in ast.unparse(node.func).lower():
                found.append((node.lineno, f"{function.name}: {ast.unparse(node)}"))
    return found


def test_the_check_finds_a_session_opened_on_the_loop_and_not_one_on_a_thread():
    source = (
        "async def on_loop(factory):\n"
        "    with factory() as db:\n"
        "        db.get(1)\n"
        "async def on_thread(factory):\n"
        "    def read():\n"
        "        with factory() as db:\n"
        "            return db.get(1)\n"
        "    return await asyncio.to_thread(read)\n"
    )
    assert sessions_opened_in_coroutines(source) == [(2, "on_loop: factory()")]


def test_no_coroutine_of_the_csms_opens_a_database_session_on_the_event_loop():
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {what}"
        for path in sorted((ROOT / "csms").rglob("*.py"))
        for line, what in sessions_opened_in_coroutines(path.read_text())
    ]
    assert offenders == []
