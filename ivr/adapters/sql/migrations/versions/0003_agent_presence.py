"""agent presence: logged in, paused and why, kept by the service

Four columns on ``agents`` (existing agents start logged out): ``logged_in``, ``paused``,
``pause_reason`` (小休, 培训, 会议, 后处理) and ``presence_at`` (when it last changed). The ami
role makes Asterisk's queue membership follow them, so it survives an Asterisk or ami-role
restart.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 07:35:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN on both backends (SQLite appends the columns to the table's CREATE
    # statement; nothing is copied).
    op.add_column(
        "agents", sa.Column("logged_in", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.add_column(
        "agents", sa.Column("paused", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.add_column("agents", sa.Column("pause_reason", sa.String(length=16), nullable=True))
    op.add_column("agents", sa.Column("presence_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # Not supported: going back means restoring the backup taken before `ivr db upgrade`.
    raise NotImplementedError("downgrades are not supported: restore the backup instead")
