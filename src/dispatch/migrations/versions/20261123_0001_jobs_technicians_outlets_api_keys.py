"""jobs technicians outlets api keys

Revision ID: 0001
Revises:
Create Date: 2026-11-23 11:57:53.999195
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "geocode_cache",
        sa.Column("query_hash", sa.String(length=64), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("query_hash", name=op.f("pk_geocode_cache")),
    )
    op.create_table(
        "outlet",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outlet")),
        sa.UniqueConstraint("code", name=op.f("uq_outlet_code")),
    )
    op.create_table(
        "technician",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("phone", sa.String(length=40), nullable=True),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("location_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("open_jobs", sa.Integer(), server_default="0", nullable=False),
        sa.Column("on_duty", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), server_default="1", nullable=False),
        sa.Column("shift_start", sa.Time(), nullable=True),
        sa.Column("shift_end", sa.Time(), nullable=True),
        sa.Column("shift_days", sa.String(length=7), nullable=True),
        sa.Column("timezone", sa.String(length=64), server_default="UTC", nullable=False),
        sa.Column("home_branch", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("capacity >= 1", name=op.f("ck_technician_capacity_positive")),
        sa.CheckConstraint(
            "lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180", name=op.f("ck_technician_coordinates")
        ),
        sa.CheckConstraint("open_jobs >= 0", name=op.f("ck_technician_open_jobs_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_technician")),
    )
    op.create_table(
        "api_key",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), server_default="", nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "admin",
                "dispatcher",
                "supervisor",
                "technician",
                "outlet",
                "warehouse",
                name="role",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("technician_id", sa.Integer(), nullable=True),
        sa.Column("outlet_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("(role = 'outlet') = (outlet_id IS NOT NULL)", name=op.f("ck_api_key_outlet_binding")),
        sa.CheckConstraint(
            "(role = 'technician') = (technician_id IS NOT NULL)", name=op.f("ck_api_key_technician_binding")
        ),
        sa.ForeignKeyConstraint(["outlet_id"], ["outlet.id"], name=op.f("fk_api_key_outlet_id_outlet")),
        sa.ForeignKeyConstraint(["technician_id"], ["technician.id"], name=op.f("fk_api_key_technician_id_technician")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_key_key_hash")),
    )
    op.create_table(
        "job",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("outlet_id", sa.Integer(), nullable=True),
        sa.Column("external_ref", sa.String(length=100), nullable=True),
        sa.Column("customer_name", sa.String(length=200), nullable=False),
        sa.Column("customer_phone", sa.String(length=40), nullable=True),
        sa.Column("customer_address", sa.String(length=500), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("needs_location", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("product_category", sa.String(length=64), nullable=False),
        sa.Column("product_model", sa.String(length=200), nullable=True),
        sa.Column("product_serial", sa.String(length=200), nullable=True),
        sa.Column("product_batch", sa.String(length=200), nullable=True),
        sa.Column("product_purchased_on", sa.Date(), nullable=True),
        sa.Column("fault", sa.Text(), nullable=False),
        sa.Column(
            "priority",
            sa.Enum("low", "normal", "high", "emergency", name="priority", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column(
            "service_tier",
            sa.Enum("standard", "express", name="servicetier", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("at_risk_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("appointment_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("appointment_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "new",
                "assigned",
                "en_route",
                "on_site",
                "completed",
                "unable",
                "cancelled",
                name="jobstatus",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("technician_id", sa.Integer(), nullable=True),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.CheckConstraint(
            "(technician_id IS NOT NULL) OR status IN ('new', 'unable', 'cancelled')",
            name=op.f("ck_job_assigned_has_technician"),
        ),
        sa.CheckConstraint("(lat IS NULL) = (lon IS NULL)", name=op.f("ck_job_coordinates_together")),
        sa.CheckConstraint(
            "lat IS NULL OR (lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180)", name=op.f("ck_job_coordinates")
        ),
        sa.ForeignKeyConstraint(["outlet_id"], ["outlet.id"], name=op.f("fk_job_outlet_id_outlet")),
        sa.ForeignKeyConstraint(["technician_id"], ["technician.id"], name=op.f("fk_job_technician_id_technician")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job")),
        sa.UniqueConstraint("outlet_id", "external_ref", name=op.f("uq_job_outlet_id_external_ref")),
    )
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.create_index("ix_job_due_at_id", ["due_at", "id"], unique=False)
        batch_op.create_index("ix_job_status_due_at", ["status", "due_at"], unique=False)
        batch_op.create_index("ix_job_technician_id_status", ["technician_id", "status"], unique=False)
        batch_op.create_index(
            "uq_job_external_ref_no_outlet",
            ["external_ref"],
            unique=True,
            sqlite_where=sa.text("outlet_id IS NULL"),
            postgresql_where=sa.text("outlet_id IS NULL"),
        )

    op.create_table(
        "technician_skill",
        sa.Column("technician_id", sa.Integer(), nullable=False),
        sa.Column("skill", sa.String(length=64), nullable=False),
        sa.Column("lat_band", sa.Integer(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["technician_id"],
            ["technician.id"],
            name=op.f("fk_technician_skill_technician_id_technician"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("technician_id", "skill", name=op.f("pk_technician_skill")),
    )
    with op.batch_alter_table("technician_skill", schema=None) as batch_op:
        batch_op.create_index("ix_technician_skill_search", ["skill", "lat_band", "lon"], unique=False)

    op.create_table(
        "job_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=50), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"], name=op.f("fk_job_event_job_id_job"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_event")),
    )
    with op.batch_alter_table("job_event", schema=None) as batch_op:
        batch_op.create_index("ix_job_event_job_id_id", ["job_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("job_event", schema=None) as batch_op:
        batch_op.drop_index("ix_job_event_job_id_id")

    op.drop_table("job_event")
    with op.batch_alter_table("technician_skill", schema=None) as batch_op:
        batch_op.drop_index("ix_technician_skill_search")

    op.drop_table("technician_skill")
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_job_external_ref_no_outlet",
            sqlite_where=sa.text("outlet_id IS NULL"),
            postgresql_where=sa.text("outlet_id IS NULL"),
        )
        batch_op.drop_index("ix_job_technician_id_status")
        batch_op.drop_index("ix_job_status_due_at")
        batch_op.drop_index("ix_job_due_at_id")

    op.drop_table("job")
    op.drop_table("api_key")
    op.drop_table("technician")
    op.drop_table("outlet")
    op.drop_table("geocode_cache")
