"""Migrations are the only way the schema changes: they must build exactly the models' schema,
and go down and up again, on SQLite and PostgreSQL."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

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


def test_adding_parts_keeps_every_job_and_its_timeline(settings, database):
    """0002 rebuilds the job table on SQLite (to change a CHECK): the jobs, their timelines and
    the rule itself must all survive, and going back down returns waiting jobs to `new`."""
    database.dispose()
    migrate.downgrade(settings, "0001")
    engine = create_engine(settings.resolved_database_url)
    now = "2026-03-10 09:00:00+00:00"
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO technician (id, name, lat, lon, capacity, open_jobs, on_duty, active, timezone, created_at,"
            " updated_at) VALUES (1, 'T', 52.2, 21.0, 2, 1, true, true, 'UTC', :now, :now)"), {"now": now})
        conn.execute(text(
            "INSERT INTO job (id, customer_name, customer_address, needs_location, product_category, fault, priority,"
            " service_tier, reported_at, received_at, due_at, at_risk_at, status, technician_id, created_by,"
            " updated_at, version) VALUES (1, 'C', 'A', false, 'fridge', 'F', 'normal', 'standard', :now, :now,"
            " :now, :now, 'assigned', 1, 'test', :now, 1)"), {"now": now})
        conn.execute(text(
            "INSERT INTO job_event (job_id, type, actor, occurred_at, recorded_at, data)"
            " VALUES (1, 'job_created', 'test', :now, :now, '{}')"), {"now": now})
    migrate.upgrade(settings)
    with engine.begin() as conn:
        assert conn.execute(text("SELECT id, status, technician_id FROM job")).all() == [(1, "assigned", 1)]
        assert conn.execute(text("SELECT count(*) FROM job_event WHERE job_id = 1")).scalar() == 1
        conn.execute(text("UPDATE job SET status = 'waiting_parts' WHERE id = 1"))  # now allowed with a technician
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("UPDATE job SET status = 'assigned', technician_id = NULL WHERE id = 1"))  # still refused
    migrate.downgrade(settings, "0001")
    with engine.begin() as conn:
        assert conn.execute(text("SELECT status, technician_id FROM job")).all() == [("new", None)]
        assert conn.execute(text("SELECT count(*) FROM job_event")).scalar() == 1
    migrate.upgrade(settings)
    engine.dispose()
