"""retention purges and residents' export and erasure: the privacy_runs audit table

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 12:40:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import models.base


revision: str = '0013'
down_revision: Union[str, Sequence[str], None] = '0012'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('privacy_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('dry_run', sa.Boolean(), nullable=False),
    sa.Column('actor_kind', sa.String(length=20), nullable=False),
    sa.Column('actor_name', sa.String(length=100), nullable=False),
    sa.Column('subject_digest', sa.String(length=64), nullable=True),
    sa.Column('started_at', models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('counts', sa.JSON(), nullable=False),
    sa.Column('cutoffs', sa.JSON(), nullable=False),
    sa.Column('longest_batch_ms', sa.Float(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('lock_key', sa.String(length=40), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_privacy_runs')),
    sa.UniqueConstraint('lock_key', name=op.f('uq_privacy_runs_lock_key'))
    )
    with op.batch_alter_table('privacy_runs', schema=None) as batch_op:
        batch_op.create_index('ix_privacy_runs_kind_started', ['kind', 'started_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_privacy_runs_subject_digest'), ['subject_digest'], unique=False)
    # The retention purge finds what is due by time on tables that had no index for it.
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index('ix_messages_created_at', ['created_at'], unique=False)
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.create_index('ix_tickets_closed_at', ['closed_at'], unique=False)
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.create_index('ix_conversations_updated_at', ['updated_at'], unique=False)
    # Its batches change a ticket's or a conversation's copies elsewhere by id.
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.create_index('ix_notifications_ticket_id', ['ticket_id'], unique=False)
    with op.batch_alter_table('callback_tasks', schema=None) as batch_op:
        batch_op.create_index('ix_callback_tasks_conversation_id', ['conversation_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('callback_tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_callback_tasks_conversation_id')
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index('ix_notifications_ticket_id')
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.drop_index('ix_conversations_updated_at')
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_closed_at')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_created_at')
    op.drop_table('privacy_runs')
