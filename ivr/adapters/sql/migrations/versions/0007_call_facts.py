"""call facts: each call's class, wait, agent and talk time, stored when it ends

One new table, ``call_facts`` (nothing existing changes): one row per Linkedid, written by the
ami role when the answer-rate reducer classifies the call (the agent who answered by member
name and by 工号) (and by ``ivr report recompute``
from queue_log for a call it lacks), so the monthly figures come from SQL and survive the
loss of Redis.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 10:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "call_facts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("linkedid", sa.String(length=150), nullable=False),
        sa.Column("callid", sa.String(length=150), nullable=False),
        sa.Column("klass", sa.String(length=16), nullable=False),
        sa.Column("queue", sa.String(length=40), nullable=False),
        sa.Column("emergency", sa.Boolean(), nullable=False),
        sa.Column("threshold_s", sa.Double(), nullable=False),
        sa.Column("wait_s", sa.Double(), nullable=False),
        sa.Column("counted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("agent", sa.String(length=80), nullable=False),
        sa.Column("work_number", sa.String(length=12), nullable=False),
        sa.Column("talk_s", sa.Double(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("linkedid"),
    )
    for column in ("callid", "klass", "queue", "emergency", "counted_at", "work_number"):
        op.create_index(f"ix_call_facts_{column}", "call_facts", [column])


def downgrade() -> None:
    # Not supported: going back means restoring the backup taken before `ivr db upgrade`.
    raise NotImplementedError("downgrades are not supported: restore the backup instead")
