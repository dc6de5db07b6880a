"""repeat complaints: a complaint's link to the first complaint it repeats

Two columns on ``tickets`` (empty on existing tickets): ``repeat_of``, the id of the first
complaint of the matter (indexed; a plain column, no foreign key, so that both backends add
it in place), and ``repeat_state``: marked (when the agent's record was saved), confirmed or
unlinked by the agent.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 11:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("tickets", sa.Column("repeat_of", sa.Integer(), nullable=True))
    op.add_column("tickets", sa.Column("repeat_state", sa.String(length=12), nullable=True))
    op.create_index("ix_tickets_repeat_of", "tickets", ["repeat_of"])


def downgrade() -> None:
    # Not supported: going back means restoring the backup taken before `ivr db upgrade`.
    raise NotImplementedError("downgrades are not supported: restore the backup instead")
