"""The test database: which one the run uses, emptying it, counting rows."""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import delete, func, select

from dispatch.database.core import Database
from dispatch.models import metadata
from dispatch.sla import policies
from support.moments import T0

# Set (``make test`` does) to run the whole suite on PostgreSQL instead of SQLite.
PG_URL = os.environ.get("DISPATCH_TEST_DATABASE_URL")


def empty(database: Database) -> None:
    """Every row gone and the default SLA policies back: a fresh start inside one test
    (Hypothesis state machines run many examples on one database)."""
    with database.transaction() as session:
        for table in reversed(metadata.sorted_tables):
            session.execute(delete(table))
        policies.restore_defaults(session, T0)


def count_rows(database: Database, model: Any, *where: Any) -> int:
    """How many rows of ``model`` (matching ``where``) are in the database now."""
    with database.transaction(write=False) as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))
