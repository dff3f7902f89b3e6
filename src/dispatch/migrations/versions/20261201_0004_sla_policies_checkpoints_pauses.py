"""SLA: policies (seeded), checkpoints the watcher fires, pauses; jobs carry every deadline and where their time went

Revision ID: 0004
Revises: 0002
Create Date: 2026-12-01 10:06:11.690387
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sla_policy",
        sa.Column(
            "name",
            sa.Enum("standard", "express", "emergency", name="policyname", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("arrival_hours", sa.Float(), nullable=True),
        sa.Column("completion_hours", sa.Float(), nullable=False),
        sa.Column("at_risk_ratio", sa.Float(), nullable=False),
        sa.Column("warnings", sa.JSON(), nullable=False),
        sa.Column("business_hours", sa.JSON(), nullable=True),
        sa.Column("pause_reasons", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=80), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_sla_policy")),
    )
    op.create_table(
        "sla_checkpoint",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column(
            "deadline",
            sa.Enum("arrival", "completion", "appointment", name="deadline", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column(
            "level",
            sa.Enum("warning", "at_risk", "breached", "no_show", name="level", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("ratio", sa.Float(), nullable=True),
        sa.Column(
            "audience",
            sa.Enum("technician", "dispatcher", "supervisor", name="audience", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("fires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=80), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"], name=op.f("fk_sla_checkpoint_job_id_job"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sla_checkpoint")),
    )
    with op.batch_alter_table("sla_checkpoint", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sla_checkpoint_escalations",
            ["audience", "fired_at"],
            unique=False,
            sqlite_where=sa.text("fired_at IS NOT NULL AND acknowledged_at IS NULL"),
            postgresql_where=sa.text("fired_at IS NOT NULL AND acknowledged_at IS NULL"),
        )
        batch_op.create_index("ix_sla_checkpoint_job_id", ["job_id"], unique=False)
        batch_op.create_index(
            "ix_sla_checkpoint_pending",
            ["fires_at"],
            unique=False,
            sqlite_where=sa.text("fired_at IS NULL AND resolved_at IS NULL"),
            postgresql_where=sa.text("fired_at IS NULL AND resolved_at IS NULL"),
        )

    op.create_table(
        "sla_pause",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_by", sa.String(length=80), nullable=False),
        sa.Column("ended_by", sa.String(length=80), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"], name=op.f("fk_sla_pause_job_id_job"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sla_pause")),
    )
    with op.batch_alter_table("sla_pause", schema=None) as batch_op:
        batch_op.create_index("ix_sla_pause_job_id", ["job_id"], unique=False)

    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sla_policy", sa.String(length=20), server_default="standard", nullable=False))
        batch_op.add_column(sa.Column("arrival_due_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("arrival_at_risk_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("arrived_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("arrival_missed", sa.Boolean(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("next_due_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("next_at_risk_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("urgency", sa.Integer(), server_default="1", nullable=False))
        batch_op.add_column(sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("status_since", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("seconds_dispatch", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("seconds_assigned", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("seconds_travel", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("seconds_on_site", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("seconds_parts", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("seconds_customer", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("resolution_seconds", sa.Integer(), nullable=True))
        batch_op.create_index("ix_job_reported_at", ["reported_at"], unique=False)
        batch_op.create_index(
            "ix_job_arrival_pending",
            ["arrival_due_at"],
            unique=False,
            sqlite_where=sa.text("arrived_at IS NULL AND arrival_due_at IS NOT NULL"),
            postgresql_where=sa.text("arrived_at IS NULL AND arrival_due_at IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_job_sla_queue",
            ["urgency", "next_due_at", "id"],
            unique=False,
            sqlite_where=sa.text("next_due_at IS NOT NULL"),
            postgresql_where=sa.text("next_due_at IS NOT NULL"),
        )

    _seed_policies()
    _backfill_jobs()


OPEN = "('new', 'assigned', 'en_route', 'on_site', 'unable', 'waiting_parts', 'ready')"
REASONS = ["customer_requested_later", "customer_unreachable"]


def _seed_policies() -> None:
    """The defaults of the product brief (the same as dispatch.sla.policies.DEFAULTS, written out
    here because a migration must not change when the code does)."""
    now = datetime.now(UTC)
    policy = sa.table(
        "sla_policy",
        sa.column("name", sa.String),
        sa.column("arrival_hours", sa.Float),
        sa.column("completion_hours", sa.Float),
        sa.column("at_risk_ratio", sa.Float),
        sa.column("warnings", sa.JSON),
        sa.column("business_hours", sa.JSON),
        sa.column("pause_reasons", sa.JSON),
        sa.column("updated_at", sa.DateTime(timezone=True)),
        sa.column("updated_by", sa.String),
    )
    technician_warning = [{"ratio": 0.5, "notify": "technician"}]
    op.bulk_insert(
        policy,
        [
            {
                "name": "standard",
                "arrival_hours": None,
                "completion_hours": 24.0,
                "at_risk_ratio": 0.75,
                "warnings": technician_warning,
                "business_hours": None,
                "pause_reasons": REASONS,
                "updated_at": now,
                "updated_by": "migration",
            },
            {
                "name": "express",
                "arrival_hours": 2.0,
                "completion_hours": 24.0,
                "at_risk_ratio": 0.75,
                "warnings": technician_warning,
                "business_hours": None,
                "pause_reasons": REASONS,
                "updated_at": now,
                "updated_by": "migration",
            },
            {
                "name": "emergency",
                "arrival_hours": 2.0,
                "completion_hours": 24.0,
                "at_risk_ratio": 0.5,
                "warnings": [],
                "business_hours": None,
                "pause_reasons": [],
                "updated_at": now,
                "updated_by": "migration",
            },
        ],
    )


def _backfill_jobs() -> None:
    """Jobs received before this revision keep the deadlines they had (completion only, as the
    service then promised) and get the checkpoints the watcher needs for them."""
    seconds = (
        "CAST(ROUND((julianday(completed_at) - julianday(reported_at)) * 86400) AS INTEGER)"
        if op.get_bind().dialect.name == "sqlite"
        else "CAST(EXTRACT(EPOCH FROM completed_at - reported_at) AS INTEGER)"
    )
    op.execute(f"""
        UPDATE job SET
            sla_policy = CASE WHEN priority = 'emergency' THEN 'emergency'
                              WHEN service_tier = 'express' THEN 'express' ELSE 'standard' END,
            urgency = CASE WHEN priority = 'emergency' THEN 0 ELSE 1 END,
            status_since = updated_at,
            next_due_at = CASE WHEN status IN {OPEN} THEN due_at END,
            next_at_risk_at = CASE WHEN status IN {OPEN} THEN at_risk_at END,
            resolution_seconds = CASE WHEN completed_at IS NOT NULL THEN {seconds} END
    """)
    for level, audience, column in (("at_risk", "dispatcher", "at_risk_at"), ("breached", "supervisor", "due_at")):
        op.execute(f"""
            INSERT INTO sla_checkpoint (job_id, deadline, level, ratio, audience, fires_at)
            SELECT id, 'completion', '{level}', NULL, '{audience}', {column} FROM job WHERE status IN {OPEN}
        """)


def downgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_job_sla_queue",
            sqlite_where=sa.text("next_due_at IS NOT NULL"),
            postgresql_where=sa.text("next_due_at IS NOT NULL"),
        )
        batch_op.drop_index(
            "ix_job_arrival_pending",
            sqlite_where=sa.text("arrived_at IS NULL AND arrival_due_at IS NOT NULL"),
            postgresql_where=sa.text("arrived_at IS NULL AND arrival_due_at IS NOT NULL"),
        )
        batch_op.drop_index("ix_job_reported_at")
        batch_op.drop_column("resolution_seconds")
        batch_op.drop_column("seconds_customer")
        batch_op.drop_column("seconds_parts")
        batch_op.drop_column("seconds_on_site")
        batch_op.drop_column("seconds_travel")
        batch_op.drop_column("seconds_assigned")
        batch_op.drop_column("seconds_dispatch")
        batch_op.drop_column("status_since")
        batch_op.drop_column("paused_at")
        batch_op.drop_column("urgency")
        batch_op.drop_column("next_at_risk_at")
        batch_op.drop_column("next_due_at")
        batch_op.drop_column("arrival_missed")
        batch_op.drop_column("arrived_at")
        batch_op.drop_column("arrival_at_risk_at")
        batch_op.drop_column("arrival_due_at")
        batch_op.drop_column("sla_policy")

    with op.batch_alter_table("sla_pause", schema=None) as batch_op:
        batch_op.drop_index("ix_sla_pause_job_id")

    op.drop_table("sla_pause")
    with op.batch_alter_table("sla_checkpoint", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_sla_checkpoint_pending",
            sqlite_where=sa.text("fired_at IS NULL AND resolved_at IS NULL"),
            postgresql_where=sa.text("fired_at IS NULL AND resolved_at IS NULL"),
        )
        batch_op.drop_index("ix_sla_checkpoint_job_id")
        batch_op.drop_index(
            "ix_sla_checkpoint_escalations",
            sqlite_where=sa.text("fired_at IS NOT NULL AND acknowledged_at IS NULL"),
            postgresql_where=sa.text("fired_at IS NOT NULL AND acknowledged_at IS NULL"),
        )

    op.drop_table("sla_checkpoint")
    op.drop_table("sla_policy")
