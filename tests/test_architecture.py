"""Rules of the house that a test can hold, read from the source (docs/decisions.md, "Code")."""

from __future__ import annotations

import ast
from pathlib import Path

import dispatch

SRC = Path(dispatch.__file__).parent
SQL_BUILDERS = {"select", "update", "delete", "insert"}
SESSION_QUERIES = {"execute", "scalars", "scalar", "get", "query"}


def sql_in(source: str) -> list[str]:
    """Where ``source`` builds or runs SQL itself: SQLAlchemy's statement builders imported or
    called, or a session asked to run something. Routes leave that to the services."""
    found = []
    builders = set()  # local names bound to SQLAlchemy's builders
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlalchemy":
            for alias in node.names:
                if alias.name in SQL_BUILDERS:
                    builders.add(alias.asname or alias.name)
                    found.append(f"line {node.lineno}: imports {alias.name} from {node.module}")
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in builders | SQL_BUILDERS:
            found.append(f"line {node.lineno}: calls {func.id}()")
        elif isinstance(func, ast.Attribute):
            owner = func.value.id if isinstance(func.value, ast.Name) else ""
            if (func.attr in SQL_BUILDERS and owner in {"sqlalchemy", "sa"}) or (
                func.attr in SESSION_QUERIES and "session" in owner.lower()
            ):
                found.append(f"line {node.lineno}: calls {owner}.{func.attr}()")
    return found


def test_routes_hold_no_sql():
    routes = sorted(SRC.glob("**/routes.py"))
    assert len(routes) >= 10  # the glob found the domains' routes
    found = {str(path.relative_to(SRC)): sql_in(path.read_text()) for path in routes}
    assert {path: where for path, where in found.items() if where} == {}


def test_the_sql_check_sees_queries_in_any_spelling():
    assert sql_in("from sqlalchemy import select\n") == ["line 1: imports select from sqlalchemy"]
    assert sql_in("from sqlalchemy.sql import delete as remove\nremove(Job)\n") == [
        "line 1: imports delete from sqlalchemy.sql",
        "line 2: calls remove()",
    ]
    assert sql_in("import sqlalchemy as sa\nsa.update(Job)\n") == ["line 2: calls sa.update()"]
    assert sql_in("def work(session):\n    return session.get(Shipment, 1)\n") == ["line 2: calls session.get()"]
    assert sql_in("lambda db_session: db_session.scalars(stmt)") == ["line 1: calls db_session.scalars()"]
    # A service's own verbs, and dictionaries' get, are not SQL.
    assert sql_in("service.delete(session=session, subscription_id=1)\nheaders.get('ETag')\n") == []
