"""Migrations are the only way the schema changes: they must build exactly the models' schema,
and go down and up again, on SQLite and PostgreSQL."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from dispatch.database import migrate
from dispatch.models import metadata


def test_the_migrated_schema_matches_the_models(settings):
    engine = create_engine(settings.resolved_database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    engine.dispose()
    assert diff == []


def test_migrations_go_down_to_nothing_and_up_again(settings, database):
    database.dispose()
    migrate.downgrade(settings, "base")
    engine = create_engine(settings.resolved_database_url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(settings)
    assert {"job", "technician", "technician_skill", "job_event", "api_key", "outlet"} <= set(
        inspect(engine).get_table_names()
    )
    engine.dispose()
