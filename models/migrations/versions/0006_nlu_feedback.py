"""nlu feedback: agents' corrections of the bot's category

Revision ID: 0006
Revises: 0005
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = '0006'
down_revision: Union[str, Sequence[str], None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'nlu_feedback',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('conversation_id', sa.Integer(), nullable=False),
        sa.Column('message_id', sa.Integer(), nullable=True),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('bot_intent', sa.String(length=40), nullable=True),
        sa.Column('correct_intent', sa.String(length=40), nullable=False),
        sa.Column('staff_id', sa.Integer(), nullable=True),
        sa.Column('created_at', models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], ondelete='CASCADE',
                                name=op.f('fk_nlu_feedback_conversation_id_conversations')),
        sa.ForeignKeyConstraint(['message_id'], ['messages.id'], ondelete='SET NULL',
                                name=op.f('fk_nlu_feedback_message_id_messages')),
        sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], name=op.f('fk_nlu_feedback_staff_id_staff')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_nlu_feedback')),
    )
    with op.batch_alter_table('nlu_feedback', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_nlu_feedback_conversation_id'), ['conversation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_nlu_feedback_created_at'), ['created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('nlu_feedback', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_nlu_feedback_created_at'))
        batch_op.drop_index(batch_op.f('ix_nlu_feedback_conversation_id'))
    op.drop_table('nlu_feedback')
