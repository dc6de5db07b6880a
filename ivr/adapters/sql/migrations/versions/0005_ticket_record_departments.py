"""the agent's 工单 record, its draft, the department's part, and users' departments

Columns on ``tickets`` (all empty on existing tickets): the record the agent saves while
talking (form of address, contact number and its read-back, address, problem type, when and
where, description, urgency, complaint, outcome with the reply or the department, who saved it
and when), the draft kept as the agent types, the department's part (taken by, result,
reported), and the hotline's reply to the customer (content, time, by whom). A new table
``user_departments`` lists the departments of each user of the role ``department``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 10:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    # Plain ADD COLUMN on both backends (nullable, or with a server default): nothing copied.
    columns: list[sa.Column[object]] = [
        sa.Column("surname", sa.String(length=16), nullable=True),
        sa.Column("title", sa.String(length=4), nullable=True),
        sa.Column("contact_number", sa.String(length=20), nullable=True),
        sa.Column("contact_confirmed", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("estate", sa.String(length=60), nullable=True),
        sa.Column("building", sa.String(length=20), nullable=True),
        sa.Column("unit", sa.String(length=20), nullable=True),
        sa.Column("room", sa.String(length=20), nullable=True),
        sa.Column("problem_category", sa.String(length=40), nullable=True),
        sa.Column("problem_subcategory", sa.String(length=40), nullable=True),
        sa.Column("happened_at", _WHEN, nullable=True),
        sa.Column("place", sa.String(length=16), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("urgency", sa.String(length=16), nullable=True),
        sa.Column("complaint", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("reply", sa.Text(), nullable=True),
        sa.Column("replied_at", _WHEN, nullable=True),
        sa.Column("department", sa.String(length=40), nullable=True),
        sa.Column("recorded_at", _WHEN, nullable=True),
        sa.Column("recorded_by", sa.String(length=128), nullable=True),
        sa.Column("draft", sa.JSON(), nullable=True),
        sa.Column("draft_at", _WHEN, nullable=True),
        sa.Column("taken_by", sa.String(length=128), nullable=True),
        sa.Column("taken_at", _WHEN, nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("reported_at", _WHEN, nullable=True),
        sa.Column("customer_reply", sa.Text(), nullable=True),
        sa.Column("customer_reply_at", _WHEN, nullable=True),
        sa.Column("customer_reply_by", sa.String(length=128), nullable=True),
    ]
    for column in columns:
        op.add_column("tickets", column)
    op.create_index("ix_tickets_department", "tickets", ["department"])
    op.create_table(
        "user_departments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("department", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "department"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
    )
    op.create_index("ix_user_departments_user_id", "user_departments", ["user_id"])
    op.create_index("ix_user_departments_department", "user_departments", ["department"])


def downgrade() -> None:
    # Not supported: going back means restoring the backup taken before `ivr db upgrade`.
    raise NotImplementedError("downgrades are not supported: restore the backup instead")
