"""proof of work: visits, sign-off photos, sign-offs, callbacks, compliance reviews; jobs close

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VISIT_REASONS = (
    "first",
    "follow_up",
    "callback_not_fixed",
    "compliance_failed",
    "fault_returned",
    "customer_request",
    "other",
)


def upgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("return_visits", sa.Integer(), server_default="0", nullable=False))

    op.create_table(
        "visit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("technician_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Enum(*VISIT_REASONS, name="visitreason", native_enum=False, length=20), nullable=False),
        sa.Column("planned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("en_route_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("on_site_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("left_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "outcome",
            sa.Enum(
                "fixed",
                "needs_parts",
                "not_fixed",
                "customer_absent",
                name="visitoutcome",
                native_enum=False,
                length=20,
            ),
            nullable=True,
        ),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.CheckConstraint("(left_at IS NULL) = (outcome IS NULL)", name=op.f("ck_visit_ended_has_outcome")),
        sa.CheckConstraint("number >= 1", name=op.f("ck_visit_number_positive")),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"], name=op.f("fk_visit_job_id_job")),
        sa.ForeignKeyConstraint(["technician_id"], ["technician.id"], name=op.f("fk_visit_technician_id_technician")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_visit")),
        sa.UniqueConstraint("job_id", "number", name=op.f("uq_visit_job_id_number")),
    )
    with op.batch_alter_table("visit", schema=None) as batch_op:
        batch_op.create_index("ix_visit_left_at", ["left_at"], unique=False)

    op.create_table(
        "photo",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("visit_id", sa.Integer(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("format", sa.String(length=10), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("taken_lat", sa.Float(), nullable=True),
        sa.Column("taken_lon", sa.Float(), nullable=True),
        sa.Column(
            "verdict",
            sa.Enum("verified", "mismatch", "no_metadata", name="photoverdict", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("distance_m", sa.Float(), nullable=True),
        sa.Column("time_difference_seconds", sa.Integer(), nullable=True),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("uploaded_by", sa.String(length=80), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"], name=op.f("fk_photo_job_id_job")),
        sa.ForeignKeyConstraint(["visit_id"], ["visit.id"], name=op.f("fk_photo_visit_id_visit")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_photo")),
        sa.UniqueConstraint("job_id", "sha256", name=op.f("uq_photo_job_id_sha256")),
    )
    with op.batch_alter_table("photo", schema=None) as batch_op:
        batch_op.create_index("ix_photo_sha256", ["sha256"], unique=False)

    op.create_table(
        "signoff",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("visit_id", sa.Integer(), nullable=False),
        sa.Column("photo_id", sa.Integer(), nullable=False),
        sa.Column("signer_name", sa.String(length=200), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"], name=op.f("fk_signoff_job_id_job")),
        sa.ForeignKeyConstraint(["photo_id"], ["photo.id"], name=op.f("fk_signoff_photo_id_photo")),
        sa.ForeignKeyConstraint(["visit_id"], ["visit.id"], name=op.f("fk_signoff_visit_id_visit")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signoff")),
        sa.UniqueConstraint("visit_id", name=op.f("uq_signoff_visit_id")),
    )
    with op.batch_alter_table("signoff", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_signoff_job_id"), ["job_id"], unique=False)

    op.create_table(
        "job_callback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("visit_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("reached", sa.Boolean(), nullable=False),
        sa.Column("fixed", sa.Boolean(), nullable=True),
        sa.Column("satisfaction", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("retry_after", sa.DateTime(timezone=True), nullable=True),
        sa.Column("called_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("called_by", sa.String(length=80), nullable=False),
        sa.CheckConstraint("attempt >= 1", name=op.f("ck_job_callback_attempt_positive")),
        sa.CheckConstraint(
            "reached OR (fixed IS NULL AND satisfaction IS NULL)", name=op.f("ck_job_callback_unreached_has_no_answers")
        ),
        sa.CheckConstraint(
            "satisfaction IS NULL OR satisfaction BETWEEN 1 AND 5", name=op.f("ck_job_callback_satisfaction_range")
        ),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"], name=op.f("fk_job_callback_job_id_job")),
        sa.ForeignKeyConstraint(["visit_id"], ["visit.id"], name=op.f("fk_job_callback_visit_id_visit")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_callback")),
    )
    with op.batch_alter_table("job_callback", schema=None) as batch_op:
        batch_op.create_index("ix_job_callback_job_id_id", ["job_id", "id"], unique=False)
        batch_op.create_index("ix_job_callback_retry_after", ["retry_after"], unique=False)

    op.create_table(
        "compliance_review",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("visit_id", sa.Integer(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("reviewed_by", sa.String(length=80), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("passed OR reason IS NOT NULL", name=op.f("ck_compliance_review_failure_has_reason")),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"], name=op.f("fk_compliance_review_job_id_job")),
        sa.ForeignKeyConstraint(["visit_id"], ["visit.id"], name=op.f("fk_compliance_review_visit_id_visit")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_review")),
    )
    with op.batch_alter_table("compliance_review", schema=None) as batch_op:
        batch_op.create_index("ix_compliance_review_job_id_id", ["job_id", "id"], unique=False)


def downgrade() -> None:
    # Closed jobs were completed jobs; the status goes back to the one the old code knows.
    op.execute("UPDATE job SET status = 'completed' WHERE status = 'closed'")
    with op.batch_alter_table("compliance_review", schema=None) as batch_op:
        batch_op.drop_index("ix_compliance_review_job_id_id")
    op.drop_table("compliance_review")
    with op.batch_alter_table("job_callback", schema=None) as batch_op:
        batch_op.drop_index("ix_job_callback_retry_after")
        batch_op.drop_index("ix_job_callback_job_id_id")
    op.drop_table("job_callback")
    with op.batch_alter_table("signoff", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_signoff_job_id"))
    op.drop_table("signoff")
    with op.batch_alter_table("photo", schema=None) as batch_op:
        batch_op.drop_index("ix_photo_sha256")
    op.drop_table("photo")
    with op.batch_alter_table("visit", schema=None) as batch_op:
        batch_op.drop_index("ix_visit_left_at")
    op.drop_table("visit")
    if op.get_bind().dialect.name == "sqlite":
        # Dropping columns rebuilds the job table on SQLite; with foreign keys enforced that would
        # cascade-delete every job's timeline. Alembic's own engine has them off.
        assert op.get_bind().exec_driver_sql("PRAGMA foreign_keys").scalar() == 0, "run with foreign keys off"
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_column("return_visits")
        batch_op.drop_column("closed_at")
