"""Paging: the one kit every list uses (docs/decisions.md, "Lists").

A list is sorted on a key that ends with a unique id, and a page starts after the last row of
the previous one (keyset paging: stable under inserts, and page 100 costs what page 1 costs).
Its cursor is that row's key, named after the list and typed, as base64url JSON: opaque to
clients and checked on the way back in, so a cursor this API never gave out, or one of another
list, is a 422 ``invalid-cursor``, never a 500.

A list declares its ``Keyset`` beside its query (in the domain's service), and fetches a page
through it::

    TECHNICIANS = Keyset("technicians", Id)  # sorted by id; key of a row: (row.id,)

    def list_technicians(*, session, limit, cursor) -> Cut[Technician]:
        return TECHNICIANS.fetch(session, select(Technician), Technician.id, cursor=cursor, limit=limit)

and the route presents it: ``service.list_technicians(...).page(TechnicianPublic)``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Generic, Literal, NamedTuple, TypeVar

from fastapi import Query
from pydantic import Field, TypeAdapter, ValidationError
from sqlalchemy import Select, tuple_
from sqlalchemy.orm import Session

from dispatch.errors import Unprocessable
from dispatch.schemas import ResponseBody

R = TypeVar("R")
T = TypeVar("T")

# The parameters every list takes: bounded pages, opaque cursors. A cursor holds at most a short
# text key (a metrics group: 64 characters, up to 4 bytes each in UTF-8) besides its period, so
# 500 characters of base64 always fit one we gave out.
LimitQuery = Annotated[int, Query(ge=1, le=200, description="Page size")]
CursorQuery = Annotated[str | None, Query(max_length=500, description="From the previous page's next_cursor")]


class Page(ResponseBody, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` to get the next page; null on the last page."
    )


class Cut(NamedTuple, Generic[R]):
    """A page of rows as the service found them, before they are presented."""

    items: list[R]
    next_cursor: str | None = None

    def page(self, model: type[T], present: Callable[[R], T] | None = None) -> Page[T]:
        """The page as the API answers it, each row presented as ``model`` (by ``present``, or
        validated from its attributes)."""
        to_public: Callable[[Any], T] = present or model.model_validate  # type: ignore[attr-defined]
        return Page[model](items=[to_public(r) for r in self.items], next_cursor=self.next_cursor)  # type: ignore[valid-type]


def invalid_cursor() -> Unprocessable:
    return Unprocessable(
        "cursor is not one this API gave out for this list",
        code="invalid-cursor",
        errors=[{"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "value_error"}],
    )


def _by_id(row: Any) -> tuple[Any, ...]:
    return (row.id,)


class Keyset(Generic[R]):
    """The sort key of one list: its name, the types of the key's parts (validated like any
    input: pydantic types such as ``Id`` or ``Timestamp``), and how to read the key of a row."""

    def __init__(self, name: str, *types: Any, key: Callable[[R], tuple[Any, ...]] = _by_id) -> None:
        self.name = name
        self.key = key
        self._adapter: TypeAdapter[tuple[Any, ...]] = TypeAdapter(tuple[(Literal[name], *types)])  # type: ignore[misc]

    def encode(self, key: tuple[Any, ...]) -> str:
        raw = self._adapter.dump_json((self.name, *key))
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def decode(self, cursor: str | None) -> tuple[Any, ...] | None:
        """The key after which the page starts; None for the first page."""
        if cursor is None:
            return None
        try:
            raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
            return self._adapter.validate_json(raw)[1:]
        except (ValueError, ValidationError) as exc:  # binascii.Error is a ValueError
            raise invalid_cursor() from exc

    def seek(
        self, stmt: Select[Any], *columns: Any, cursor: str | None, limit: int, descending: bool = False
    ) -> Select[Any]:
        """``stmt`` ordered by ``columns`` (the key, in the database), from after the cursor,
        ``limit + 1`` rows: the extra row says whether there is a next page."""
        after = self.decode(cursor)
        if after is not None:
            # A row-value comparison: both databases seek an index on the columns to it (the
            # same condition spelled out with OR made PostgreSQL read and sort the rest).
            left, right = (columns[0], after[0]) if len(columns) == 1 else (tuple_(*columns), after)
            stmt = stmt.where(left < right if descending else left > right)
        order = [c.desc() for c in columns] if descending else list(columns)
        return stmt.order_by(*order).limit(limit + 1)

    def cut(self, rows: Sequence[R], limit: int) -> Cut[R]:
        """The page of rows fetched with ``limit + 1``, and the cursor of the next one."""
        items = list(rows[:limit])
        return Cut(items, self.encode(self.key(items[-1])) if len(rows) > limit else None)

    def fetch(
        self,
        session: Session,
        stmt: Select[Any],
        *columns: Any,
        cursor: str | None,
        limit: int,
        descending: bool = False,
    ) -> Cut[R]:
        """One page of ``stmt``: its entities, or its rows when it selects several."""
        stmt = self.seek(stmt, *columns, cursor=cursor, limit=limit, descending=descending)
        rows = session.scalars(stmt).all() if len(stmt.column_descriptions) == 1 else session.execute(stmt).all()
        return self.cut(rows, limit)  # type: ignore[arg-type]
