"""read audit: who looked at which resident's data

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 12:40:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import models.base


revision: str = '0012'
down_revision: Union[str, Sequence[str], None] = '0011'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('read_audit',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('staff_id', sa.Integer(), nullable=True),
    sa.Column('staff_name', sa.String(length=100), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('endpoint', sa.String(length=120), nullable=False),
    sa.Column('account_number', sa.String(length=32), nullable=True),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('openid', sa.String(length=128), nullable=True),
    sa.Column('conversation_id', sa.Integer(), nullable=True),
    sa.Column('call_id', sa.Integer(), nullable=True),
    sa.Column('ticket_number', sa.String(length=32), nullable=True),
    sa.Column('hits', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_read_audit'))
    )
    with op.batch_alter_table('read_audit', schema=None) as batch_op:
        batch_op.create_index('ix_read_audit_account_at', ['account_number', 'at'], unique=False)
        batch_op.create_index('ix_read_audit_phone_at', ['phone', 'at'], unique=False)
        batch_op.create_index('ix_read_audit_staff_at', ['staff_id', 'at'], unique=False)
        batch_op.create_index('ix_read_audit_at', ['at'], unique=False)


def downgrade() -> None:
    op.drop_table('read_audit')
