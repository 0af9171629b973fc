"""Baseline: the schema hpoqueue made with create_all before it had schema versions (up to commit 468e3dc).

A database without an alembic_version table but with these tables is this revision; it is stamped, not
created again. Written out here, not taken from _models.py, so later model changes leave it as it was.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    when = sa.DateTime(timezone=True)
    op.create_table(
        "experiments",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("work_dir", sa.Text(), nullable=False),
        sa.Column("optimize_mode", sa.String(16), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("max_trial_number", sa.Integer(), nullable=True),
        sa.Column("max_duration", sa.Float(), nullable=True),
        sa.Column("next_seq", sa.Integer(), nullable=False),
        sa.Column("created_at", when, nullable=False),
        sa.Column("started_at", when, nullable=True),
        sa.Column("ended_at", when, nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
    )
    op.create_table(
        "trials",
        sa.Column("id", sa.String(96), primary_key=True),
        sa.Column("experiment_id", sa.String(64), sa.ForeignKey("experiments.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("queue", sa.String(255), nullable=True),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("gpus", sa.JSON(), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("exit_reason", sa.Text(), nullable=True),
        sa.Column("final_value", sa.Float(), nullable=True),
        sa.Column("final_data", sa.JSON(), nullable=True),
        sa.Column("created_at", when, nullable=False),
        sa.Column("started_at", when, nullable=True),
        sa.Column("ended_at", when, nullable=True),
    )
    op.create_index("ix_trials_experiment_seq", "trials", ["experiment_id", "seq"], unique=True)
    op.create_table(
        "metrics",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("trial_id", sa.String(96), sa.ForeignKey("trials.id", ondelete="CASCADE"), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.Column("created_at", when, nullable=False),
    )
    op.create_index("ix_metrics_trial_attempt_kind_step", "metrics", ["trial_id", "attempt", "kind", "step"],
                    unique=True)
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("trial_id", sa.String(96), sa.ForeignKey("trials.id", ondelete="CASCADE"), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", when, nullable=False),
    )
    op.create_index("ix_events_trial", "events", ["trial_id"])


def downgrade() -> None:
    for table in ("events", "metrics", "trials", "experiments"):
        op.drop_table(table)
