"""personal canned replies: an agent's own 快捷回复 beside the shared ones supervisors keep

canned_replies.owner_id: NULL for a shared reply, the staff member's id for a personal one (gone with
them). Shortcuts stay unique across all replies, so /shortcut means one reply in every console.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 13:45:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0014'
down_revision: str | Sequence[str] | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('canned_replies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('owner_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_canned_replies_owner_id_staff'), 'staff', ['owner_id'], ['id'],
                                    ondelete='CASCADE')
        batch_op.create_index('ix_canned_replies_owner_id', ['owner_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('canned_replies', schema=None) as batch_op:
        batch_op.drop_index('ix_canned_replies_owner_id')
        batch_op.drop_constraint(batch_op.f('fk_canned_replies_owner_id_staff'), type_='foreignkey')
        batch_op.drop_column('owner_id')
