"""Migrations are the only way the schema changes: they must build exactly the models' schema,
and go down and up again, on SQLite and PostgreSQL."""

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from dispatch.config import Settings
from dispatch.database import migrate
from dispatch.models import metadata


def test_the_migrated_schema_matches_the_models(settings):
    engine = create_engine(settings.resolved_database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    engine.dispose()
    assert diff == []


def test_the_alembic_command_in_a_checkout_runs_the_scripts_the_package_ships():
    """One copy of the migrations, inside the package: `alembic revision` in a checkout writes
    where `dispatch migrate` (and an installed wheel) reads."""
    checkout = Config(str(Path(__file__).resolve().parents[1] / "alembic.ini"))
    scripts = ScriptDirectory.from_config(checkout)
    assert Path(scripts.dir).resolve() == migrate.MIGRATIONS_DIR
    assert migrate.MIGRATIONS_DIR.parent.name == "dispatch"
    assert scripts.get_heads() == ScriptDirectory.from_config(migrate.alembic_config(Settings())).get_heads()


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
        conn.execute(
            text(
                "INSERT INTO technician (id, name, lat, lon, capacity, open_jobs, on_duty, active, timezone, created_at,"
                " updated_at) VALUES (1, 'T', 52.2, 21.0, 2, 1, true, true, 'UTC', :now, :now)"
            ),
            {"now": now},
        )
        conn.execute(
            text(
                "INSERT INTO job (id, customer_name, customer_address, needs_location, product_category, fault, priority,"
                " service_tier, reported_at, received_at, due_at, at_risk_at, status, technician_id, created_by,"
                " updated_at, version) VALUES (1, 'C', 'A', false, 'fridge', 'F', 'normal', 'standard', :now, :now,"
                " :now, :now, 'assigned', 1, 'test', :now, 1)"
            ),
            {"now": now},
        )
        conn.execute(
            text(
                "INSERT INTO job_event (job_id, type, actor, occurred_at, recorded_at, data)"
                " VALUES (1, 'job_created', 'test', :now, :now, '{}')"
            ),
            {"now": now},
        )
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


def test_adding_slas_gives_jobs_already_open_their_policy_and_checkpoints(settings, database):
    """0004 must not leave the jobs already received outside the watcher's sight: each gets its
    policy, its next deadline and its at-risk and breach checkpoints; finished ones their time."""
    database.dispose()
    before = ScriptDirectory.from_config(migrate.alembic_config(settings)).get_revision("0004").down_revision
    migrate.downgrade(settings, before)
    engine = create_engine(settings.resolved_database_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO technician (id, name, lat, lon, capacity, open_jobs, on_duty, active, timezone, created_at,"
                " updated_at) VALUES (1, 'T', 52.2, 21.0, 2, 0, true, true, 'UTC', :now, :now)"
            ),
            {"now": "2026-03-10 09:00:00+00:00"},
        )
        for job_id, priority, status, completed, tech in (
            (1, "emergency", "new", None, None),
            (2, "normal", "completed", "2026-03-10 11:30:00+00:00", 1),
        ):
            conn.execute(
                text(
                    "INSERT INTO job (id, customer_name, customer_address, needs_location, product_category, fault,"
                    " priority, service_tier, reported_at, received_at, due_at, at_risk_at, status, completed_at,"
                    " technician_id, created_by, updated_at, version) VALUES (:id, 'C', 'A', false, 'fridge', 'F', :priority,"
                    " 'standard', '2026-03-10 09:00:00+00:00', '2026-03-10 09:00:00+00:00', '2026-03-11 09:00:00+00:00',"
                    " '2026-03-11 03:00:00+00:00', :status, :completed, :tech, 'test', '2026-03-10 10:00:00+00:00', 1)"
                ),
                {"id": job_id, "priority": priority, "status": status, "completed": completed, "tech": tech},
            )
    migrate.upgrade(settings)
    with engine.begin() as conn:
        rows = conn.execute(
            text(
                "SELECT id, sla_policy, urgency, next_due_at IS NOT NULL, resolution_seconds, status_since IS NOT NULL"
                " FROM job ORDER BY id"
            )
        ).all()
        assert rows == [(1, "emergency", 0, True, None, True), (2, "standard", 1, False, 9000, True)]
        checkpoints = conn.execute(
            text("SELECT job_id, level, audience FROM sla_checkpoint ORDER BY job_id, level")
        ).all()
        assert checkpoints == [(1, "at_risk", "dispatcher"), (1, "breached", "supervisor")]
        assert conn.execute(text("SELECT count(*) FROM sla_policy")).scalar() == 3
    engine.dispose()
