"""integrations: the outbox, the inbound replay guard, 12345 orders, tickets' external reference

Revision ID: 0007
Revises: 0006
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = '0007'
down_revision: Union[str, Sequence[str], None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

UTC = models.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('external_ref', sa.String(length=64), nullable=True))
        batch_op.create_index('ux_tickets_channel_external_ref', ['channel', 'external_ref'], unique=True)

    op.create_table(
        'outbox_messages',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('target', sa.String(length=20), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('message_id', sa.String(length=40), nullable=False),
        sa.Column('payload', sa.JSON(), nullable=False),
        sa.Column('ticket_id', sa.Integer(), nullable=True),
        sa.Column('state', sa.String(length=10), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', UTC, nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('created_at', UTC, nullable=False),
        sa.Column('sent_at', UTC, nullable=True),
        sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], ondelete='SET NULL',
                                name=op.f('fk_outbox_messages_ticket_id_tickets')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox_messages')),
        sa.UniqueConstraint('message_id', name=op.f('uq_outbox_messages_message_id')),
    )
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_messages_due', ['state', 'next_attempt_at'], unique=False)
        batch_op.create_index('ix_outbox_messages_key', ['target', 'key', 'id'], unique=False)
        batch_op.create_index('ix_outbox_messages_ticket', ['ticket_id', 'id'], unique=False)

    op.create_table(
        'inbound_nonces',
        sa.Column('digest', sa.String(length=64), nullable=False),
        sa.Column('target', sa.String(length=20), nullable=False),
        sa.Column('seen_at', UTC, nullable=False),
        sa.PrimaryKeyConstraint('digest', name=op.f('pk_inbound_nonces')),
    )
    with op.batch_alter_table('inbound_nonces', schema=None) as batch_op:
        batch_op.create_index('ix_inbound_nonces_seen_at', ['seen_at'], unique=False)

    op.create_table(
        'gov12345_orders',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('order_no', sa.String(length=64), nullable=False),
        sa.Column('ticket_id', sa.Integer(), nullable=False),
        sa.Column('type', sa.String(length=100), nullable=False),
        sa.Column('routed', sa.Boolean(), nullable=False),
        sa.Column('urgency', sa.String(length=10), nullable=False),
        sa.Column('accepted_at', UTC, nullable=False),
        sa.Column('sign_due_at', UTC, nullable=False),
        sa.Column('due_at', UTC, nullable=False),
        sa.Column('signed_at', UTC, nullable=True),
        sa.Column('pending_request', sa.String(length=10), nullable=True),
        sa.Column('pending_message_id', sa.String(length=40), nullable=True),
        sa.Column('pending_reason', sa.Text(), nullable=True),
        sa.Column('chases', sa.Integer(), nullable=False),
        sa.Column('last_chased_at', UTC, nullable=True),
        sa.Column('satisfaction', sa.String(length=20), nullable=True),
        sa.Column('redispatches', sa.Integer(), nullable=False),
        sa.Column('state', sa.String(length=12), nullable=False),
        sa.Column('payload', sa.JSON(), nullable=False),
        sa.Column('history', sa.JSON(), nullable=False),
        sa.Column('created_at', UTC, nullable=False),
        sa.Column('updated_at', UTC, nullable=False),
        sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], ondelete='CASCADE',
                                name=op.f('fk_gov12345_orders_ticket_id_tickets')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_gov12345_orders')),
        sa.UniqueConstraint('order_no', name=op.f('uq_gov12345_orders_order_no')),
        sa.UniqueConstraint('ticket_id', name=op.f('uq_gov12345_orders_ticket_id')),
    )


def downgrade() -> None:
    op.drop_table('gov12345_orders')
    with op.batch_alter_table('inbound_nonces', schema=None) as batch_op:
        batch_op.drop_index('ix_inbound_nonces_seen_at')
    op.drop_table('inbound_nonces')
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_messages_ticket')
        batch_op.drop_index('ix_outbox_messages_key')
        batch_op.drop_index('ix_outbox_messages_due')
    op.drop_table('outbox_messages')
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ux_tickets_channel_external_ref')
        batch_op.drop_column('external_ref')
