"""survey answers: the post-call survey's outcome, one per call

One new table (nothing existing changes): ``survey_answers``, one row per call by its
Linkedid (the key its ticket and its recording have too), with the recording, the desk,
queue and agent (queue member and 工号), the call's language, the outcome (satisfied, basically
satisfied, dissatisfied, no answer, wrong key, hung up during survey, caller hung up, off, not
asked), the key pressed and when the call ended.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 10:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OUTCOMES = (
    "satisfied",
    "basically satisfied",
    "dissatisfied",
    "no answer",
    "wrong key",
    "hung up during survey",
    "caller hung up",
    "off",
    "not asked",
)


def upgrade() -> None:
    op.create_table(
        "survey_answers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("linkedid", sa.String(length=150), nullable=False),
        sa.Column("recording_id", sa.Integer(), nullable=True),
        sa.Column("desk", sa.String(length=40), nullable=True),
        sa.Column("queue", sa.String(length=40), nullable=True),
        sa.Column("agent", sa.String(length=80), nullable=True),
        sa.Column("work_number", sa.String(length=12), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column(
            "outcome",
            sa.Enum(*OUTCOMES, name="surveyoutcome", native_enum=False, length=24),
            nullable=False,
        ),
        sa.Column("key", sa.String(length=1), nullable=True),
        sa.Column("call_ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["recording_id"], ["recordings.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("linkedid"),
    )
    op.create_index("ix_survey_answers_recording_id", "survey_answers", ["recording_id"])
    op.create_index("ix_survey_answers_desk", "survey_answers", ["desk"])
    op.create_index("ix_survey_answers_work_number", "survey_answers", ["work_number"])
    op.create_index("ix_survey_answers_outcome", "survey_answers", ["outcome"])
    op.create_index("ix_survey_answers_call_ended_at", "survey_answers", ["call_ended_at"])


def downgrade() -> None:
    # Not supported: going back means restoring the backup taken before `ivr db upgrade`.
    raise NotImplementedError("downgrades are not supported: restore the backup instead")
