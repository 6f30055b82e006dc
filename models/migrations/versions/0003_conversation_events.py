"""conversation audit trail

Revision ID: 0003
Revises: 0002
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'conversation_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('conversation_id', sa.Integer(), nullable=False),
        sa.Column('at', models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column('action', sa.String(length=30), nullable=False),
        sa.Column('actor_kind', sa.String(length=20), nullable=False),
        sa.Column('actor_id', sa.Integer(), nullable=True),
        sa.Column('actor_name', sa.String(length=100), nullable=False),
        sa.Column('from_status', sa.String(length=10), nullable=True),
        sa.Column('to_status', sa.String(length=10), nullable=True),
        sa.Column('data', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(['actor_id'], ['staff.id'], name=op.f('fk_conversation_events_actor_id_staff')),
        sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], ondelete='CASCADE',
                                name=op.f('fk_conversation_events_conversation_id_conversations')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_conversation_events')),
    )
    with op.batch_alter_table('conversation_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_conversation_events_conversation_id'), ['conversation_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('conversation_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_conversation_events_conversation_id'))
    op.drop_table('conversation_events')
