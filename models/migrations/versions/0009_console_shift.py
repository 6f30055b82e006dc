"""console for a whole shift: agents' presence, canned replies, and the indexes the context panel and
search need (conversations by customer and by agent, calls by account)

Revision ID: 0009
Revises: 0008
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = '0009'
down_revision: Union[str, Sequence[str], None] = '0008'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'agent_presence',
        sa.Column('staff_id', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=10), nullable=False),
        sa.Column('updated_at', models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column('last_assigned_at', models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], ondelete='CASCADE',
                                name=op.f('fk_agent_presence_staff_id_staff')),
        sa.PrimaryKeyConstraint('staff_id', name=op.f('pk_agent_presence')),
    )
    op.create_table(
        'canned_replies',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('shortcut', sa.String(length=32), nullable=False),
        sa.Column('title', sa.String(length=100), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('created_by', sa.Integer(), nullable=True),
        sa.Column('updated_at', models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['created_by'], ['staff.id'], ondelete='SET NULL',
                                name=op.f('fk_canned_replies_created_by_staff')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_canned_replies')),
        sa.UniqueConstraint('shortcut', name=op.f('uq_canned_replies_shortcut')),
    )
    op.create_index('ix_conversations_customer_id', 'conversations', ['customer_id', 'id'], unique=False)
    op.create_index('ix_conversations_agent_status', 'conversations', ['agent_id', 'status'], unique=False)
    op.create_index('ix_calls_account_id', 'calls', ['account_number', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_calls_account_id', table_name='calls')
    op.drop_index('ix_conversations_agent_status', table_name='conversations')
    op.drop_index('ix_conversations_customer_id', table_name='conversations')
    op.drop_table('canned_replies')
    op.drop_table('agent_presence')
