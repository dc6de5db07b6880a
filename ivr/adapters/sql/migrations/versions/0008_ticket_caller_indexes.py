"""tickets by caller and by account: the agents' screen pop reads them on every ring

Two indexes on ``tickets``: ``caller`` and ``account``. The screen pop looks up the caller's
and the account's tickets while the phone rings (``ivr/adapters/sql/caller_history.py``);
without them each lookup read the whole table (60 ms at 20,000 tickets, and 50 agents rung
at once waited 1.7 s for their pops: ``benchmarks/screen_pop.py``).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 10:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_tickets_caller", "tickets", ["caller"])
    op.create_index("ix_tickets_account", "tickets", ["account"])


def downgrade() -> None:
    # Not supported: going back means restoring the backup taken before `ivr db upgrade`.
    raise NotImplementedError("downgrades are not supported: restore the backup instead")
