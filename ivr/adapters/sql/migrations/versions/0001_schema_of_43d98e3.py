"""The schema of the last release before migrations (43d98e3)

Exactly the tables, columns, constraints and indexes that release's ``create_all`` made on
SQLite and on PostgreSQL (tests/integration/test_migrations.py compares them with its frozen
DDL), so a database it made is adopted by stamping it with this revision. Never edit it:
a schema change is a new revision.

Revision ID: 0001
Revises:
Create Date: 2026-12-06 04:00:52.061595
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column(
            "role",
            sa.Enum("qa", "supervisor", "admin", name="role", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("username"),
    )
    op.create_table(
        "voice_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uniqueid", sa.String(length=150), nullable=False),
        sa.Column("did", sa.String(length=32), nullable=False),
        sa.Column("caller", sa.String(length=32), nullable=False),
        sa.Column("desk", sa.String(length=40), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("file_name", sa.String(length=200), nullable=False),
        sa.Column("duration_s", sa.Double(), nullable=False),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("uniqueid"),
    )
    op.create_index("ix_voice_messages_desk", "voice_messages", ["desk"])
    op.create_index("ix_voice_messages_recorded_at", "voice_messages", ["recorded_at"])

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=255), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="SET NULL"),
    )
    op.create_index("ix_audit_log_action", "audit_log", ["action"])
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_user_id", "audit_log", ["user_id"])

    op.create_table(
        "recordings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("linkedid", sa.String(length=150), nullable=False),
        sa.Column("uniqueid", sa.String(length=150), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("did", sa.String(length=32), nullable=False),
        sa.Column("caller", sa.String(length=32), nullable=False),
        sa.Column("caller_reversed", sa.String(length=32), nullable=False),
        sa.Column("account", sa.String(length=32), nullable=True),
        sa.Column("category", sa.String(length=40), nullable=True),
        sa.Column("desk", sa.String(length=40), nullable=True),
        sa.Column("queue", sa.String(length=40), nullable=True),
        sa.Column("agent", sa.String(length=80), nullable=True),
        sa.Column("emergency", sa.Boolean(), nullable=False),
        sa.Column("wait_s", sa.Double(), nullable=True),
        sa.Column("duration_s", sa.Double(), nullable=True),
        sa.Column("file_name", sa.String(length=200), nullable=True),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("audio_s", sa.Double(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "ok",
                "empty",
                "corrupt",
                "incomplete",
                "deleted",
                name="recordingstatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("status_detail", sa.String(length=255), nullable=True),
        sa.Column("voice_message_id", sa.Integer(), nullable=True),
        sa.Column("transcript_id", sa.Integer(), nullable=True),
        sa.Column("catalogued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("linkedid"),
        sa.ForeignKeyConstraint(["voice_message_id"], ["voice_messages.id"], ondelete="SET NULL"),
        # transcripts refers back to recordings: inline on SQLite (it has no ALTER ... ADD
        # CONSTRAINT and checks no reference at CREATE), added below where ALTER exists
        sa.ForeignKeyConstraint(
            ["transcript_id"], ["transcripts.id"], ondelete="SET NULL", use_alter=True
        ),
    )
    op.create_index("ix_recordings_account", "recordings", ["account"])
    op.create_index("ix_recordings_agent", "recordings", ["agent"])
    op.create_index("ix_recordings_agent_started", "recordings", ["agent", "started_at"])
    op.create_index("ix_recordings_caller", "recordings", ["caller"])
    op.create_index("ix_recordings_caller_reversed", "recordings", ["caller_reversed"])
    op.create_index("ix_recordings_desk", "recordings", ["desk"])
    op.create_index("ix_recordings_desk_started", "recordings", ["desk", "started_at"])
    op.create_index("ix_recordings_did", "recordings", ["did"])
    op.create_index("ix_recordings_duration_s", "recordings", ["duration_s"])
    op.create_index("ix_recordings_emergency", "recordings", ["emergency"])
    op.create_index("ix_recordings_emergency_started", "recordings", ["emergency", "started_at"])
    op.create_index("ix_recordings_queue", "recordings", ["queue"])
    op.create_index("ix_recordings_started_at", "recordings", ["started_at"])
    op.create_index("ix_recordings_started_id", "recordings", ["started_at", "id"])
    op.create_index("ix_recordings_status", "recordings", ["status"])
    op.create_index("ix_recordings_transcript_id", "recordings", ["transcript_id"])
    op.create_index("ix_recordings_uniqueid", "recordings", ["uniqueid"])

    op.create_table(
        "sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_digest", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_digest"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
    )
    op.create_index("ix_sessions_expires_at", "sessions", ["expires_at"])
    op.create_index("ix_sessions_user_id", "sessions", ["user_id"])

    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recording_id", sa.Integer(), nullable=False),
        sa.Column("reviewer_id", sa.Integer(), nullable=True),
        sa.Column("reviewer", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("corrects_id", sa.Integer(), nullable=True),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("total", sa.Double(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["recording_id"], ["recordings.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["reviewer_id"], ["users.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(
            ["corrects_id"],
            ["reviews.id"],
        ),
    )
    op.create_index("ix_reviews_recording_id", "reviews", ["recording_id"])

    op.create_table(
        "tickets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("linkedid", sa.String(length=150), nullable=False),
        sa.Column("recording_id", sa.Integer(), nullable=True),
        sa.Column("voice_message_id", sa.Integer(), nullable=True),
        sa.Column("desk", sa.String(length=40), nullable=True),
        sa.Column("category", sa.String(length=40), nullable=True),
        sa.Column("caller", sa.String(length=32), nullable=False),
        sa.Column("account", sa.String(length=32), nullable=True),
        sa.Column("agent", sa.String(length=80), nullable=True),
        sa.Column("emergency", sa.Boolean(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "待派单",
                "处理中",
                "待验收",
                "已完成",
                name="ticketstate",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("level", sa.String(length=4), nullable=True),
        sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("danger", sa.Boolean(), nullable=False),
        sa.Column("danger_words", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("linkedid"),
        sa.ForeignKeyConstraint(["recording_id"], ["recordings.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["voice_message_id"], ["voice_messages.id"], ondelete="SET NULL"),
    )
    op.create_index("ix_tickets_created_at", "tickets", ["created_at"])
    op.create_index("ix_tickets_danger", "tickets", ["danger"])
    op.create_index("ix_tickets_deadline_at", "tickets", ["deadline_at"])
    op.create_index("ix_tickets_desk", "tickets", ["desk"])
    op.create_index("ix_tickets_emergency", "tickets", ["emergency"])
    op.create_index("ix_tickets_priority", "tickets", ["priority"])
    op.create_index("ix_tickets_recording_id", "tickets", ["recording_id"])
    op.create_index("ix_tickets_state", "tickets", ["state"])
    op.create_index("ix_tickets_voice_message_id", "tickets", ["voice_message_id"])

    op.create_table(
        "transcripts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_key", sa.String(length=64), nullable=False),
        sa.Column("recording_id", sa.Integer(), nullable=True),
        sa.Column("voice_message_id", sa.Integer(), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("model", sa.String(length=120), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("words", sa.JSON(), nullable=False),
        sa.Column("confidence", sa.Double(), nullable=True),
        sa.Column("audio_s", sa.Double(), nullable=False),
        sa.Column("decode_s", sa.Double(), nullable=False),
        sa.Column("danger_words", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source_key"),
        sa.ForeignKeyConstraint(["recording_id"], ["recordings.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["voice_message_id"], ["voice_messages.id"], ondelete="SET NULL"),
    )
    op.create_index("ix_transcripts_recording_id", "transcripts", ["recording_id"])
    if op.get_bind().dialect.supports_alter:  # unnamed, as create_all made it
        op.create_foreign_key(
            None, "recordings", "transcripts", ["transcript_id"], ["id"], ondelete="SET NULL"
        )

    op.create_table(
        "stt_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_key", sa.String(length=64), nullable=False),
        sa.Column("recording_id", sa.Integer(), nullable=True),
        sa.Column("voice_message_id", sa.Integer(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "queued",
                "no model",
                "model error",
                "running",
                "retrying",
                "done",
                "silent",
                "dead",
                name="sttjobstatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("stream_id", sa.String(length=40), nullable=True),
        sa.Column("transcript_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source_key"),
        sa.ForeignKeyConstraint(["recording_id"], ["recordings.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["voice_message_id"], ["voice_messages.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["transcript_id"], ["transcripts.id"], ondelete="SET NULL"),
    )
    op.create_index("ix_stt_jobs_status", "stt_jobs", ["status"])

    op.create_table(
        "ticket_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("source_key", sa.String(length=64), nullable=True),
        sa.Column("author", sa.String(length=128), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("transcript_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("ticket_id", "source_key"),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["transcript_id"], ["transcripts.id"], ondelete="SET NULL"),
    )
    op.create_index("ix_ticket_notes_ticket_id", "ticket_notes", ["ticket_id"])

    op.create_table(
        "ticket_transitions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column(
            "from_state",
            sa.Enum(
                "待派单",
                "处理中",
                "待验收",
                "已完成",
                name="ticketstate",
                native_enum=False,
                length=16,
            ),
            nullable=True,
        ),
        sa.Column(
            "to_state",
            sa.Enum(
                "待派单",
                "处理中",
                "待验收",
                "已完成",
                name="ticketstate",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="SET NULL"),
    )
    op.create_index("ix_ticket_transitions_ticket_id", "ticket_transitions", ["ticket_id"])


def downgrade() -> None:
    # Not supported: going back means restoring the backup taken before `ivr db upgrade`.
    raise NotImplementedError("downgrades are not supported: restore the backup instead")
