"""agent device: which device rings while an agent is logged in, chosen at log-in

One column on ``agents``: ``device``, ``desk`` (the desk phone, endpoint ``<工号>``) or
``browser`` (the agent desk page's softphone, endpoint ``<工号>-webrtc``). Existing agents
get ``desk``, which is what their queue membership was until now.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 10:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN with a default on both backends: nothing is copied.
    op.add_column(
        "agents",
        sa.Column("device", sa.String(length=8), nullable=False, server_default="desk"),
    )


def downgrade() -> None:
    # Not supported: going back means restoring the backup taken before `ivr db upgrade`.
    raise NotImplementedError("downgrades are not supported: restore the backup instead")
