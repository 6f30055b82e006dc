"""outbound calls: direction, purpose, outage, callback task and SIP status on calls; the dialler's queue

Revision ID: 0008
Revises: 0007
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = '0008'
down_revision: Union[str, Sequence[str], None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('direction', sa.String(length=8), server_default='inbound', nullable=False))
        batch_op.add_column(sa.Column('purpose', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('outage_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('callback_task_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('sip_status', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_calls_outage_id_outages'), 'outages', ['outage_id'], ['id'],
                                    ondelete='SET NULL')
        batch_op.create_foreign_key(batch_op.f('fk_calls_callback_task_id_callback_tasks'), 'callback_tasks',
                                    ['callback_task_id'], ['id'], ondelete='SET NULL')
        batch_op.create_index('ix_calls_direction_id', ['direction', 'id'], unique=False)
    op.create_table(
        'outbound_jobs',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('purpose', sa.String(length=20), nullable=False),
        sa.Column('phone', sa.String(length=32), nullable=False),
        sa.Column('ticket_id', sa.Integer(), nullable=True),
        sa.Column('callback_task_id', sa.Integer(), nullable=True),
        sa.Column('outage_id', sa.Integer(), nullable=True),
        sa.Column('state', sa.String(length=12), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('max_attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column('last_outcome', sa.String(length=20), nullable=True),
        sa.Column('created_at', models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], ondelete='CASCADE',
                                name=op.f('fk_outbound_jobs_ticket_id_tickets')),
        sa.ForeignKeyConstraint(['callback_task_id'], ['callback_tasks.id'], ondelete='CASCADE',
                                name=op.f('fk_outbound_jobs_callback_task_id_callback_tasks')),
        sa.ForeignKeyConstraint(['outage_id'], ['outages.id'], ondelete='CASCADE',
                                name=op.f('fk_outbound_jobs_outage_id_outages')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_outbound_jobs')),
        sa.UniqueConstraint('outage_id', 'phone', name=op.f('uq_outbound_jobs_outage_id')),
    )
    with op.batch_alter_table('outbound_jobs', schema=None) as batch_op:
        batch_op.create_index('ix_outbound_jobs_next_attempt', ['next_attempt_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('outbound_jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_outbound_jobs_next_attempt')
    op.drop_table('outbound_jobs')
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_index('ix_calls_direction_id')
        batch_op.drop_constraint(batch_op.f('fk_calls_callback_task_id_callback_tasks'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_calls_outage_id_outages'), type_='foreignkey')
        batch_op.drop_column('sip_status')
        batch_op.drop_column('callback_task_id')
        batch_op.drop_column('outage_id')
        batch_op.drop_column('purpose')
        batch_op.drop_column('direction')
