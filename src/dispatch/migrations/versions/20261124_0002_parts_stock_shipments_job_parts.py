"""parts: locations, catalogue, stock and its ledger, shipments, job parts; jobs can wait for parts

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 08:57:01.000174
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "location",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "kind", sa.Enum("central", "branch", name="locationkind", native_enum=False, length=20), nullable=False
        ),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("delivery_hours", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180", name=op.f("ck_location_coordinates")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_location")),
        sa.UniqueConstraint("code", name=op.f("uq_location_code")),
    )
    with op.batch_alter_table("location", schema=None) as batch_op:
        batch_op.create_index(
            "uq_location_one_central",
            ["kind"],
            unique=True,
            sqlite_where=sa.text("kind = 'central'"),
            postgresql_where=sa.text("kind = 'central'"),
        )

    op.create_table(
        "part",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("lead_time_hours", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("lead_time_hours >= 0", name=op.f("ck_part_lead_time_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_part")),
        sa.UniqueConstraint("sku", name=op.f("uq_part_sku")),
    )
    op.create_table(
        "stock",
        sa.Column("location_id", sa.Integer(), nullable=False),
        sa.Column("part_id", sa.Integer(), nullable=False),
        sa.Column("on_hand", sa.Integer(), server_default="0", nullable=False),
        sa.Column("reserved", sa.Integer(), server_default="0", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("on_hand >= 0", name=op.f("ck_stock_on_hand_not_negative")),
        sa.CheckConstraint("reserved <= on_hand", name=op.f("ck_stock_reserved_within_on_hand")),
        sa.CheckConstraint("reserved >= 0", name=op.f("ck_stock_reserved_not_negative")),
        sa.ForeignKeyConstraint(["location_id"], ["location.id"], name=op.f("fk_stock_location_id_location")),
        sa.ForeignKeyConstraint(["part_id"], ["part.id"], name=op.f("fk_stock_part_id_part")),
        sa.PrimaryKeyConstraint("location_id", "part_id", name=op.f("pk_stock")),
    )
    with op.batch_alter_table("stock", schema=None) as batch_op:
        batch_op.create_index("ix_stock_part_id", ["part_id"], unique=False)

    op.create_table(
        "shipment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("part_id", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("from_location_id", sa.Integer(), nullable=True),
        sa.Column("to_location_id", sa.Integer(), nullable=False),
        sa.Column("eta", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "status",
            sa.Enum("in_transit", "received", name="shipmentstatus", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_shipment_quantity_positive")),
        sa.ForeignKeyConstraint(
            ["from_location_id"], ["location.id"], name=op.f("fk_shipment_from_location_id_location")
        ),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"], name=op.f("fk_shipment_job_id_job")),
        sa.ForeignKeyConstraint(["part_id"], ["part.id"], name=op.f("fk_shipment_part_id_part")),
        sa.ForeignKeyConstraint(["to_location_id"], ["location.id"], name=op.f("fk_shipment_to_location_id_location")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shipment")),
    )
    with op.batch_alter_table("shipment", schema=None) as batch_op:
        batch_op.create_index("ix_shipment_part_id_status_eta", ["part_id", "status", "eta"], unique=False)

    op.create_table(
        "job_part",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("part_id", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "reserved",
                "in_transit",
                "backordered",
                "consumed",
                "released",
                name="jobpartstate",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("location_id", sa.Integer(), nullable=True),
        sa.Column("shipment_id", sa.Integer(), nullable=True),
        sa.Column("eta", sa.DateTime(timezone=True), nullable=True),
        sa.Column("returned", sa.Integer(), server_default="0", nullable=False),
        sa.Column("requested_by", sa.String(length=80), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.CheckConstraint(
            "state <> 'backordered' OR location_id IS NULL", name=op.f("ck_job_part_backorder_has_no_location")
        ),
        sa.CheckConstraint(
            "state IN ('backordered', 'released') OR location_id IS NOT NULL",
            name=op.f("ck_job_part_held_has_location"),
        ),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_job_part_quantity_positive")),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"], name=op.f("fk_job_part_job_id_job")),
        sa.ForeignKeyConstraint(["location_id"], ["location.id"], name=op.f("fk_job_part_location_id_location")),
        sa.ForeignKeyConstraint(["part_id"], ["part.id"], name=op.f("fk_job_part_part_id_part")),
        sa.ForeignKeyConstraint(["shipment_id"], ["shipment.id"], name=op.f("fk_job_part_shipment_id_shipment")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_part")),
    )
    with op.batch_alter_table("job_part", schema=None) as batch_op:
        batch_op.create_index(
            "ix_job_part_backorders",
            ["part_id"],
            unique=False,
            sqlite_where=sa.text("state = 'backordered'"),
            postgresql_where=sa.text("state = 'backordered'"),
        )
        batch_op.create_index("ix_job_part_job_id", ["job_id"], unique=False)
        batch_op.create_index("ix_job_part_shipment_id", ["shipment_id"], unique=False)

    op.create_table(
        "stock_movement",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("location_id", sa.Integer(), nullable=False),
        sa.Column("part_id", sa.Integer(), nullable=False),
        sa.Column(
            "reason",
            sa.Enum(
                "counted",
                "received",
                "reserved",
                "released",
                "consumed",
                "returned",
                "shipped",
                "arrived",
                name="movementreason",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("on_hand_change", sa.Integer(), nullable=False),
        sa.Column("reserved_change", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("shipment_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"], name=op.f("fk_stock_movement_job_id_job")),
        sa.ForeignKeyConstraint(["location_id"], ["location.id"], name=op.f("fk_stock_movement_location_id_location")),
        sa.ForeignKeyConstraint(["part_id"], ["part.id"], name=op.f("fk_stock_movement_part_id_part")),
        sa.ForeignKeyConstraint(["shipment_id"], ["shipment.id"], name=op.f("fk_stock_movement_shipment_id_shipment")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stock_movement")),
    )
    with op.batch_alter_table("stock_movement", schema=None) as batch_op:
        batch_op.create_index("ix_stock_movement_location_part", ["location_id", "part_id", "id"], unique=False)

    if op.get_bind().dialect.name == "sqlite":
        # SQLite rebuilds the job table to change its CHECK; with foreign keys enforced, dropping
        # the old table would cascade-delete every job's timeline. Alembic's own engine has them off.
        assert op.get_bind().exec_driver_sql("PRAGMA foreign_keys").scalar() == 0, "run with foreign keys off"
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("waiting_for_parts", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("parts_eta", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("predicted_breach", sa.String(length=40), nullable=True))
        # A job waiting for parts keeps its technician (to send them back); a ready one has none yet.
        batch_op.drop_constraint(op.f("ck_job_assigned_has_technician"), type_="check")
        batch_op.create_check_constraint(
            "assigned_has_technician",
            "(technician_id IS NOT NULL) OR status IN ('new', 'unable', 'cancelled', 'waiting_parts', 'ready')",
        )


def downgrade() -> None:
    # Jobs in the two new statuses go back to the nearest old one before the old rule returns.
    op.execute("UPDATE job SET status = 'new', technician_id = NULL WHERE status IN ('waiting_parts', 'ready')")
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_job_assigned_has_technician"), type_="check")
        batch_op.create_check_constraint(
            "assigned_has_technician", "(technician_id IS NOT NULL) OR status IN ('new', 'unable', 'cancelled')"
        )
        batch_op.drop_column("predicted_breach")
        batch_op.drop_column("parts_eta")
        batch_op.drop_column("waiting_for_parts")

    with op.batch_alter_table("stock_movement", schema=None) as batch_op:
        batch_op.drop_index("ix_stock_movement_location_part")

    op.drop_table("stock_movement")
    with op.batch_alter_table("job_part", schema=None) as batch_op:
        batch_op.drop_index("ix_job_part_shipment_id")
        batch_op.drop_index("ix_job_part_job_id")
        batch_op.drop_index(
            "ix_job_part_backorders",
            sqlite_where=sa.text("state = 'backordered'"),
            postgresql_where=sa.text("state = 'backordered'"),
        )

    op.drop_table("job_part")
    with op.batch_alter_table("shipment", schema=None) as batch_op:
        batch_op.drop_index("ix_shipment_part_id_status_eta")

    op.drop_table("shipment")
    with op.batch_alter_table("stock", schema=None) as batch_op:
        batch_op.drop_index("ix_stock_part_id")

    op.drop_table("stock")
    op.drop_table("part")
    with op.batch_alter_table("location", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_location_one_central",
            sqlite_where=sa.text("kind = 'central'"),
            postgresql_where=sa.text("kind = 'central'"),
        )

    op.drop_table("location")
