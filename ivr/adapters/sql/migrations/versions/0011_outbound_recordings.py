"""Agents' outbound calls are recorded: a recording's direction, and an outbound call's recording

Two new columns: ``recordings.direction`` (``inbound``, a call to the hotline, for every row
before this revision; ``outbound``, an agent's click-to-call from the worklist) and
``outbound_calls.recording_id`` (the catalogued recording of that call; through the outbound
call it belongs to its ticket and follow-up).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 14:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("recordings") as batch:
        batch.add_column(
            sa.Column("direction", sa.String(length=8), server_default="inbound", nullable=False)
        )
        batch.create_index("ix_recordings_direction", ["direction"])
    with op.batch_alter_table("outbound_calls") as batch:
        batch.add_column(sa.Column("recording_id", sa.Integer(), nullable=True))
        # named (as the model names it): SQLite's batch mode cannot add an unnamed key
        batch.create_foreign_key(
            "fk_outbound_calls_recording_id", "recordings", ["recording_id"], ["id"],
            ondelete="SET NULL",
        )  # fmt: skip
        batch.create_index("ix_outbound_calls_recording_id", ["recording_id"])


def downgrade() -> None:
    # Not supported: going back means restoring the backup taken before `ivr db upgrade`.
    raise NotImplementedError("downgrades are not supported: restore the backup instead")
