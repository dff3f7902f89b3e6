"""A mypy plugin: on a SQLModel table class, a field read from the class is a column.

SQLModel declares `Job.status: JobStatus`, which is right for `job.status` but not for
`Job.status`: at runtime that is SQLAlchemy's `InstrumentedAttribute`, the thing queries are
built from (`Job.status.in_(...)`, `select(Job.id)`, `Job.due_at.is_(None)`). Without this
every query needs `col(...)` or an ignore (sqlmodel issue #267); SQLAlchemy's own mypy plugin
is deprecated and does not know SQLModel. Instances are untouched.
"""

from __future__ import annotations

from collections.abc import Callable

from mypy.nodes import MypyFile, TypeInfo, Var
from mypy.plugin import AttributeContext, Plugin
from mypy.types import Instance, Type

SQLMODEL = "sqlmodel.main.SQLModel"
INSTRUMENTED = "sqlalchemy.orm.attributes.InstrumentedAttribute"


def _is_table(info: TypeInfo) -> bool:
    # A table class is told by its `__tablename__`, not by `table=True`: mypy's cache keeps a
    # class's names but not its keywords, and the answer must not depend on the cache.
    # (tests/test_architecture.py checks that every table model names its table.)
    return any("__tablename__" in cls.names for cls in info.mro if cls.fullname != SQLMODEL)


class SQLModelColumns(Plugin):
    def get_class_attribute_hook(self, fullname: str) -> Callable[[AttributeContext], Type] | None:
        class_name, _, attribute = fullname.rpartition(".")
        symbol = self.lookup_fully_qualified(class_name)
        if symbol is None or not isinstance(symbol.node, TypeInfo) or attribute.startswith("_"):
            return None
        info = symbol.node
        if not info.has_base(SQLMODEL) or not _is_table(info):
            return None
        for cls in info.mro:
            if cls.fullname == SQLMODEL:
                return None  # SQLModel's own API (metadata, model_fields...), not a field
            node = cls.names.get(attribute)
            if node is not None:
                if not isinstance(node.node, Var) or node.node.is_classvar or node.node.is_property:
                    return None
                return self._column
        return None

    def _column(self, ctx: AttributeContext) -> Type:
        if ctx.is_lvalue:
            return ctx.default_attr_type
        instrumented = self.lookup_fully_qualified(INSTRUMENTED)
        assert instrumented is not None and isinstance(instrumented.node, TypeInfo), "sqlalchemy is not loaded"
        return Instance(instrumented.node, [ctx.default_attr_type])

    def get_additional_deps(self, file: MypyFile) -> list[tuple[int, str, int]]:
        # InstrumentedAttribute must be loaded wherever a model's column is read.
        return [(10, "sqlalchemy.orm.attributes", -1)]


def plugin(version: str) -> type[Plugin]:
    return SQLModelColumns
