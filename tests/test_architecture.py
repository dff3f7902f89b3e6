"""Rules the team agreed on, checked on the source (its syntax tree) rather than left to habit
(docs/decisions.md, "Code" and "Packaging and the rules that run").

Each rule comes with a test that its checker finds what it is looking for, so a rule cannot
pass because its checker went blind.
"""

from __future__ import annotations

import ast
import graphlib
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "dispatch"
TESTS = Path(__file__).resolve().parent
SQL_BUILDERS = {"select", "update", "delete", "insert"}
SESSION_QUERIES = {"execute", "scalars", "scalar", "get", "query"}


def _sources() -> Iterator[tuple[str, ast.Module]]:
    """Every module of the package, as (path relative to the package, syntax tree)."""
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE).as_posix(), ast.parse(path.read_text(), filename=str(path))


# --- "Now" comes from the injectable clock -----------------------------------------------------

# Reading the wall clock (or passing the reader on, as a default_factory).
CLOCK_READS = {
    "datetime.datetime.now",
    "datetime.datetime.utcnow",
    "datetime.datetime.today",
    "datetime.date.today",
    "time.time",
    "time.time_ns",
    "time.localtime",
    "time.gmtime",
    "time.ctime",
}
# dispatch/clock.py is the clock. The migrations run once, outside any request and any clock
# a test could freeze; 0004 stamps the policies it seeds with the time it ran.
CLOCK_EXEMPT = ("clock.py", "migrations/")


def _imported_names(tree: ast.AST) -> dict[str, str]:
    """Local name -> what it is: `from datetime import datetime as dt` gives dt -> datetime.datetime."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    names[top] = top
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _dotted(node: ast.expr) -> list[str] | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(parts)]


def clock_reads(tree: ast.AST) -> list[tuple[int, str]]:
    """Where a module reads the wall clock: (line, what), whatever the spelling of the import."""
    names = _imported_names(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute | ast.Name):
            continue
        dotted = _dotted(node)
        if dotted is None or dotted[0] not in names:
            continue  # a local variable (say a datetime's .time()), not a module's function
        qualified = ".".join([names[dotted[0]], *dotted[1:]])
        if qualified in CLOCK_READS:
            found.append((node.lineno, qualified))
    return found


def test_only_the_clock_reads_the_time():
    found = [
        f"dispatch/{path}:{line} {what}"
        for path, tree in _sources()
        if not path.startswith(CLOCK_EXEMPT)
        for line, what in clock_reads(tree)
    ]
    assert found == [], "take `now` from the injectable clock (NowDep, a `now` argument, Clock.now)"


def test_the_clock_rule_sees_every_spelling_of_a_clock_read():
    def reads(source: str) -> list[str]:
        return [what for _, what in clock_reads(ast.parse(source))]

    assert reads("from datetime import datetime\nx = datetime.now()") == ["datetime.datetime.now"]
    assert reads("import datetime as dt\nx = dt.datetime.utcnow()") == ["datetime.datetime.utcnow"]
    assert reads("from datetime import date\ndef f():\n    return date.today()") == ["datetime.date.today"]
    assert reads("import time\nstarted = time.time()") == ["time.time"]
    assert reads("from time import time as clock\nx = clock()") == ["time.time"]
    assert reads("from datetime import datetime\nField(default_factory=datetime.now)") == ["datetime.datetime.now"]
    # Durations and a datetime's own time of day are not clock reads.
    assert reads("import time\nt = time.monotonic()\nu = time.perf_counter()") == []
    assert reads("from datetime import time\ndef f(local):\n    return local.time() > time(8)") == []


# --- Imports at the top of the module ----------------------------------------------------------

# The command line imports what each command needs when it runs, so `dispatch --help` and a
# quick `dispatch migrate` do not load the whole app.
LAZY_IMPORTS_ALLOWED = {"cli.py"}


def imports_in_functions(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, statement) of every import made inside a function or method: usually a cycle hidden."""
    found = []
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            for node in ast.walk(function):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    found.append((node.lineno, ast.unparse(node)))
    return sorted(set(found))


def test_imports_are_made_at_the_top_of_the_module():
    found = [
        f"dispatch/{path}:{line} {statement}"
        for path, tree in _sources()
        if path not in LAZY_IMPORTS_ALLOWED
        for line, statement in imports_in_functions(tree)
    ]
    assert found == [], "import at the top; if that makes a cycle, move the code that needs it"


def test_the_import_rule_sees_imports_in_functions_and_methods():
    source = (
        "import os\n"
        "def f():\n    from dispatch.errors import NotFound\n"
        "class A:\n    async def g(self):\n        import json\n"
    )
    assert imports_in_functions(ast.parse(source)) == [(3, "from dispatch.errors import NotFound"), (6, "import json")]


# --- Table models name their tables -----------------------------------------------------------


def tables_without_a_name(tree: ast.AST) -> list[str]:
    """Classes declared with table=True that do not set __tablename__."""
    return [
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        and any(k.arg == "table" and isinstance(k.value, ast.Constant) and k.value.value is True for k in node.keywords)
        and not any(
            isinstance(stmt, ast.Assign | ast.AnnAssign)
            and "__tablename__" in {t.id for t in ast.walk(stmt) if isinstance(t, ast.Name)}
            for stmt in node.body
        )
    ]


def test_every_table_model_names_its_table():
    """The name is in the migrations either way; tools/mypy_sqlmodel.py tells a table class by it."""
    found = [f"dispatch/{path}: {name}" for path, tree in _sources() for name in tables_without_a_name(tree)]
    assert found == []


def test_the_table_name_rule_sees_a_nameless_table():
    source = (
        "class Named(SQLModel, table=True):\n    __tablename__ = 'named'\n"
        "class Nameless(SQLModel, table=True):\n    id: int\n"
        "class Body(SQLModel):\n    id: int\n"
    )
    assert tables_without_a_name(ast.parse(source)) == ["Nameless"]


# --- No import cycles --------------------------------------------------------------------------


def _module_name(path: str) -> str:
    name = "dispatch." + path.removesuffix(".py").replace("/", ".")
    return name.removesuffix(".__init__")


def _is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def import_graph(sources: dict[str, ast.Module]) -> dict[str, set[str]]:
    """Module -> the package's modules it imports. TYPE_CHECKING imports never run and are left
    out; imports inside functions count (the rule above allows them only in the cli). Importing
    dispatch.a.b loads dispatch.a first, so both count."""
    modules = {_module_name(path) for path in sources}
    graph: dict[str, set[str]] = {}
    for path, tree in sources.items():
        name = _module_name(path)
        targets: set[str] = set()
        pending: list[ast.AST] = [stmt for stmt in tree.body if not _is_type_checking_block(stmt)]
        while pending:
            node = pending.pop()
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets.add(node.module)
                targets |= {f"{node.module}.{alias.name}" for alias in node.names}
            elif not _is_type_checking_block(node):
                pending.extend(ast.iter_child_nodes(node))
        loaded: set[str] = set()
        for target in targets:
            parts = target.split(".")
            loaded |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
        graph[name] = {module for module in loaded & modules if module != name and not name.startswith(module + ".")}
    return graph


def test_the_package_has_no_import_cycles():
    sources = {path: tree for path, tree in _sources() if not path.startswith("migrations/")}
    try:
        order = list(graphlib.TopologicalSorter(import_graph(sources)).static_order())
    except graphlib.CycleError as exc:
        raise AssertionError(f"import cycle: {' -> '.join(exc.args[1])}") from None
    assert "dispatch.app" in order


def test_the_cycle_rule_sees_a_cycle():
    sources = {
        "a.py": ast.parse("from dispatch.b import thing"),
        "b.py": ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from dispatch import c\n"),
        "c.py": ast.parse("def f():\n    from dispatch import a\n"),
    }
    graph = import_graph(sources)
    assert graph == {"dispatch.a": {"dispatch.b"}, "dispatch.b": set(), "dispatch.c": {"dispatch.a"}}
    graphlib.TopologicalSorter(graph).prepare()  # no cycle: b's import of c never runs
    sources["b.py"] = ast.parse("import dispatch.c")
    try:
        graphlib.TopologicalSorter(import_graph(sources)).prepare()
    except graphlib.CycleError:
        return
    raise AssertionError("a -> b -> c -> a not seen")


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
    routes = sorted(PACKAGE.glob("**/routes.py"))
    assert len(routes) >= 10  # the glob found the domains' routes
    found = {str(path.relative_to(PACKAGE)): sql_in(path.read_text()) for path in routes}
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


def _imports_of_test_modules(source: str) -> list[str]:
    """Modules named ``conftest`` or ``test_*`` that ``source`` imports, anywhere in it
    (inside functions too)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module]
        else:
            continue
        found += [n for n in names if n.split(".")[0] == "conftest" or n.split(".")[0].startswith("test_")]
    return found


def test_tests_do_not_import_each_other():
    """Fixtures live in conftest.py and plain helpers in tests/support/: a test module never
    imports conftest or another test module (pytest loads conftest itself, and a helper hidden
    in one test file gets copied into the next)."""
    # The check sees what it must, nested imports included.
    assert _imports_of_test_modules("from conftest import T0\ndef f():\n    import test_races\n") == [
        "conftest",
        "test_races",
    ]
    assert _imports_of_test_modules("from support.workflow import tap\nimport testing\n") == []

    offenders = {
        path.relative_to(TESTS).as_posix(): found
        for path in sorted(TESTS.rglob("*.py"))
        if "vendor" not in path.relative_to(TESTS).parts
        and (found := _imports_of_test_modules(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}, f"move shared helpers to tests/support/ (fixtures to conftest.py): {offenders}"
