"""Rules the team agreed on, checked by reading the code (STYLE.md, "Rules that run")."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


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
