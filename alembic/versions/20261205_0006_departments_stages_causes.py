"""departments, the stages of a job they own with internal targets, and the cause catalogue

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 07:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The brief's seed, frozen here as it was when this migration was written.
NOW = datetime(2026, 12, 5, tzinfo=UTC)
DEPARTMENTS = [
    ("customer_service", "Customer service", 120),
    ("dispatch", "Dispatch", 60),
    ("warehouse", "Warehouse", 240),
    ("logistics", "Logistics", 240),
    ("field", "Field service", 240),
    ("quality", "Quality", 480),
    ("supplier", "Supplier management", 1440),
]
STAGES = [
    ("dispatch", "dispatch", 30),
    ("central_warehouse", "warehouse", 480),
    ("shipment", "logistics", 1440),
    ("field", "field", 480),
    ("callback", "customer_service", 1440),
]
CAUSES = [
    ("dispatch_late", "Nobody was sent in time", "dispatch"),
    ("part_late", "The part came late", "warehouse"),
    ("wrong_part", "The wrong part was sent", "warehouse"),
    ("shipment_late", "The shipment was late on the road", "logistics"),
    ("no_show", "The technician did not come in the agreed window", "field"),
    ("misdiagnosis", "The fault was misdiagnosed", "field"),
    ("repair_failed", "The repair did not hold", "field"),
    ("callback_late", "The customer was not called back in time", "customer_service"),
    ("product_defect", "A defect of the product itself", "quality"),
    ("supplier_late", "The supplier delivered late", "supplier"),
    ("customer_absent", "The customer was not there", None),
    ("customer_rescheduled", "The customer asked for a later visit", None),
]


def upgrade() -> None:
    department = op.create_table(
        "department",
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("reply_target_minutes", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), server_default="1", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=80), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_department")),
    )
    stage_target = op.create_table(
        "stage_target",
        sa.Column(
            "stage",
            sa.Enum(
                "dispatch",
                "central_warehouse",
                "shipment",
                "field",
                "callback",
                name="stage",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("department", sa.String(length=40), nullable=False),
        sa.Column("target_minutes", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["department"], ["department.code"], name=op.f("fk_stage_target_department_department")
        ),
        sa.PrimaryKeyConstraint("stage", name=op.f("pk_stage_target")),
    )
    cause_code = op.create_table(
        "cause_code",
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("department", sa.String(length=40), nullable=True),
        sa.Column("active", sa.Boolean(), server_default="1", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(["department"], ["department.code"], name=op.f("fk_cause_code_department_department")),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_cause_code")),
    )
    op.bulk_insert(
        department,
        [
            {"code": c, "name": n, "reply_target_minutes": m, "active": True, "updated_at": NOW, "updated_by": "system"}
            for c, n, m in DEPARTMENTS
        ],
    )
    op.bulk_insert(stage_target, [{"stage": s, "department": d, "target_minutes": m} for s, d, m in STAGES])
    op.bulk_insert(
        cause_code,
        [
            {"code": c, "label": lbl, "department": d, "active": True, "updated_at": NOW, "updated_by": "system"}
            for c, lbl, d in CAUSES
        ],
    )


def downgrade() -> None:
    op.drop_table("cause_code")
    op.drop_table("stage_target")
    op.drop_table("department")
