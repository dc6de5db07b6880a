"""回访 and outbound calls: the follow-ups owed on closed tickets, and every outbound call

Two new tables (nothing existing changes): ``followups``, one row per follow-up call owed on a
ticket that reached 已完成 (its number as the ticket had it, attempts, the last result, in
flight or not, resolved and satisfaction when answered, the worklist reason when the machine
gave up, the supervisors' flag when the customer said it was not resolved); and
``outbound_calls``, every call placed through the outbound trunk (its Originate channel id,
purpose, the number dialled, ticket, follow-up, who or what started it, when, how it ended).
And one new column: ``call_facts.caller`` (the caller's number, "" for the rows before it and
for queue_log's), which the call-back list of abandoned callers reads.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 11:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("call_facts") as batch:
        batch.add_column(
            sa.Column("caller", sa.String(length=32), server_default="", nullable=False)
        )
        batch.create_index("ix_call_facts_caller", ["caller"])
    op.create_table(
        "followups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("desk", sa.String(length=40), nullable=True),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_result", sa.String(length=16), nullable=True),
        sa.Column("in_flight", sa.Boolean(), nullable=False),
        sa.Column("resolved", sa.Boolean(), nullable=True),
        sa.Column("satisfaction", sa.String(length=24), nullable=True),
        sa.Column("worklist_reason", sa.String(length=120), nullable=True),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    for column in ("ticket_id", "created_at", "status", "in_flight", "flagged"):
        op.create_index(f"ix_followups_{column}", "followups", [column])
    op.create_table(
        "outbound_calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.String(length=150), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("followup_id", sa.Integer(), nullable=True),
        sa.Column("started_by", sa.String(length=128), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("result", sa.String(length=16), nullable=True),
        sa.Column("dial_status", sa.String(length=32), nullable=True),
        sa.Column("device", sa.String(length=80), nullable=True),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["followup_id"], ["followups.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("channel_id"),
    )
    for column in ("purpose", "number", "ticket_id", "followup_id", "started_at"):
        op.create_index(f"ix_outbound_calls_{column}", "outbound_calls", [column])


def downgrade() -> None:
    # Not supported: going back means restoring the backup taken before `ivr db upgrade`.
    raise NotImplementedError("downgrades are not supported: restore the backup instead")
