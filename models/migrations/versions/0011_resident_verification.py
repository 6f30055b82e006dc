"""residents' verification (已核实), proof attempts and unverified residents' account look-ups

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 12:40:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import models.base


revision: str = '0011'
down_revision: Union[str, Sequence[str], None] = '0010'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('resident_verifications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('conversation_id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('method', sa.String(length=20), nullable=False),
    sa.Column('verified_at', models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_resident_verifications_conversation_id_conversations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_resident_verifications_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_resident_verifications')),
    sa.UniqueConstraint('conversation_id', 'customer_id', name=op.f('uq_resident_verifications_conversation_id'))
    )
    with op.batch_alter_table('resident_verifications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_resident_verifications_customer_id'), ['customer_id'], unique=False)

    op.create_table('proof_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_number', sa.String(length=32), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('resident', sa.String(length=128), nullable=False),
    sa.Column('succeeded', sa.Boolean(), nullable=False),
    sa.Column('at', models.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_proof_attempts'))
    )
    with op.batch_alter_table('proof_attempts', schema=None) as batch_op:
        batch_op.create_index('ix_proof_attempts_account_at', ['account_number', 'at'], unique=False)
        batch_op.create_index('ix_proof_attempts_resident_at', ['channel', 'resident', 'at'], unique=False)
        batch_op.create_index(batch_op.f('ix_proof_attempts_at'), ['at'], unique=False)

    op.create_table('account_lookups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_number', sa.String(length=32), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('resident', sa.String(length=128), nullable=False),
    sa.Column('origin', sa.String(length=64), nullable=True),
    sa.Column('at', models.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_account_lookups'))
    )
    with op.batch_alter_table('account_lookups', schema=None) as batch_op:
        batch_op.create_index('ix_account_lookups_resident_at', ['channel', 'resident', 'at'], unique=False)
        batch_op.create_index('ix_account_lookups_origin_at', ['origin', 'at'], unique=False)
        batch_op.create_index(batch_op.f('ix_account_lookups_at'), ['at'], unique=False)


def downgrade() -> None:
    op.drop_table('account_lookups')
    op.drop_table('proof_attempts')
    op.drop_table('resident_verifications')
